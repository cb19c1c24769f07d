"""Import an ONNX model (opset 7 and newer) as a graphnet graph: each ONNX node becomes graphnet ops, by READERS.

    loaded = graphnet.onnx.load("net.onnx")
    loaded.inputs       {ONNX input name: placeholder}       (a dynamic axis becomes None)
    loaded.outputs      {ONNX output name: tensor}
    loaded.variables    {initializer name: variable}         (float initializers; trainable)
    loaded.graph        the graphnet Graph holding them: compile it on any device, inspect, fine-tune, export again

What ONNX says that graphnet computes by composition (the schedule shows the pieces):
    Gemm                   alpha·op(A)·op(B) + beta·C
    BatchNormalization     (x − mean)·scale/√(var + ε) + B, with the running statistics (inference)
    Softmax before opset 13  over the input flattened to 2-D from `axis` on, as those opsets define it
    Clip                   minimum(maximum(x, min), max)
    Dropout, Identity      the input itself (inference)
MaxPool and AveragePool keep their ceil_mode, asymmetric pads and count_include_pad (ONNX's default 0: the
average of the real positions only); LRN is local_response_norm with ONNX's window, which starts (size − 1) // 2
channels before the centre (PyTorch's starts size // 2 before: the same for an odd size).
Shape-like inputs (Reshape's shape, Unsqueeze's axes, Slice's bounds, Clip's bounds) must be constants: an
initializer, a Constant node, or the Shape of a tensor whose sizes are all known. Anything else — an op or an
attribute graphnet has no form for (pooling dilations, ...), or sizes graphnet's shape rules refuse — is an error
naming it and the node.
"""
import numpy as np

from .. import ops
from ..errors import GraphError, ShapeError
from ..graph import Graph, constant, placeholder, variable


class Loaded:
    """The result of load(): the graph and its inputs, outputs and variables by their ONNX names."""

    def __init__(self, graph, inputs, outputs, variables, opset):
        self.graph, self.inputs, self.outputs, self.variables, self.opset = graph, inputs, outputs, variables, opset

    def __repr__(self):
        return (f"<graphnet.onnx.Loaded opset {self.opset}: inputs {list(self.inputs)}, outputs {list(self.outputs)}, "
                f"{len(self.variables)} variables>")


class Unsupported(GraphError):
    """An ONNX node graphnet cannot import (op or attribute)."""


class Reader:
    """The values of one import by ONNX name: graphnet tensors, or NumPy arrays while they are constants."""

    def __init__(self, onnx, opset):
        self.onnx, self.opset = onnx, opset
        self.values = {}              # name -> Tensor or np.ndarray
        self.initializers = {}        # name -> np.ndarray (float ones become variables when first used)
        self.variables = {}
        self.node = None              # the ONNX node being read, for messages

    def where(self):
        n = self.node
        return f"ONNX node '{n.name or n.output[0]}' ({n.op_type})"

    def refuse(self, what):
        raise Unsupported(f"graphnet.onnx.load: {self.where()}: {what}")

    def tensor(self, name):
        """The value as a graphnet tensor: a float initializer becomes a trainable variable (once)."""
        value = self.values.get(name)
        if value is None:
            self.refuse(f"input '{name}' is not produced by any earlier node, input or initializer")
        if isinstance(value, np.ndarray):
            if name in self.initializers and value.dtype.kind == "f":
                value = self.variables[name] = variable(value, name=_scoped(name))
            else:
                value = constant(value)
            self.values[name] = value
        return value

    def static(self, name, what):
        """The value as a NumPy array: it must be constant (initializer, Constant, Shape of a known shape)."""
        value = self.values.get(name)
        if isinstance(value, np.ndarray):
            return value
        if value is not None and value.op.is_variable and name in self.initializers:
            return self.initializers[name]
        self.refuse(f"its {what} ('{name}') must be a constant (an initializer or a Constant node); graphnet's "
                    "graphs have static shapes")

    def is_shape_constant(self, name):
        """A constant that is no weight: a Constant node's value, a Shape, an integer initializer."""
        value = self.values.get(name)
        return isinstance(value, np.ndarray) and not (name in self.initializers and value.dtype.kind == "f")

    def attributes(self, node):
        return {a.name: self.onnx.helper.get_attribute_value(a) for a in node.attribute}


