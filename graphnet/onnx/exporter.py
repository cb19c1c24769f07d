"""Export an inference graph to ONNX (opset OPSET): one ONNX node or a few per graphnet node, by the op's class.

    placeholder          a graph input; a None size becomes a named dynamic axis ("batch" for axis 0)
    variable, constant   an initializer holding its current value
    every op in WRITERS  ONNX nodes computing the same thing (see each writer's docstring for the mapping)

What ONNX spells differently, and the writers handle:
    Conv / pooling pads  [top, left, bottom, right], not ((top, bottom), (left, right))
    MaxPool strides      default to 1 in ONNX: always written out
    AveragePool          count_include_pad defaults to 0 in ONNX (1 in graphnet and PyTorch): always written out,
                         as is ceil_mode
    LRN                  ONNX's window starts (n − 1) // 2 channels before the centre, PyTorch's and graphnet's
                         n // 2: the same for an odd size n, written as LRN. An even window is written as PyTorch
                         computes it (an AveragePool of the squares along the channels, then Pow): onnxruntime
                         refuses an LRN of even size, and ONNX's would start one channel later than PyTorch's
    matmul transposes    a Transpose of the last two axes before MatMul
    activations          relu6 and clip as Clip, hard_sigmoid as HardSigmoid(α = 1/6, β = 1/2), silu as
                         x·Sigmoid(x), gelu (exact and tanh form) from Erf or Tanh (ONNX's Gelu is opset 20)
    reductions           ReduceSum/Mean/Max take their axes as an input (opset 18)

A training graph (dropout in training mode, batch statistics, losses, gradients, assignments) has no ONNX form
here: build the graph with training=False (a graphnet.nn model's `output` is built so).
"""
import numpy as np

from ..checkpoint import write_atomically
from ..compiler import prune
from ..errors import GraphError
from ..graph import ConstantOp, Placeholder, Tensor, VariableOp
from ..ops.activations import Elu, LeakyRelu, LogSoftmax, Relu, Sigmoid, Softmax, Tanh
from ..ops.pointwise import Clip, Erf, Gelu, GeluTanh, HardSigmoid, HardSwish, Relu6, Silu, Softplus
from ..ops.conv import Conv2d
from ..ops.dtypes import Cast
from ..ops.elementwise import Add, Div, Exp, Log, Maximum, Minimum, Mul, Neg, Pow, Sqrt, Sub
from ..ops.linalg import MatMul
from ..ops.losses import Loss
from ..ops.lrn import LocalResponseNorm
from ..ops.regularization import BatchNorm, Dropout
from ..ops.state import Assign
from ..ops.pool import AvgPool2d, MaxPool2d
from ..ops.reduce import Max, Mean, Sum
from ..ops.shape import Concat, GetItem, Reshape, Transpose

OPSET = 18
TRAINING_OPS = (Dropout, BatchNorm, Loss, Assign)


def _onnx():
    try:
        import onnx
    except ImportError:
        raise GraphError("graphnet.onnx needs the onnx package: pip install 'graphnet[onnx]' (or pip install "
                         "onnx)") from None
    return onnx


class Writer:
    """Collects the ONNX nodes and initializers of one export; names every value after its graphnet node."""

    def __init__(self, onnx):
        self.onnx = onnx
        self.helper = onnx.helper
        self.nodes, self.initializers = [], []
        self.names = {}
        self._counter = 0

    def name(self, tensor):
        return self.names[tensor]

    def fresh(self, stem):
        self._counter += 1
        return f"{stem}__{self._counter}"

    def constant(self, stem, value):
        """An initializer holding `value`; returns its name."""
        name = self.fresh(stem)
        self.initializers.append(self.onnx.numpy_helper.from_array(np.asarray(value), name))
        return name

    def node(self, op_type, inputs, outputs, **attributes):
        self.nodes.append(self.helper.make_node(op_type, inputs, outputs, **attributes))
        return outputs[0]


# ----------------------------------------------------------------------------------------------------------------
# one writer per op class: (writer, node, input names, output name)

def _simple(op_type):
    def write(w, node, ins, out):
        w.node(op_type, ins, [out])
    write.__doc__ = f"{op_type}, input for input"
    return write


