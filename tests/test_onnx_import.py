"""ONNX import: graphnet.onnx.load builds a graph that computes what onnxruntime computes from the same file — for
files graphnet wrote (a round trip of every exportable op) and for hand-made files of the classic image classifiers'
ops and attributes, at several opsets; what graphnet cannot express is refused naming the node; an imported network
fine-tunes and exports again."""
import numpy as np
import onnx
import onnxruntime
import pytest
from onnx import TensorProto, helper, numpy_helper

import graphnet as gn
import graphnet.onnx
from test_onnx import OPS, check_export

RNG = np.random.default_rng(1)


def random(*shape):
    return RNG.standard_normal(shape).astype(np.float32)


def onnx_file(tmp_path, nodes, inputs, outputs, initializers=(), opset=13):
    """A model file from onnx.helper pieces: inputs/outputs as (name, shape) with None for a dynamic axis."""
    def info(name, shape):
        return helper.make_tensor_value_info(name, TensorProto.FLOAT, [d if d is not None else "n" for d in shape])
    graph = helper.make_graph(nodes, "test", [info(*i) for i in inputs], [info(*o) for o in outputs],
                              initializer=[numpy_helper.from_array(np.asarray(v), name) for name, v in initializers])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 7 if opset < 15 else 8 if opset < 19 else 9
    onnx.checker.check_model(model)
    path = tmp_path / f"model{opset}.onnx"
    onnx.save(model, str(path))
    return path


def assert_same_as_onnxruntime(path, feeds, device="cpu"):
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    expected = session.run(None, feeds)
    loaded = graphnet.onnx.load(path)
    program = gn.compile(list(loaded.outputs.values()), device=device)
    got = program.run({loaded.inputs[name]: value for name, value in feeds.items()})
    for g, e in zip(got, expected):
        assert g.shape == e.shape
        np.testing.assert_allclose(g, e, rtol=1e-4, atol=1e-5)
    return loaded


@pytest.mark.parametrize("case", sorted(OPS))
def test_every_op_graphnet_exports_comes_back_computing_the_same(case, tmp_path):
    build, values = OPS[case]
    check_export(tmp_path, build, values, batch_sizes=(2,))
    assert_same_as_onnxruntime(tmp_path / "model.onnx", {"in0": values[0][:2]})


