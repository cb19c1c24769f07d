"""ONNX export: every exportable op, and whole graphnet.nn models, give in onnxruntime and in onnx's reference
evaluator what graphnet gives (float32 tolerance), with a dynamic batch axis; what cannot be exported is refused
naming the node and the reason; the file is never half-written."""
import os

import numpy as np
import onnx
import onnxruntime
import pytest
from onnx.reference import ReferenceEvaluator

import graphnet as gn
import graphnet.onnx
from graphnet import nn

RNG = np.random.default_rng(0)

# ONNX op types that onnx's ReferenceEvaluator computes wrongly: for these onnxruntime and the ONNX specification
# decide, and the evaluator is left out of the comparison.
REFERENCE_EVALUATOR_WRONG = {
    "LRN": "onnx/reference/ops/op_lrn.py loops over the batch axis where it means the channels (range(x.shape[0])), "
           "so every channel from the N-th on gets a square sum of 0 (checked against the spec in "
           "test_onnx_import.py)",
}


def random(*shape, positive=False):
    values = RNG.standard_normal(shape).astype(np.float32)
    return np.abs(values) + 0.1 if positive else values


def run_onnx(path, feeds):
    """The outputs of the file in onnxruntime, and in onnx's ReferenceEvaluator unless the file holds an op that
    the evaluator computes wrongly (REFERENCE_EVALUATOR_WRONG)."""
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    by_runtime = session.run(None, dict(zip(names, feeds)))
    if {node.op_type for node in onnx.load(str(path)).graph.node} & set(REFERENCE_EVALUATOR_WRONG):
        return (by_runtime,)
    by_reference = ReferenceEvaluator(str(path)).run(None, dict(zip(names, feeds)))
    return by_runtime, by_reference


def check_export(tmp_path, build, values, batch_sizes=(2, 3)):
    """Export build(*placeholders) and compare graphnet's output with both ONNX runtimes, at each batch size."""
    with gn.Graph():
        inputs = [gn.placeholder((None,) + v.shape[1:], dtype=v.dtype, name=f"in{k}") for k, v in enumerate(values)]
        output = build(*inputs)
        path = tmp_path / "model.onnx"
        graphnet.onnx.export(path, inputs, [output])
        program = gn.compile(output, device="cpu")
    for n in batch_sizes:
        feeds = [np.concatenate([v] * n)[:n] if len(v) < n else v[:n] for v in values]
        expected = program.run(dict(zip(inputs, feeds)))
        for got in run_onnx(path, feeds):
            np.testing.assert_allclose(got[0], expected, rtol=1e-4, atol=1e-5)
    return onnx.load(str(path))