def _constant_like(w, node, stem, value):
    """An initializer holding one number of the node's dtype (an ONNX operand must match its partner's type)."""
    return w.constant(stem, np.asarray(value, dtype=node.dtype))


def _pow(w, node, ins, out):
    """Pow(x, p) with p an initializer of x's dtype."""
    exponent = _constant_like(w, node, f"{out}_exponent", node.attrs["exponent"])
    w.node("Pow", [ins[0], exponent], [out])


def _leaky_relu(w, node, ins, out):
    w.node("LeakyRelu", ins, [out], alpha=float(node.attrs["slope"]))


def _elu(w, node, ins, out):
    w.node("Elu", ins, [out], alpha=float(node.attrs["alpha"]))


def _clip_between(low, high):
    def write(w, node, ins, out):
        bounds = [_constant_like(w, node, f"{out}_{side}", node.attrs.get(side, value))
                  for side, value in (("min", low), ("max", high))]
        w.node("Clip", [ins[0]] + bounds, [out])
    write.__doc__ = "Clip(x, min, max), the bounds as initializers of x's dtype"
    return write


def _hard_sigmoid(w, node, ins, out):
    """relu6(x + 3)/6 = clip(x/6 + 1/2, 0, 1): ONNX's HardSigmoid with alpha = 1/6, beta = 1/2."""
    w.node("HardSigmoid", ins, [out], alpha=1.0 / 6.0, beta=0.5)


def _silu(w, node, ins, out):
    """x·σ(x): Sigmoid, then Mul."""
    w.node("Mul", [ins[0], w.node("Sigmoid", ins, [w.fresh(f"{out}_sigmoid")])], [out])


def _gelu(w, node, ins, out):
    """x/2·(1 + erf(x/√2)): opset 18 has Erf (Gelu itself came in opset 20)."""
    scaled = w.node("Mul", [ins[0], _constant_like(w, node, f"{out}_rsqrt2", 0.7071067811865476)],
                    [w.fresh(f"{out}_scaled")])
    erf = w.node("Erf", [scaled], [w.fresh(f"{out}_erf")])
    one_plus = w.node("Add", [erf, _constant_like(w, node, f"{out}_one", 1.0)], [w.fresh(f"{out}_1p")])
    half_x = w.node("Mul", [ins[0], _constant_like(w, node, f"{out}_half", 0.5)], [w.fresh(f"{out}_half_x")])
    w.node("Mul", [half_x, one_plus], [out])


def _gelu_tanh(w, node, ins, out):
    """x/2·(1 + tanh(√(2/π)·(x + 0.044715·x³)))"""
    x = ins[0]
    cube = w.node("Mul", [x, w.node("Mul", [x, x], [w.fresh(f"{out}_x2")])], [w.fresh(f"{out}_x3")])
    inner = w.node("Add", [x, w.node("Mul", [cube, _constant_like(w, node, f"{out}_c", 0.044715)],
                                     [w.fresh(f"{out}_cx3")])], [w.fresh(f"{out}_inner")])
    scaled = w.node("Mul", [inner, _constant_like(w, node, f"{out}_k", 0.7978845608028654)],
                    [w.fresh(f"{out}_scaled")])
    one_plus = w.node("Add", [w.node("Tanh", [scaled], [w.fresh(f"{out}_tanh")]),
                              _constant_like(w, node, f"{out}_one", 1.0)], [w.fresh(f"{out}_1p")])
    half_x = w.node("Mul", [x, _constant_like(w, node, f"{out}_half", 0.5)], [w.fresh(f"{out}_half_x")])
    w.node("Mul", [half_x, one_plus], [out])


def _softmax(op_type):
    def write(w, node, ins, out):
        w.node(op_type, ins, [out], axis=int(node.attrs["axis"]))
    write.__doc__ = f"{op_type} over one axis (opset 13 and later: that axis only, as graphnet)"
    return write


def _matmul(w, node, ins, out):
    """MatMul, after a Transpose of the last two axes of an operand graphnet reads transposed."""
    operands = []
    for name, tensor, flag in zip(ins, node.inputs, ("transpose_a", "transpose_b")):
        if node.attrs[flag]:
            perm = list(range(len(tensor.shape)))
            perm[-2:] = perm[-1], perm[-2]
            name = w.node("Transpose", [name], [w.fresh(f"{name}_T")], perm=perm)
        operands.append(name)
    w.node("MatMul", operands, [out])