def _scoped(name):
    return name.replace(":", "_") or "initializer"


# ----------------------------------------------------------------------------------------------------------------
# readers: fn(reader, inputs (names), attributes) -> list of output values

def _only(reader, attrs, allowed, defaults=None):
    """Refuse an attribute graphnet would silently ignore: one not in `allowed`, unless it has the value graphnet
    computes anyway (`defaults`)."""
    for key, value in attrs.items():
        if key not in allowed and not (defaults and key in defaults and value == defaults[key]):
            reader.refuse(f"attribute {key}={value!r} is not supported by graphnet's import")


def _binary(fn):
    def read(r, ins, attrs):
        _only(r, attrs, ())
        return [fn(r.tensor(ins[0]), r.tensor(ins[1]))]
    return read


def _unary(fn):
    def read(r, ins, attrs):
        _only(r, attrs, ())
        return [fn(r.tensor(ins[0]))]
    return read


def _leaky_relu(r, ins, attrs):
    _only(r, attrs, ("alpha",))
    return [ops.leaky_relu(r.tensor(ins[0]), attrs.get("alpha", 0.01))]


def _elu(r, ins, attrs):
    _only(r, attrs, ("alpha",))
    return [ops.elu(r.tensor(ins[0]), attrs.get("alpha", 1.0))]


def _softmax(fn):
    def read(r, ins, attrs):
        _only(r, attrs, ("axis",))
        x = r.tensor(ins[0])
        if r.opset >= 13:
            return [fn(x, axis=attrs.get("axis", -1))]
        axis = attrs.get("axis", 1) % x.ndim                     # opsets < 13: over the 2-D flattening
        inner = x.shape[axis:]
        if None in inner:
            r.refuse(f"a softmax over axes {axis}.. needs their sizes known, got {x.shape}")
        flat = ops.reshape(x, (-1, int(np.prod(inner))))
        return [ops.reshape(fn(flat, axis=-1), tuple(-1 if d is None else d for d in x.shape))]
    return read


def _clip(r, ins, attrs):
    x = r.tensor(ins[0])
    if r.opset < 11:
        low, high = attrs.get("min"), attrs.get("max")
    else:
        _only(r, attrs, ())
        low = r.static(ins[1], "min").item() if len(ins) > 1 and ins[1] else None
        high = r.static(ins[2], "max").item() if len(ins) > 2 and ins[2] else None
    if low is not None and high is not None:
        return [ops.clip(x, low, high)]
    if low is not None:
        x = ops.maximum(x, low)
    if high is not None:
        x = ops.minimum(x, high)
    return [x]


def _hard_sigmoid(r, ins, attrs):
    """max(0, min(1, αx + β)): graphnet's hard_sigmoid where α = 1/6 and β = 1/2 (PyTorch's), else the clip of it
    (ONNX's defaults are α = 0.2, β = 0.5)."""
    _only(r, attrs, ("alpha", "beta"))
    x, alpha, beta = r.tensor(ins[0]), attrs.get("alpha", 0.2), attrs.get("beta", 0.5)
    if np.isclose(alpha, 1 / 6, rtol=1e-6) and beta == 0.5:
        return [ops.hard_sigmoid(x)]
    return [ops.clip(x * alpha + beta, 0.0, 1.0)]


def _gelu(r, ins, attrs):
    """Gelu (opset 20): approximate="none" is gelu, "tanh" gelu_tanh."""
    _only(r, attrs, ("approximate",))
    approximate = attrs.get("approximate", "none")
    approximate = approximate.decode() if isinstance(approximate, bytes) else approximate
    if approximate not in ("none", "tanh"):
        r.refuse(f"attribute approximate={approximate!r} is not one of 'none', 'tanh'")
    return [(ops.gelu if approximate == "none" else ops.gelu_tanh)(r.tensor(ins[0]))]