X = random(3, 4, 6, 6)
M = random(3, 5)
OPS = {
    "add": (lambda x: x + gn.constant(random(5)), [M]),
    "sub mul div": (lambda x: (x - 1.5) * x / gn.constant(random(5, positive=True)), [M]),
    "maximum minimum": (lambda x: gn.minimum(gn.maximum(x, 0.2), 0.9), [M]),
    "neg exp log sqrt": (lambda x: gn.sqrt(gn.exp(-x)) + gn.ops.log(x * x + 1.0), [M]),
    "pow": (lambda x: (x * x + 1.0) ** 1.5, [M]),
    "relu sigmoid tanh": (lambda x: gn.relu(x) + gn.sigmoid(x) * gn.tanh(x), [M]),
    "leaky_relu elu": (lambda x: gn.leaky_relu(x, 0.2) + gn.elu(x, 0.7), [M]),
    "softplus silu hard_sigmoid hard_swish": (lambda x: gn.softplus(x) + gn.silu(x) * gn.hard_sigmoid(x * 4.0)
                                              - gn.hard_swish(x * 4.0), [M]),
    "gelu gelu_tanh erf": (lambda x: gn.gelu(x * 2.0) + gn.gelu_tanh(x * 2.0) + gn.erf(x), [M]),
    "relu6 clip": (lambda x: gn.relu6(x * 8.0) + gn.clip(x, -0.5, 0.25), [M]),
    "softmax log_softmax": (lambda x: gn.softmax(x, axis=1) + gn.log_softmax(x, axis=-1), [M]),
    "matmul": (lambda x: x @ gn.constant(random(5, 7)), [M]),
    "matmul transposed": (lambda x: gn.matmul(x, gn.constant(random(7, 5)), transpose_b=True), [M]),
    "conv2d": (lambda x: gn.conv2d(x, gn.constant(random(8, 4, 3, 3)), gn.constant(random(8)), stride=2,
                                   padding=((1, 0), (2, 1))), [X]),
    "conv2d groups dilation": (lambda x: gn.conv2d(x, gn.constant(random(4, 2, 2, 2)), groups=2, dilation=2), [X]),
    "max_pool2d": (lambda x: gn.max_pool2d(x, 3, stride=2, padding=1), [X]),
    "avg_pool2d": (lambda x: gn.avg_pool2d(x, 2, padding=1), [X]),
    "max_pool2d ceil_mode asymmetric padding": (
        lambda x: gn.max_pool2d(x, 3, stride=2, padding=((1, 0), (0, 1)), ceil_mode=True), [X]),
    "avg_pool2d ceil_mode partial window": (lambda x: gn.avg_pool2d(x, 3, stride=2, ceil_mode=True), [X]),
    "avg_pool2d count_include_pad=False ceil_mode asymmetric padding": (
        lambda x: gn.avg_pool2d(x, 3, stride=2, padding=((0, 1), (1, 1)), ceil_mode=True, count_include_pad=False),
        [X]),
    "local_response_norm": (lambda x: gn.local_response_norm(x, 3, alpha=0.5, beta=0.75, k=2.0), [X]),
    "local_response_norm even size (PyTorch's window)": (
        lambda x: gn.local_response_norm(x * 2.0, 4, alpha=0.5, beta=0.75, k=2.0), [X]),
    "global_avg_pool2d": (lambda x: gn.global_avg_pool2d(x), [X]),
    "sum mean max": (lambda x: gn.sum(x, axis=1) + gn.max(x, axis=1) + gn.mean(x, axis=(1, 3), keepdims=True)[:, 0],
                     [X]),
    "reshape flatten transpose": (lambda x: gn.transpose(gn.reshape(gn.flatten(x), (-1, 4, 36)), (0, 2, 1)), [X]),
    "concat": (lambda x: gn.concat([x, x * 2.0], axis=1), [M]),
    "getitem": (lambda x: x[:, 1:4:2, ::-1, 2][:, None, :, -1], [X]),
    "cast": (lambda x: gn.cast(gn.cast(x, "float64") * 2.0, "float32"), [M]),
    "maxout": (lambda x: gn.maxout(x, 2, axis=1), [X]),
}


@pytest.mark.parametrize("case", sorted(OPS))
def test_every_exportable_op_gives_the_same_result_in_onnxruntime_and_the_reference_evaluator(case, tmp_path):
    build, values = OPS[case]
    check_export(tmp_path, build, values)


def test_every_op_class_the_exporter_writes_is_exercised_by_a_case_here():
    used = set()
    for build, values in OPS.values():
        with gn.Graph() as graph:
            build(*[gn.placeholder((None,) + v.shape[1:], dtype=v.dtype) for v in values])
        used |= {type(node.op) for node in graph.nodes}
    missing = set(graphnet.onnx.WRITERS) - used
    assert not missing, sorted(cls.__name__ for cls in missing)


def small_cnn():
    return nn.Sequential([nn.Conv2D(6, 3, padding=1, activation="relu"), nn.BatchNorm(), nn.MaxPool2D(2),
                          nn.Conv2D(8, 3, activation="elu"), nn.AvgPool2D(2), nn.Flatten(),
                          nn.Dense(16, activation="tanh"), nn.Dropout(0.5), nn.Dense(5)], seed=3)