def _pads(padding):
    (top, bottom), (left, right) = padding
    return [int(top), int(left), int(bottom), int(right)]


def _conv(w, node, ins, out):
    """Conv with the weight (and bias) as initializers; pads reordered to [top, left, bottom, right]."""
    a = node.attrs
    kernel = list(node.inputs[1].shape[2:])
    w.node("Conv", ins, [out], kernel_shape=kernel, strides=list(a["stride"]), pads=_pads(a["padding"]),
           dilations=list(a["dilation"]), group=int(a["groups"]))


def _max_pool(w, node, ins, out):
    """MaxPool with strides, pads and ceil_mode written out."""
    a = node.attrs
    w.node("MaxPool", ins, [out], kernel_shape=list(a["kernel_size"]), strides=list(a["stride"]),
           pads=_pads(a["padding"]), ceil_mode=int(a["ceil_mode"]))


def _avg_pool(w, node, ins, out):
    """AveragePool with strides, pads, ceil_mode and count_include_pad written out (ONNX's default is 0)."""
    a = node.attrs
    w.node("AveragePool", ins, [out], kernel_shape=list(a["kernel_size"]), strides=list(a["stride"]),
           pads=_pads(a["padding"]), ceil_mode=int(a["ceil_mode"]), count_include_pad=int(a["count_include_pad"]))


def _lrn(w, node, ins, out):
    """LRN for an odd size n whose window is centred (ONNX's, PyTorch's and Caffe's alike). Otherwise the formula as
    PyTorch computes it: the squares seen as a (N, 1, C, S) image, an AveragePool of n×1 windows over its channel
    axis with `before` zeros in front and `after` behind (count_include_pad: the window sum / n), then
    y = x · (k + α · mean)^−β (onnxruntime runs no LRN of even size)."""
    a = node.attrs
    size, before = a["size"], a["before"]
    if size % 2 == 1 and before == size // 2:
        w.node("LRN", ins, [out], size=size, alpha=a["alpha"], beta=a["beta"], bias=a["k"])
        return
    x = node.inputs[0]
    if None in x.shape[1:]:
        raise GraphError(f"onnx export: local_response_norm '{node.name}' ({node.site}) of size {size} is written as "
                         f"a pooling over the channels, which needs every size but the batch known, got {x.shape}")
    squares = w.node("Mul", [ins[0], ins[0]], [w.fresh(f"{out}_squares")])
    image = w.node("Reshape", [squares, w.constant(f"{out}_image", np.asarray([0, 1, x.shape[1], -1], np.int64))],
                   [w.fresh(f"{out}_image")])
    mean = w.node("AveragePool", [image], [w.fresh(f"{out}_window_mean")], kernel_shape=[size, 1], strides=[1, 1],
                  pads=[before, 0, size - 1 - before, 0], count_include_pad=1)
    mean = w.node("Reshape", [mean, w.constant(f"{out}_shape", np.asarray((0,) + x.shape[1:], np.int64))],
                  [w.fresh(f"{out}_mean")])
    dtype = node.dtype
    scaled = w.node("Mul", [mean, w.constant(f"{out}_alpha", np.asarray(a["alpha"], dtype))],
                    [w.fresh(f"{out}_scaled")])
    base = w.node("Add", [scaled, w.constant(f"{out}_k", np.asarray(a["k"], dtype))], [w.fresh(f"{out}_base")])
    power = w.node("Pow", [base, w.constant(f"{out}_minus_beta", np.asarray(-a["beta"], dtype))],
                   [w.fresh(f"{out}_power")])
    w.node("Mul", [ins[0], power], [out])


def _reduce(op_type):
    def write(w, node, ins, out):
        axes = w.constant(f"{out}_axes", np.asarray(node.attrs["axes"], dtype=np.int64))
        w.node(op_type, [ins[0], axes], [out], keepdims=int(node.attrs["keepdims"]))
    write.__doc__ = f"{op_type} with the axes as an input (opset 18)"
    return write