def _identity(r, ins, attrs):
    return [r.values[ins[0]]]


def _dropout(r, ins, attrs):
    _only(r, attrs, ("ratio", "seed"), {"is_test": 1})
    if len(ins) > 2 and ins[2] and bool(r.static(ins[2], "training_mode")):
        r.refuse("training_mode=True: graphnet imports inference graphs (dropout is the identity there)")
    return [r.values[ins[0]]]


def _matmul(r, ins, attrs):
    _only(r, attrs, ())
    return [ops.matmul(r.tensor(ins[0]), r.tensor(ins[1]))]


def _gemm(r, ins, attrs):
    _only(r, attrs, ("alpha", "beta", "transA", "transB"), {"broadcast": 1})
    product = ops.matmul(r.tensor(ins[0]), r.tensor(ins[1]), transpose_a=bool(attrs.get("transA", 0)),
                         transpose_b=bool(attrs.get("transB", 0)))
    alpha, beta = attrs.get("alpha", 1.0), attrs.get("beta", 1.0)
    if alpha != 1.0:
        product = product * alpha
    if len(ins) > 2 and ins[2]:
        c = r.tensor(ins[2])
        product = product + (c * beta if beta != 1.0 else c)
    return [product]


def _pads(r, attrs, x, kernel, strides, dilations):
    """graphnet's ((top, bottom), (left, right)) from ONNX's pads or auto_pad."""
    auto = attrs.get("auto_pad", b"NOTSET")
    auto = auto.decode() if isinstance(auto, bytes) else auto
    if auto in ("NOTSET", ""):
        top, left, bottom, right = attrs.get("pads", [0, 0, 0, 0])
        return ((top, bottom), (left, right))
    if auto == "VALID":
        return ((0, 0), (0, 0))
    pads = []
    for size, k, s, d in zip(x.shape[2:], kernel, strides, dilations):
        if size is None:
            r.refuse(f"auto_pad={auto} needs the input's height and width known, got {x.shape}")
        total = max((-(-size // s) - 1) * s + (k - 1) * d + 1 - size, 0)
        small, large = total // 2, total - total // 2
        pads.append((small, large) if auto == "SAME_UPPER" else (large, small))
    return tuple(pads)


def _conv(r, ins, attrs):
    _only(r, attrs, ("kernel_shape", "strides", "pads", "dilations", "group", "auto_pad"))
    x, w = r.tensor(ins[0]), r.tensor(ins[1])
    if x.ndim != 4:
        r.refuse(f"a {x.ndim - 2}-D convolution: graphnet's conv2d takes (N, C, H, W)")
    strides, dilations = attrs.get("strides", [1, 1]), attrs.get("dilations", [1, 1])
    pads = _pads(r, attrs, x, w.shape[2:], strides, dilations)
    b = r.tensor(ins[2]) if len(ins) > 2 and ins[2] else None
    return [ops.conv2d(x, w, b, stride=tuple(strides), padding=pads, dilation=tuple(dilations),
                       groups=attrs.get("group", 1))]


def _pool(kind):
    def read(r, ins, attrs):
        _only(r, attrs, ("kernel_shape", "strides", "pads", "auto_pad", "count_include_pad", "ceil_mode",
                         "dilations", "storage_order"))
        if any(d != 1 for d in attrs.get("dilations", [1, 1])):
            r.refuse(f"dilations={attrs['dilations']}: graphnet's pooling has no dilation")
        if attrs.get("storage_order", 0):
            r.refuse("storage_order=1 (the indices output) is not supported")
        x = r.tensor(ins[0])
        if x.ndim != 4:
            r.refuse(f"a {x.ndim - 2}-D pooling: graphnet's pooling takes (N, C, H, W)")
        kernel = tuple(attrs["kernel_shape"])
        strides = tuple(attrs.get("strides", [1] * len(kernel)))     # ONNX's default stride is 1, not the kernel
        pads = _pads(r, attrs, x, kernel, strides, (1, 1))
        ceil_mode = bool(attrs.get("ceil_mode", 0))
        if kind == "max":
            return [ops.max_pool2d(x, kernel, stride=strides, padding=pads, ceil_mode=ceil_mode)]
        return [ops.avg_pool2d(x, kernel, stride=strides, padding=pads, ceil_mode=ceil_mode,
                               count_include_pad=bool(attrs.get("count_include_pad", 0)))]
    return read


def _lrn(r, ins, attrs):
    """local_response_norm with ONNX's window: (size − 1) // 2 channels before the centre."""
    _only(r, attrs, ("size", "alpha", "beta", "bias"))
    size = attrs["size"]
    return [ops.local_response_norm(r.tensor(ins[0]), size, alpha=attrs.get("alpha", 1e-4),
                                    beta=attrs.get("beta", 0.75), k=attrs.get("bias", 1.0),
                                    channels_before=(size - 1) // 2)]


def _global_average(r, ins, attrs):
    return [ops.mean(r.tensor(ins[0]), axis=(2, 3), keepdims=True)]


def _batch_norm(r, ins, attrs):
    """y = (x − mean)·scale/√(var + ε) + B: scale and B stay variables (trainable), the running statistics are
    folded into a constant factor and shift."""
    _only(r, attrs, ("epsilon", "momentum"), {"is_test": 1, "spatial": 1, "training_mode": 0})
    x, scale, bias = r.tensor(ins[0]), r.tensor(ins[1]), r.tensor(ins[2])
    mean, var = r.static(ins[3], "mean"), r.static(ins[4], "var")
    inverse_std = (1 / np.sqrt(var + attrs.get("epsilon", 1e-5))).astype(x.dtype)
    per_channel = (1, -1) + (1,) * (x.ndim - 2)
    factor = ops.reshape(scale * constant(inverse_std), per_channel)
    shift = ops.reshape(bias - scale * constant((mean * inverse_std).astype(x.dtype)), per_channel)
    return [x * factor + shift]


def _reshape(r, ins, attrs):
    """ONNX's 0 copies the input's size on that axis; a copied dynamic batch axis beside a -1 is resolved from the
    other sizes (graphnet's reshape takes one unknown)."""
    x = r.tensor(ins[0])
    target = list(attrs["shape"]) if r.opset < 5 else [int(d) for d in r.static(ins[1], "shape")]
    if not attrs.get("allowzero", 0):
        target = [x.shape[k] if d == 0 else d for k, d in enumerate(target)]
    target = [-1 if d is None else d for d in target]
    if target.count(-1) > 1 and target[0] == -1 and x.shape[0] is None and None not in x.shape[1:]:
        known = int(np.prod([d for d in target[1:] if d != -1]))
        target[1 + target[1:].index(-1)] = int(np.prod(x.shape[1:])) // known
    if target.count(-1) > 1:
        r.refuse(f"reshaping {x.shape} to {tuple(target)} leaves more than one size unknown")
    return [ops.reshape(x, tuple(target))]


def _flatten(r, ins, attrs):
    x = r.tensor(ins[0])
    axis = attrs.get("axis", 1) % max(x.ndim, 1)
    head, tail = x.shape[:axis], x.shape[axis:]
    rows = int(np.prod(head)) if None not in head else -1
    cols = int(np.prod(tail)) if None not in tail else -1
    if rows == -1 and cols == -1:
        r.refuse(f"flattening {x.shape} at axis {axis} leaves two unknown sizes")
    return [ops.reshape(x, (rows, cols))]


def _transpose(r, ins, attrs):
    x = r.tensor(ins[0])
    return [ops.transpose(x, tuple(attrs.get("perm", range(x.ndim - 1, -1, -1))))]


def _axes(r, ins, attrs, first_opset_with_input):
    if r.opset >= first_opset_with_input:
        return [int(a) for a in r.static(ins[1], "axes")] if len(ins) > 1 and ins[1] else None
    return attrs.get("axes")


def _squeeze(r, ins, attrs):
    x = r.tensor(ins[0])
    axes = _axes(r, ins, attrs, 13)
    axes = [a % x.ndim for a in axes] if axes is not None else [k for k, d in enumerate(x.shape) if d == 1]
    if any(x.shape[a] != 1 for a in axes):
        r.refuse(f"squeezing axes {axes} of {x.shape}: each must have size 1")
    return [ops.reshape(x, tuple(-1 if d is None else d for k, d in enumerate(x.shape) if k not in axes))]


def _unsqueeze(r, ins, attrs):
    x = r.tensor(ins[0])
    axes = _axes(r, ins, attrs, 13)
    rank = x.ndim + len(axes)
    shape = list(x.shape)
    axes = sorted(a % rank for a in axes)
    for a in axes:
        shape.insert(a, 1)
    return [ops.reshape(x, tuple(-1 if d is None else d for d in shape))]


def _concat(r, ins, attrs):
    """Concat; of constants only (a shape being assembled), a constant."""
    if all(r.is_shape_constant(name) for name in ins):
        return [np.concatenate([r.values[name] for name in ins], axis=attrs["axis"])]
    return [ops.concat([r.tensor(name) for name in ins], axis=attrs["axis"])]


def _constant(r, ins, attrs):
    if "value" not in attrs:
        r.refuse(f"only Constant(value=tensor) is supported, got attributes {sorted(attrs)}")
    return [r.onnx.numpy_helper.to_array(attrs["value"])]


def _constant_of_shape(r, ins, attrs):
    shape = [int(d) for d in r.static(ins[0], "shape")]
    value = r.onnx.numpy_helper.to_array(attrs["value"]) if "value" in attrs else np.zeros(1, np.float32)
    return [np.full(shape, value.reshape(-1)[0], dtype=value.dtype)]


def _shape(r, ins, attrs):
    value = r.values.get(ins[0])
    shape = value.shape if value is not None else None
    if shape is None or None in shape:
        r.refuse(f"Shape of '{ins[0]}' {shape}: only a shape whose sizes are all known is a constant")
    return [np.asarray(shape, dtype=np.int64)]


def _variadic(fn):
    def read(r, ins, attrs):
        _only(r, attrs, ())
        result = r.tensor(ins[0])
        for name in ins[1:]:
            result = fn(result, r.tensor(name))
        return [result]
    return read


def _pow(r, ins, attrs):
    exponent = r.static(ins[1], "exponent")
    if exponent.size != 1:
        r.refuse(f"an exponent of shape {exponent.shape}: graphnet's pow takes one constant exponent")
    return [ops.pow(r.tensor(ins[0]), float(exponent.reshape(-1)[0]))]


def _reduce(fn):
    def read(r, ins, attrs):
        _only(r, attrs, ("axes", "keepdims"), {"noop_with_empty_axes": 0})
        axes = _axes(r, ins, attrs, 18 if fn is not ops.sum else 13)
        return [fn(r.tensor(ins[0]), axis=None if axes is None else tuple(axes), keepdims=bool(attrs.get("keepdims", 1)))]
    return read


def _cast(r, ins, attrs):
    _only(r, attrs, ("to",), {"saturate": 1})
    return [ops.cast(r.tensor(ins[0]), r.onnx.helper.tensor_dtype_to_np_dtype(attrs["to"]))]


def _slice(r, ins, attrs):
    x = r.tensor(ins[0])
    if r.opset < 10:
        starts, ends = attrs["starts"], attrs["ends"]
        axes, steps = attrs.get("axes", range(len(starts))), [1] * len(starts)
    else:
        starts, ends = (r.static(name, what) for name, what in zip(ins[1:3], ("starts", "ends")))
        axes = r.static(ins[3], "axes") if len(ins) > 3 and ins[3] else range(len(starts))
        steps = r.static(ins[4], "steps") if len(ins) > 4 and ins[4] else [1] * len(starts)
    index = [slice(None)] * x.ndim
    for start, end, axis, step in zip(starts, ends, axes, steps):
        index[int(axis) % x.ndim] = slice(int(start), int(end), int(step))
    return [ops.getitem(x, tuple(index))]


READERS = {
    "Max": _variadic(ops.maximum), "Min": _variadic(ops.minimum), "Neg": _unary(ops.neg), "Exp": _unary(ops.exp),
    "Log": _unary(ops.log), "Sqrt": _unary(ops.sqrt), "Pow": _pow, "Cast": _cast, "Slice": _slice,
    "ReduceSum": _reduce(ops.sum), "ReduceMean": _reduce(ops.mean), "ReduceMax": _reduce(ops.max),
    "Add": _binary(ops.add), "Sub": _binary(ops.sub), "Mul": _binary(ops.mul), "Div": _binary(ops.div),
    "Sum": _variadic(ops.add), "Relu": _unary(ops.relu), "Sigmoid": _unary(ops.sigmoid), "Tanh": _unary(ops.tanh),
    "LeakyRelu": _leaky_relu, "Elu": _elu, "Softmax": _softmax(ops.softmax), "LogSoftmax": _softmax(ops.log_softmax),
    "Clip": _clip, "Softplus": _unary(ops.softplus), "HardSigmoid": _hard_sigmoid,
    "HardSwish": _unary(ops.hard_swish), "Gelu": _gelu, "Erf": _unary(ops.erf), "MatMul": _matmul, "Gemm": _gemm, "Conv": _conv,
    "MaxPool": _pool("max"), "AveragePool": _pool("avg"), "GlobalAveragePool": _global_average, "LRN": _lrn,
    "BatchNormalization": _batch_norm, "Dropout": _dropout, "Identity": _identity,
    "Concat": _concat, "Reshape": _reshape, "Flatten": _flatten, "Transpose": _transpose,
    "Squeeze": _squeeze, "Unsqueeze": _unsqueeze,
    "Constant": _constant, "ConstantOfShape": _constant_of_shape, "Shape": _shape,
}


# ----------------------------------------------------------------------------------------------------------------

def load(path):
    """Build a graphnet graph from the ONNX model at `path` (opset 7 and newer); returns a Loaded."""
    from .exporter import _onnx
    onnx = _onnx()
    model = onnx.load(str(path))
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    if opset is None or opset < 7:
        raise Unsupported(f"graphnet.onnx.load: '{path}' uses opset {opset}; graphnet reads opset 7 and newer")
    reader = Reader(onnx, opset)
    graph = Graph()
    with graph:
        for init in model.graph.initializer:
            reader.initializers[init.name] = reader.values[init.name] = onnx.numpy_helper.to_array(init).copy()
        inputs = {}
        for info in model.graph.input:
            if info.name in reader.initializers:
                continue                                   # opsets < 9 list initializers among the inputs
            inputs[info.name] = reader.values[info.name] = _placeholder(onnx, info)
        for node in model.graph.node:
            reader.node = node
            if node.domain not in ("", "ai.onnx"):
                reader.refuse(f"domain '{node.domain}' is not ONNX's own")
            read = READERS.get(node.op_type)
            if read is None:
                reader.refuse(f"graphnet has no import for {node.op_type} (it reads: {', '.join(sorted(READERS))})")
            try:
                produced = read(reader, list(node.input), reader.attributes(node))
            except ShapeError as error:                    # the sizes the file gives break a shape rule
                reader.refuse(str(error))
            for name, value in zip(node.output, produced):
                if name:
                    reader.values[name] = value
        outputs = {}
        for info in model.graph.output:
            reader.node = None
            value = reader.values.get(info.name)
            outputs[info.name] = constant(value) if isinstance(value, np.ndarray) else value
    return Loaded(graph, inputs, outputs, reader.variables, opset)


def _placeholder(onnx, info):
    kind = info.type.tensor_type
    dtype = onnx.helper.tensor_dtype_to_np_dtype(kind.elem_type)
    shape = tuple(d.dim_value if d.HasField("dim_value") else None for d in kind.shape.dim)
    return placeholder(shape, dtype=dtype, name=_scoped(info.name))
