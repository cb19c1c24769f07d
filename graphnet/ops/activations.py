"""Activations along an axis, and maxout. The pointwise activations (relu, sigmoid, softplus, gelu, …) are
declared as formulas in graphnet/ops/formulas.py and made in graphnet/ops/pointwise.py; their classes are
importable from here too.

    softmax(x)ᵢ = e^(xᵢ − m) / Σⱼ e^(xⱼ − m),  m = maxⱼ xⱼ  (subtracting m keeps exp from overflowing)
    log_softmax(x)ᵢ = xᵢ − m − log Σⱼ e^(xⱼ − m)
    maxout(x, k): the max over k linear pieces — groups of k consecutive features
"""
from ..errors import GraphError
from ..graph import format_shape
from ..op import Op, numel
from ._util import apply, checked, normalize_axes, require_float, tensors
from .pointwise import OPS

Relu, ReluGrad = OPS["relu"]
LeakyRelu, LeakyReluGrad = OPS["leaky_relu"]
Elu, EluGrad = OPS["elu"]
Sigmoid, SigmoidGrad = OPS["sigmoid"]
Tanh, TanhGrad = OPS["tanh"]


class Activation(Op):
    def infer_shape(self, in_shapes, attrs, ref_shapes):
        return in_shapes[0]


class Derivative(Activation):
    """dy times the activation's derivative: the gradient op of an activation."""
    differentiable = False


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
