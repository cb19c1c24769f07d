"""Activation functions and their derivatives.

    relu(x) = max(x, 0)                 leaky_relu(x) = x if x > 0 else slope·x
    elu(x) = x if x > 0 else α(eˣ − 1)  sigmoid(x) = 1 / (1 + e⁻ˣ)      tanh(x)
    softmax(x)ᵢ = e^(xᵢ − m) / Σⱼ e^(xⱼ − m),  m = maxⱼ xⱼ  (subtracting m keeps exp from overflowing)
    log_softmax(x)ᵢ = xᵢ − m − log Σⱼ e^(xⱼ − m)
    maxout(x, k): the max over k linear pieces — groups of k consecutive features
"""
from ..errors import GraphError
from ..graph import format_shape
from ..op import Op, numel
from ._util import apply, checked, normalize_axes, require_float, tensors


class Activation(Op):
    def infer_shape(self, in_shapes, attrs, ref_shapes):
        return in_shapes[0]


class Derivative(Activation):
    """dy times the activation's derivative: the gradient op of an activation."""
    differentiable = False

    def infer_shape(self, in_shapes, attrs, ref_shapes):
        return in_shapes[0]


class Relu(Activation):
    name = "relu"

    def gradient(self, node, dy):
        return [apply(ReluGrad(), [dy, node], name="relu_grad")]


class ReluGrad(Derivative):
    """dy · [y > 0]: reading relu's output y rather than its input (y > 0 exactly where x > 0) frees the input,
    so a backend may fuse relu into the op before it."""
    name = "relu_grad"


class LeakyRelu(Activation):
    name = "leaky_relu"

    def describe(self, attrs):
        return f"slope={attrs['slope']:g}"

    def gradient(self, node, dy):
        return [apply(LeakyReluGrad(), [dy, node.inputs[0]], dict(node.attrs), name="leaky_relu_grad")]


class LeakyReluGrad(Derivative):
    """dy · (1 if x > 0 else slope)"""
    name = "leaky_relu_grad"


class Elu(Activation):
    name = "elu"

    def describe(self, attrs):
        return f"alpha={attrs['alpha']:g}"

    def gradient(self, node, dy):
        return [apply(EluGrad(), [dy, node.inputs[0], node], dict(node.attrs), name="elu_grad")]


class EluGrad(Derivative):
    """dy · (1 if x > 0 else y + α), since α(eˣ − 1) + α = αeˣ"""
    name = "elu_grad"


class Sigmoid(Activation):
    name = "sigmoid"

    def flops(self, in_shapes, out_shape, attrs):
        return 4 * numel(out_shape)

    def gradient(self, node, dy):
        return [apply(SigmoidGrad(), [dy, node], name="sigmoid_grad")]


class SigmoidGrad(Derivative):
    """dy · y(1 − y)"""
    name = "sigmoid_grad"


class Tanh(Activation):
    name = "tanh"

    def gradient(self, node, dy):
        return [apply(TanhGrad(), [dy, node], name="tanh_grad")]


class TanhGrad(Derivative):
    """dy · (1 − y²)"""
    name = "tanh_grad"


class Softmax(Activation):
    name = "softmax"

    def flops(self, in_shapes, out_shape, attrs):
        return 5 * numel(out_shape)

    def describe(self, attrs):
        return f"axis={attrs['axis']}"

    def gradient(self, node, dy):
        return [apply(SoftmaxGrad(), [dy, node], dict(node.attrs), name="softmax_grad")]


class SoftmaxGrad(Derivative):
    """y · (dy − Σ dy·y) along the axis"""
    name = "softmax_grad"


class LogSoftmax(Softmax):
    name = "log_softmax"

    def gradient(self, node, dy):
        return [apply(LogSoftmaxGrad(), [dy, node], dict(node.attrs), name="log_softmax_grad")]


class LogSoftmaxGrad(Derivative):
    """dy − e^y · Σ dy along the axis"""
    name = "log_softmax_grad"


def _activation(op, x, name, **attrs):
    (x,) = tensors(x)
    require_float(x, op.name)
    return apply(op, [x], attrs, name=name)


def relu(x, name=None):
    """max(x, 0)"""
    return _activation(Relu(), x, name)


def leaky_relu(x, slope=0.01, name=None):
    """x if x > 0 else slope·x"""
    return _activation(LeakyRelu(), x, name, slope=float(slope))


def elu(x, alpha=1.0, name=None):
    """x if x > 0 else α(eˣ − 1)"""
    return _activation(Elu(), x, name, alpha=float(alpha))


def sigmoid(x, name=None):
    """1 / (1 + e⁻ˣ), computed without overflow for large |x|."""
    return _activation(Sigmoid(), x, name)


def tanh(x, name=None):
    return _activation(Tanh(), x, name)


def softmax(x, axis=-1, name=None):
    """e^(xᵢ − m) / Σⱼ e^(xⱼ − m) along `axis`."""
    (x,) = tensors(x)
    (axis,) = checked("softmax", normalize_axes, axis, x.ndim)
    return _activation(Softmax(), x, name, axis=axis)


def log_softmax(x, axis=-1, name=None):
    """xᵢ − m − log Σⱼ e^(xⱼ − m) along `axis` (stable log of softmax)."""
    (x,) = tensors(x)
    (axis,) = checked("log_softmax", normalize_axes, axis, x.ndim)
    return _activation(LogSoftmax(), x, name, axis=axis)


def maxout(x, pieces, axis=1, name=None):
    """Maxout (Goodfellow et al. 2013): split `axis` into groups of `pieces` consecutive features and keep each
    group's max, so (N, F) becomes (N, F/pieces). Built from reshape and max, as the schedule shows."""
    from .reduce import max as reduce_max
    from .shape import reshape
    (x,) = tensors(x)
    (axis,) = checked("maxout", normalize_axes, axis, x.ndim)
    features = x.shape[axis]
    if not isinstance(pieces, int) or pieces < 1:
        raise GraphError(f"maxout '{x.name}': pieces must be a positive int, got {pieces!r}")
    if features is None or features % pieces:
        raise GraphError(f"maxout '{x.name}': axis {axis} of shape {format_shape(x.shape)} has {features} "
                         f"features, which is not a multiple of pieces={pieces}")
    grouped = x.shape[:axis] + (features // pieces, pieces) + x.shape[axis + 1:]
    grouped = tuple(-1 if d is None else d for d in grouped)
    return reduce_max(reshape(x, grouped), axis=axis + 1, name=name or "maxout")