X = random(2, 3, 7, 7)
W = random(4, 3, 3, 3)
CLASSIFIER_OPS = {
    "Conv auto_pad SAME_UPPER stride 2": ([helper.make_node("Conv", ["x", "w"], ["y"], strides=[2, 2],
                                                            auto_pad="SAME_UPPER")], [("w", W)], (2, 4, 4, 4)),
    "Conv pads dilations group": ([helper.make_node("Conv", ["x", "w", "b"], ["y"], pads=[1, 0, 2, 1],
                                                    dilations=[2, 1], group=1)],
                                  [("w", W), ("b", random(4))], (2, 4, 6, 7)),
    "MaxPool default stride 1": ([helper.make_node("MaxPool", ["x"], ["y"], kernel_shape=[3, 3], pads=[1, 1, 1, 1])],
                                 [], (2, 3, 7, 7)),
    "AveragePool count_include_pad=0": ([helper.make_node("AveragePool", ["x"], ["y"], kernel_shape=[3, 3],
                                                          strides=[2, 2], pads=[1, 1, 1, 1])], [], (2, 3, 4, 4)),
    "AveragePool count_include_pad=1": ([helper.make_node("AveragePool", ["x"], ["y"], kernel_shape=[2, 2],
                                                          strides=[2, 2], pads=[1, 1, 1, 1], count_include_pad=1)],
                                        [], (2, 3, 4, 4)),
    "MaxPool ceil_mode asymmetric pads": ([helper.make_node("MaxPool", ["x"], ["y"], kernel_shape=[3, 3],
                                                            strides=[2, 2], pads=[1, 0, 0, 1], ceil_mode=1)],
                                          [], (2, 3, 4, 4)),
    "AveragePool ceil_mode asymmetric pads count_include_pad=0": (
        [helper.make_node("AveragePool", ["x"], ["y"], kernel_shape=[3, 3], strides=[2, 2], pads=[0, 1, 1, 1],
                          ceil_mode=1)], [], (2, 3, 4, 4)),
    "AveragePool ceil_mode partial window count_include_pad=1": (
        [helper.make_node("AveragePool", ["x"], ["y"], kernel_shape=[2, 2], strides=[2, 2], ceil_mode=1,
                          count_include_pad=1)], [], (2, 3, 4, 4)),
    "MaxPool ceil_mode drops a window starting in the padding": (     # ceil((7 + 2 - 2)/3) + 1 = 4, but the 4th
        [helper.make_node("MaxPool", ["x"], ["y"], kernel_shape=[2, 2], strides=[3, 3], pads=[1, 1, 1, 1],
                          ceil_mode=1)], [], (2, 3, 3, 3)),                 # window would start at padded row 9 >= 8
    "LRN": ([helper.make_node("LRN", ["x"], ["y"], size=3, alpha=0.5, beta=0.6, bias=2.0)], [], (2, 3, 7, 7)),
    "GlobalAveragePool": ([helper.make_node("GlobalAveragePool", ["x"], ["y"])], [], (2, 3, 1, 1)),
    "BatchNormalization": ([helper.make_node("BatchNormalization", ["x", "s", "b", "m", "v"], ["y"], epsilon=1e-3)],
                           [("s", random(3)), ("b", random(3)), ("m", random(3)), ("v", np.abs(random(3)) + 0.5)],
                           (2, 3, 7, 7)),
    "Flatten Gemm transB alpha beta": ([helper.make_node("Flatten", ["x"], ["f"]),
                                        helper.make_node("Gemm", ["f", "g", "c"], ["y"], transB=1, alpha=0.5, beta=2.0)],
                                       [("g", random(5, 147)), ("c", random(5))], (2, 5)),
    "Reshape with 0 Transpose Softmax": ([helper.make_node("Reshape", ["x", "shape"], ["r"]),
                                          helper.make_node("Transpose", ["r"], ["t"], perm=[0, 2, 1]),
                                          helper.make_node("Softmax", ["t"], ["y"], axis=1)],
                                         [("shape", np.array([0, 3, -1], np.int64))], (2, 49, 3)),
    "Relu LeakyRelu Elu Sigmoid Tanh Sum": ([helper.make_node("Relu", ["x"], ["a"]),
                                             helper.make_node("LeakyRelu", ["x"], ["l"], alpha=0.3),
                                             helper.make_node("Elu", ["x"], ["e"], alpha=0.5),
                                             helper.make_node("Sigmoid", ["x"], ["s"]),
                                             helper.make_node("Tanh", ["x"], ["t"]),
                                             helper.make_node("Sum", ["a", "l", "e", "s", "t"], ["y"])], [],
                                            (2, 3, 7, 7)),
    "Clip Div Sub Mul": ([helper.make_node("Clip", ["x", "lo", "hi"], ["c"]),
                          helper.make_node("Mul", ["c", "c"], ["m"]), helper.make_node("Sub", ["m", "c"], ["s"]),
                          helper.make_node("Div", ["s", "two"], ["y"])],
                         [("lo", np.float32(-0.5)), ("hi", np.float32(0.7)), ("two", np.float32(2.0))], (2, 3, 7, 7)),
    "Squeeze Unsqueeze Concat": ([helper.make_node("GlobalAveragePool", ["x"], ["g"]),
                                  helper.make_node("Squeeze", ["g", "axes"], ["s"]),
                                  helper.make_node("Unsqueeze", ["s", "axes1"], ["u"]),
                                  helper.make_node("Concat", ["u", "u"], ["y"], axis=1)],
                                 [("axes", np.array([2, 3], np.int64)), ("axes1", np.array([1], np.int64))], (2, 2, 3)),
    "Shape of known sizes, Constant, ConstantOfShape, Dropout, Identity": (
        [helper.make_node("Constant", [], ["k"], value=numpy_helper.from_array(np.array([3, 49], np.int64))),
         helper.make_node("ConstantOfShape", ["k"], ["ones"], value=numpy_helper.from_array(np.ones(1, np.float32))),
         helper.make_node("Shape", ["ones"], ["shape"]),
         helper.make_node("Concat", ["batch", "shape"], ["target"], axis=0),
         helper.make_node("Reshape", ["x", "target"], ["r"]),
         helper.make_node("Dropout", ["r"], ["d"]), helper.make_node("Add", ["d", "ones"], ["i"]),
         helper.make_node("Identity", ["i"], ["y"])],
        [("batch", np.array([-1], np.int64))], (2, 3, 49)),
}


@pytest.mark.parametrize("case", sorted(CLASSIFIER_OPS))
def test_the_classic_classifiers_ops_and_attributes_import_as_onnxruntime_runs_them(case, tmp_path):
    nodes, initializers, out_shape = CLASSIFIER_OPS[case]
    path = onnx_file(tmp_path, nodes, [("x", (None, 3, 7, 7))], [("y", (None,) + out_shape[1:])], initializers)
    assert_same_as_onnxruntime(path, {"x": X})


