"""Reductions over axes: sum, mean, max — and broadcast_to, the adjoint of summing.

The functions shadow the builtins sum and max inside this module, as numpy's do.
"""
import numpy as np

from ..op import Op, numel
from ._util import apply, checked, normalize_axes, tensors
from .dtypes import cast


def reduced_shape(shape, axes, keepdims):
    if keepdims:
        return tuple(1 if a in axes else d for a, d in enumerate(shape))
    return tuple(d for a, d in enumerate(shape) if a not in axes)


class Reduction(Op):
    def infer_shape(self, in_shapes, attrs, ref_shapes):
        return reduced_shape(in_shapes[0], attrs["axes"], attrs["keepdims"])

    def flops(self, in_shapes, out_shape, attrs):
        return numel(in_shapes[0])

    def describe(self, attrs):
        return f"axes={attrs['axes']}" + (" keepdims" if attrs["keepdims"] else "")


class Sum(Reduction):
    name = "sum"

    def gradient(self, node, dy):
        return [broadcast_to(dy, node.inputs[0], axes=node.attrs["axes"])]


class Mean(Reduction):
    name = "mean"

    def gradient(self, node, dy):
        return [broadcast_to(dy, node.inputs[0], axes=node.attrs["axes"], mean=True)]


class Max(Reduction):
    name = "max"

    def gradient(self, node, dy):
        x = node.inputs[0]
        return [apply(MaxGrad(), [dy, x, node], dict(node.attrs), name="max_grad")]


class MaxGrad(Op):
    """dy routed to the maxima of x; ties share it equally (the subgradient PyTorch's amax uses)."""
    name = "max_grad"
    differentiable = False

    def infer_shape(self, in_shapes, attrs, ref_shapes):
        return in_shapes[1]

    def describe(self, attrs):
        return f"axes={attrs['axes']}"


class BroadcastTo(Op):
    """Repeat `dy` along the axes a reduction removed, to the shape of `like`; with mean=True also divide by the
    number of elements each output averaged."""
    name = "broadcast_to"

    def infer_shape(self, in_shapes, attrs, ref_shapes):
        return ref_shapes[0]

    def kernel_params(self, in_shapes, out_shape, attrs, ref_shapes):
        axes = attrs["axes"]
        if axes is None:                       # NumPy broadcasting: leading axes and size-1 axes
            keep_shape = (1,) * (len(out_shape) - len(in_shapes[0])) + tuple(in_shapes[0])
        else:
            keep_shape = tuple(1 if a in axes else d for a, d in enumerate(out_shape))
        count = numel(out_shape) // numel(keep_shape) if numel(keep_shape) else 1
        mean = attrs["mean"] and count > 0             # a mean over no elements has no gradient to scale
        return {"keep_shape": keep_shape, "scale": 1.0 / count if mean else 1.0}

    def describe(self, attrs):
        return "mean" if attrs["mean"] else ""

    def gradient(self, node, dy):
        from .elementwise import sum_to
        from .shape import reshape_like
        x, axes = node.inputs[0], node.attrs["axes"]
        if axes is None:
            return [sum_to(dy, x)]
        reduce = mean if node.attrs["mean"] else sum
        return [reshape_like(reduce(dy, axis=axes), x)]


def broadcast_to(dy, like, axes=None, mean=False):
    return apply(BroadcastTo(), [dy], {"axes": axes, "mean": mean}, refs=[like], name="broadcast_to")


def _reduction(op, x, axis, keepdims, name, numpy_function=None):
    """The reduction `op` of x over `axis`; with `numpy_function`, x is first cast to the dtype that NumPy's
    function returns for x's dtype (sum: bools and small integers to int64; mean: integers to float64)."""
    (x,) = tensors(x)
    axes = checked(op.name, normalize_axes, axis, x.ndim)
    if numpy_function is not None:
        x = cast(x, numpy_function(np.zeros(1, x.dtype)).dtype)
    return apply(op, [x], {"axes": axes, "keepdims": bool(keepdims)}, name=name)


def sum(x, axis=None, keepdims=False, name=None):
    """Sum over `axis` (None = all axes); bools and small integers are summed as int64, as NumPy does."""
    return _reduction(Sum(), x, axis, keepdims, name, np.sum)


def mean(x, axis=None, keepdims=False, name=None):
    """Mean over `axis` (None = all axes); the mean of integers is float64, as in NumPy."""
    return _reduction(Mean(), x, axis, keepdims, name, np.mean)


def max(x, axis=None, keepdims=False, name=None):
    """Maximum over `axis` (None = all axes)."""
    return _reduction(Max(), x, axis, keepdims, name)