def _reshape(w, node, ins, out):
    """Reshape to graphnet's target shape (-1 means the same in both). ONNX reads a 0 there as "copy this axis",
    so a target with an empty axis is refused."""
    target = node.attrs["shape"]
    if 0 in target:
        raise GraphError(f"onnx export: reshape '{node.name}' ({node.site}) to {target} has an empty axis; ONNX "
                         "reads 0 in a Reshape as 'copy this axis'")
    shape = w.constant(f"{out}_shape", np.asarray(target, dtype=np.int64))
    w.node("Reshape", [ins[0], shape], [out])


def _transpose(w, node, ins, out):
    w.node("Transpose", ins, [out], perm=list(node.attrs["axes"]))


def _concat(w, node, ins, out):
    w.node("Concat", ins, [out], axis=int(node.attrs["axis"]))


def _cast(w, node, ins, out):
    w.node("Cast", ins, [out], to=w.helper.np_dtype_to_tensor_dtype(np.dtype(node.attrs["dtype"])))


FAR = 2 ** 62          # a Slice bound beyond any axis: ONNX clamps it, as Python clamps slice bounds


def _getitem(w, node, ins, out):
    """Slice for the slices and int indices (Python's bounds: ONNX Slice clamps and counts from the end alike),
    then Squeeze for the int indices and Unsqueeze for the None (new) axes."""
    index = _expanded(node.attrs["index"], len(node.inputs[0].shape))
    starts, ends, axes, steps, squeezed, new_axes = [], [], [], [], [], []
    axis = 0
    for position, item in enumerate(index):
        if item is None:
            new_axes.append(position - len(squeezed))
            continue
        if isinstance(item, slice):
            step = item.step or 1
            start = item.start if item.start is not None else (0 if step > 0 else -1)
            stop = item.stop if item.stop is not None else (FAR if step > 0 else -FAR)
        else:
            start, stop, step = int(item), (int(item) + 1 if item != -1 else FAR), 1
            squeezed.append(axis)
        if (start, stop, step) != (0, FAR, 1):
            starts.append(start), ends.append(stop), axes.append(axis), steps.append(step)
        axis += 1
    value = ins[0]
    if axes:
        parts = [w.constant(f"{out}_{part}", np.asarray(v, dtype=np.int64))
                 for part, v in (("starts", starts), ("ends", ends), ("axes", axes), ("steps", steps))]
        value = w.node("Slice", [value] + parts, [w.fresh(f"{out}_slice")])
    if squeezed:
        value = w.node("Squeeze", [value, w.constant(f"{out}_squeeze", np.asarray(squeezed, np.int64))],
                       [w.fresh(f"{out}_squeezed")])
    if new_axes:
        value = w.node("Unsqueeze", [value, w.constant(f"{out}_unsqueeze", np.asarray(new_axes, np.int64))],
                       [w.fresh(f"{out}_unsqueezed")])
    w.node("Identity", [value], [out])


def _expanded(index, ndim):
    """The index with its Ellipsis replaced by full slices."""
    index = tuple(index)
    if any(i is Ellipsis for i in index):
        at = next(k for k, i in enumerate(index) if i is Ellipsis)
        taken = sum(i is not None and i is not Ellipsis for i in index)
        index = index[:at] + (slice(None),) * (ndim - taken) + index[at + 1:]
    return index


WRITERS = {
    Add: _simple("Add"), Sub: _simple("Sub"), Mul: _simple("Mul"), Div: _simple("Div"),
    Maximum: _simple("Max"), Minimum: _simple("Min"), Neg: _simple("Neg"), Exp: _simple("Exp"),
    Log: _simple("Log"), Sqrt: _simple("Sqrt"), Pow: _pow,
    Relu: _simple("Relu"), Sigmoid: _simple("Sigmoid"), Tanh: _simple("Tanh"), LeakyRelu: _leaky_relu,
    Elu: _elu, Softmax: _softmax("Softmax"), LogSoftmax: _softmax("LogSoftmax"),
    Softplus: _simple("Softplus"), Silu: _silu, Gelu: _gelu, GeluTanh: _gelu_tanh, Relu6: _clip_between(0.0, 6.0),
    HardSigmoid: _hard_sigmoid, HardSwish: _simple("HardSwish"), Clip: _clip_between(None, None), Erf: _simple("Erf"),
    MatMul: _matmul, Conv2d: _conv,
    MaxPool2d: _max_pool, AvgPool2d: _avg_pool, LocalResponseNorm: _lrn,
    Sum: _reduce("ReduceSum"), Mean: _reduce("ReduceMean"), Max: _reduce("ReduceMax"),
    Reshape: _reshape, Transpose: _transpose, Concat: _concat, Cast: _cast, GetItem: _getitem,
}