OLD_OPSETS = {
    "LRN (opset 9)": ([helper.make_node("LRN", ["x"], ["y"], size=5, alpha=0.2)], [], 9),
    "MaxPool ceil_mode (opset 10)": ([helper.make_node("MaxPool", ["x"], ["y"], kernel_shape=[2, 2], strides=[2, 2],
                                                       ceil_mode=1)], [], 10),
    "Softmax before opset 13 flattens from the axis": (
        [helper.make_node("Softmax", ["x"], ["y"], axis=1)], [], 11),
    "Clip with attributes (opset 7-10)": ([helper.make_node("Clip", ["x"], ["y"], min=-0.3, max=0.4)], [], 9),
    "Squeeze and Unsqueeze with attributes (opset 11)": (
        [helper.make_node("Unsqueeze", ["x"], ["u"], axes=[0]), helper.make_node("Squeeze", ["u"], ["y"], axes=[0])],
        [], 11),
    "Slice with attributes (opset 9)": ([helper.make_node("Slice", ["x"], ["y"], starts=[1, 0], ends=[3, 5],
                                                          axes=[1, 3])], [], 9),
}


@pytest.mark.parametrize("case", sorted(OLD_OPSETS))
def test_older_opsets_mean_what_their_specification_says(case, tmp_path):
    nodes, initializers, opset = OLD_OPSETS[case]
    session_shape = {"Slice with attributes (opset 9)": (None, 2, 7, 5),
                     "MaxPool ceil_mode (opset 10)": (None, 3, 4, 4)}.get(case, (None, 3, 7, 7))
    path = onnx_file(tmp_path, nodes, [("x", (None, 3, 7, 7))], [("y", session_shape)], initializers, opset=opset)
    loaded = assert_same_as_onnxruntime(path, {"x": X})
    assert loaded.opset == opset


NEWER_ACTIVATIONS = {
    "Softplus, HardSigmoid (PyTorch's and ONNX's default slopes), HardSwish (opset 14)": (
        [helper.make_node("Softplus", ["x"], ["a"]),
         helper.make_node("HardSigmoid", ["x"], ["b"], alpha=1 / 6, beta=0.5),
         helper.make_node("HardSigmoid", ["x"], ["c"]),
         helper.make_node("HardSwish", ["x"], ["d"]),
         helper.make_node("Sum", ["a", "b", "c", "d"], ["y"])], 14),
    "Gelu, exact and tanh (opset 20)": (
        [helper.make_node("Gelu", ["x"], ["a"]), helper.make_node("Gelu", ["x"], ["b"], approximate="tanh"),
         helper.make_node("Add", ["a", "b"], ["y"])], 20),
}


@pytest.mark.parametrize("case", sorted(NEWER_ACTIVATIONS))
def test_the_newer_activations_import_as_graphnet_ops(case, tmp_path):
    nodes, opset = NEWER_ACTIVATIONS[case]
    path = onnx_file(tmp_path, nodes, [("x", (None, 3, 7, 7))], [("y", (None, 3, 7, 7))], opset=opset)
    loaded = assert_same_as_onnxruntime(path, {"x": X * 4})
    made = {node.op.name for node in loaded.graph.nodes}
    assert made >= ({"softplus", "hard_sigmoid", "hard_swish", "clip"} if opset == 14 else {"gelu", "gelu_tanh"})


@pytest.mark.parametrize("node, message", [
    (helper.make_node("LpNormalization", ["x"], ["y"]), r"'y' \(LpNormalization\): graphnet has no import for "
                                                        r"LpNormalization"),
    (helper.make_node("MaxPool", ["x"], ["y"], kernel_shape=[2, 2], dilations=[2, 2]), r"dilations=\[2, 2\]: "
                                                                                       r"graphnet's pooling has no"),
    (helper.make_node("MaxPool", ["x"], ["y"], kernel_shape=[3, 3], pads=[2, 0, 2, 0]),
     r"'y' \(MaxPool\): max_pool2d .*padding before the height is 2, more than half the 3-tall pooling window"),
    (helper.make_node("AveragePool", ["x"], ["y"], kernel_shape=[9, 9], ceil_mode=1),
     r"'y' \(AveragePool\): avg_pool2d .*output height ceil\(\(H - F \+ 2P\)/S\) \+ 1 = "
     r"ceil\(\(7 - 9 \+ 2\*0\)/1\) \+ 1 = -1 is empty"),
    (helper.make_node("Softmax", ["x"], ["y"], axis=1, unknown=3), r"attribute unknown=3 is not supported"),
    (helper.make_node("Shape", ["x"], ["y"]), r"Shape of 'x' \(None, 3, 7, 7\): only a shape whose sizes are all"),
])
def test_what_graphnet_cannot_express_is_refused_naming_the_node(node, message, tmp_path):
    model = helper.make_model(helper.make_graph(
        [node], "bad", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3, 7, 7])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)]),
        opset_imports=[helper.make_opsetid("", 13)])
    path = tmp_path / "bad.onnx"
    onnx.save(model, str(path))
    with pytest.raises(graphnet.onnx.Unsupported, match=message):
        graphnet.onnx.load(path)