def test_a_trained_nn_model_exports_with_a_dynamic_batch_axis(tmp_path):
    model = small_cnn()
    model.build((3, 12, 12))
    x = random(7, 3, 12, 12)
    gn.train.Trainer(model, gn.optim.SGD(0.05)).fit(x, np.arange(7) % 5, epochs=1, batch_size=4, progress=False)
    proto = model.export_onnx(tmp_path / "cnn.onnx")
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    expected = gn.compile(model.output, device="cpu").run({model.input: x})
    for n in (1, 7):
        for got in run_onnx(tmp_path / "cnn.onnx", [x[:n]]):
            np.testing.assert_allclose(got[0], expected[:n], rtol=1e-4, atol=1e-6)


def test_what_has_no_onnx_form_is_refused_naming_the_node_and_why(tmp_path):
    with gn.Graph():
        x = gn.placeholder((None, 5), name="x")
        y = gn.placeholder((None,), dtype="int64", name="y")
        loss = gn.softmax_cross_entropy(x * 2.0, y)
        with pytest.raises(gn.GraphError, match=r"softmax_cross_entropy '.*' \(test_onnx.py:\d+\) has no ONNX form"
                                                r".*belongs to training"):
            graphnet.onnx.export(tmp_path / "loss.onnx", [x, y], [loss])
        dropped = gn.dropout(x, 0.5, training=True)
        with pytest.raises(gn.GraphError, match=r"dropout .*training=False"):
            graphnet.onnx.export(tmp_path / "dropout.onnx", [x], [dropped])
        with pytest.raises(gn.GraphError, match=r"need the placeholder\(s\) 'x'.*inputs=\[...\]"):
            graphnet.onnx.export(tmp_path / "other.onnx", [y], [x * 2.0])
    assert sorted(os.listdir(tmp_path)) == []                      # nothing written, not even in part


def test_an_unbuilt_model_says_to_build_it(tmp_path):
    with pytest.raises(gn.GraphError, match=r"export_onnx: model .* is not built yet; call model.build"):
        small_cnn().export_onnx(tmp_path / "m.onnx")


def test_the_file_gets_the_permissions_of_an_ordinary_new_file(tmp_path):
    umask = os.umask(0o022)
    try:
        check_export(tmp_path, lambda x: x * 2.0, [M], batch_sizes=(2,))
    finally:
        os.umask(umask)
    assert os.stat(tmp_path / "model.onnx").st_mode & 0o777 == 0o644


def test_pooling_and_lrn_attributes_are_written_as_onnx_spells_them(tmp_path):
    """pads [top, left, bottom, right]; ceil_mode and AveragePool's count_include_pad written out (ONNX's default
    is 0, graphnet's and PyTorch's 1); LRN's k is ONNX's bias; an even LRN is no LRN node (onnxruntime refuses
    those, and ONNX's window would start one channel later than PyTorch's)."""
    model = check_export(tmp_path, lambda x: gn.local_response_norm(gn.avg_pool2d(
        gn.max_pool2d(x, 3, stride=2, padding=((1, 0), (0, 1)), ceil_mode=True), 2, padding=1), 5, k=2.0), [X],
        batch_sizes=(2,))
    nodes = {node.op_type: {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
             for node in model.graph.node}
    assert nodes["MaxPool"]["pads"] == [1, 0, 0, 1] and nodes["MaxPool"]["ceil_mode"] == 1
    assert nodes["AveragePool"]["count_include_pad"] == 1 and nodes["AveragePool"]["ceil_mode"] == 0
    assert nodes["LRN"] == {"size": 5, "alpha": pytest.approx(1e-4), "beta": 0.75, "bias": 2.0}
    even = check_export(tmp_path, lambda x: gn.local_response_norm(x, 2), [X], batch_sizes=(2,))
    assert "LRN" not in {node.op_type for node in even.graph.node}