# ----------------------------------------------------------------------------------------------------------------

def export(path, inputs, outputs, name="graphnet"):
    """Write the graph from `inputs` (placeholders) to `outputs` (tensors) as an ONNX model at `path`.

    Every node the outputs need must be an input, a variable or constant (exported with its current value), or an
    op ONNX can express (WRITERS). Returns the onnx ModelProto, checked with onnx.checker (full_check)."""
    onnx = _onnx()
    inputs, outputs = _tensor_list(inputs, "inputs"), _tensor_list(outputs, "outputs")
    for p in inputs:
        if not isinstance(p.op, Placeholder):
            raise GraphError(f"onnx export: input '{p.name}' ({p.site}) is a {p.op.name}, not a placeholder")
    needed = _needed(outputs)
    missing = [n for n in needed if isinstance(n.op, Placeholder) and n not in inputs]
    if missing:
        raise GraphError(f"onnx export: the outputs need the placeholder(s) {', '.join(repr(n.name) for n in missing)} "
                         f"({missing[0].site}); list them in inputs=[...]")
    w = Writer(onnx)
    for node in needed:
        w.names[node] = _unique(node.name, w.names.values())
    for node in needed:
        if isinstance(node.op, Placeholder):
            continue
        if isinstance(node.op, (VariableOp, ConstantOp)):
            w.initializers.append(onnx.numpy_helper.from_array(node.numpy(), w.name(node)))
            continue
        writer = WRITERS.get(type(node.op))
        if writer is None:
            raise GraphError(f"onnx export: {node.op.name} '{node.name}' ({node.site}) has no ONNX form in graphnet "
                             f"yet{_training_hint(node)}; exportable ops: "
                             f"{', '.join(sorted(c.name for c in WRITERS))}")
        writer(w, node, [w.name(i) for i in node.inputs], w.name(node))
    graph = onnx.helper.make_graph(
        w.nodes, name, [_value_info(onnx, w.name(p), p) for p in inputs],
        [_value_info(onnx, w.name(t), t) for t in outputs], initializer=w.initializers)
    model = onnx.helper.make_model(graph, producer_name="graphnet",
                                   opset_imports=[onnx.helper.make_opsetid("", OPSET)])
    model.ir_version = min(model.ir_version, 10)       # what current runtimes read
    onnx.checker.check_model(model, full_check=True)
    write_atomically(path, lambda file: file.write(model.SerializeToString()))
    return model


def _tensor_list(values, what):
    values = [values] if isinstance(values, Tensor) else list(values)
    if not values or not all(isinstance(v, Tensor) for v in values):
        raise GraphError(f"onnx export: {what} must be a tensor or a non-empty list of tensors, got {values!r}")
    return values


def _needed(outputs):
    """The nodes the outputs depend on, in creation order (a topological order)."""
    return sorted(prune(outputs), key=lambda n: n.id)


def _unique(name, taken):
    candidate, k = name, 1
    taken = set(taken)
    while candidate in taken:
        k += 1
        candidate = f"{name}_{k}"
    return candidate


def _training_hint(node):
    if node.phase != "forward" or isinstance(node.op, TRAINING_OPS):
        return " (it belongs to training: export a graph built with training=False, without losses or updates)"
    return ""


def _value_info(onnx, name, tensor):
    """A graph input or output: its dtype and shape, a None size a named dynamic axis ("batch" for axis 0)."""
    dims = [("batch" if axis == 0 else f"{name}_dim{axis}") if d is None else int(d)
            for axis, d in enumerate(tensor.shape)]
    return onnx.helper.make_tensor_value_info(name, onnx.helper.np_dtype_to_tensor_dtype(tensor.dtype), dims)