def spec_lrn(x, size, alpha, beta, bias):
    """The ONNX specification's LRN, transcribed: square_sum[n, c] = Σ x[n, i]² over
    max(0, c − floor((size − 1)/2)) ≤ i ≤ min(C − 1, c + ceil((size − 1)/2)); y = x / (bias + α/size · square_sum)^β."""
    channels = x.shape[1]
    square_sum = np.zeros_like(x)
    for c in range(channels):
        first, last = max(0, c - (size - 1) // 2), min(channels - 1, c + -(-(size - 1) // 2))
        square_sum[:, c] = np.sum(x[:, first:last + 1] ** 2, axis=1)
    return x / (bias + alpha / size * square_sum) ** beta


@pytest.mark.parametrize("opset", [9, 13])
def test_lrn_follows_onnxruntime_and_the_spec_where_onnxs_reference_evaluator_does_not(opset, tmp_path):
    """onnx's ReferenceEvaluator sums the squares over the wrong axis (test_onnx.REFERENCE_EVALUATOR_WRONG): where it
    disagrees with onnxruntime, onnxruntime and the specification decide, and graphnet follows them."""
    from onnx.reference import ReferenceEvaluator
    x = RNG.standard_normal((2, 6, 3, 3)).astype(np.float32) * 2
    node = helper.make_node("LRN", ["x"], ["y"], size=5, alpha=0.4, beta=0.75, bias=1.5)
    path = onnx_file(tmp_path, [node], [("x", (None, 6, 3, 3))], [("y", (None, 6, 3, 3))], opset=opset)
    assert_same_as_onnxruntime(path, {"x": x})
    by_spec = spec_lrn(x.astype(np.float64), 5, 0.4, 0.75, 1.5)
    by_runtime = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    np.testing.assert_allclose(by_runtime, by_spec, rtol=1e-5)
    by_evaluator = ReferenceEvaluator(str(path)).run(None, {"x": x})[0]
    assert not np.allclose(by_evaluator, by_spec, rtol=1e-3)     # the evaluator's bug (channels from N on)


def test_an_even_lrn_imports_with_the_specs_window(tmp_path):
    """onnxruntime refuses an LRN of even size; the ONNX specification defines it, with a window that starts
    (size − 1) // 2 channels before the centre (PyTorch's starts size // 2 before)."""
    x = RNG.standard_normal((2, 5, 2, 2)).astype(np.float32) * 2
    node = helper.make_node("LRN", ["x"], ["y"], size=4, alpha=0.4, beta=0.75, bias=1.5)
    path = onnx_file(tmp_path, [node], [("x", (None, 5, 2, 2))], [("y", (None, 5, 2, 2))])
    loaded = graphnet.onnx.load(path)
    got = gn.compile(list(loaded.outputs.values())).run({loaded.inputs["x"]: x})[0]
    np.testing.assert_allclose(got, spec_lrn(x.astype(np.float64), 4, 0.4, 0.75, 1.5), rtol=1e-5)


def test_an_imported_network_fine_tunes_and_exports_again(tmp_path):
    nodes, initializers, _ = CLASSIFIER_OPS["Flatten Gemm transB alpha beta"]
    path = onnx_file(tmp_path, nodes, [("x", (None, 3, 7, 7))], [("y", (None, 5))], initializers)
    loaded = graphnet.onnx.load(path)
    assert sorted(loaded.variables) == ["c", "g"]
    assert all(v.attrs["trainable"] for v in loaded.variables.values())
    (x,), (y,) = loaded.inputs.values(), loaded.outputs.values()
    with loaded.graph:
        labels = gn.placeholder((None,), dtype="int64")
        loss = gn.softmax_cross_entropy(y, labels)
        grads = gn.gradients(loss, list(loaded.variables.values()))
        step = gn.compile([loss] + [gn.assign(v, v - 0.5 * g) for v, g in zip(loaded.variables.values(), grads)])
    targets = np.array([1, 3])
    losses = [float(step.run({x: X, labels: targets})[0]) for _ in range(5)]
    assert losses[-1] < losses[0]
    graphnet.onnx.export(tmp_path / "tuned.onnx", [x], [y])
    tuned = onnxruntime.InferenceSession(str(tmp_path / "tuned.onnx")).run(None, {x.name: X})[0]
    np.testing.assert_allclose(tuned, gn.compile(y).run({x: X}), rtol=1e-5, atol=1e-6)
