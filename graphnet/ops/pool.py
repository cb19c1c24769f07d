"""Pooling over NCHW windows: max_pool2d, avg_pool2d, global_avg_pool2d.

    output height = floor((H + P_top + P_bottom − R) / S) + 1     (stride defaults to the window size)
    max: out = max over the window;  avg: out = sum over the window / (R·S), padding counted as zeros
"""
from ..errors import ShapeRuleViolation
from ..graph import format_shape
from ..op import Op, numel
from .. import shapes
from ._util import apply, checked, require_float, tensors
from .reduce import mean


class Pool2d(Op):
    def infer_shape(self, in_shapes, attrs, ref_shapes):
        (x,) = in_shapes
        if len(x) != 4:
            raise ShapeRuleViolation(f"input must be 4-D (N, C, H, W), got {format_shape(x)}")
        (kh, kw), (sh, sw), ((pt, pb), (pl, pr)) = attrs["kernel_size"], attrs["stride"], attrs["padding"]
        return x[:2] + (shapes.pool_output_size(x[2], kh, pt, pb, sh, "height"),
                        shapes.pool_output_size(x[3], kw, pl, pr, sw, "width"))

    def flops(self, in_shapes, out_shape, attrs):
        kh, kw = attrs["kernel_size"]
        return numel(out_shape) * kh * kw

    def describe(self, attrs):
        (kh, kw), (sh, sw), ((pt, pb), (pl, pr)) = attrs["kernel_size"], attrs["stride"], attrs["padding"]
        text = f"{kh}x{kw}/{sh}" if sh == sw else f"{kh}x{kw}/({sh},{sw})"
        return text + (f" pad={pt}" if (pt, pb, pl, pr) != (0, 0, 0, 0) else "")


class MaxPool2d(Pool2d):
    name = "max_pool2d"

    def gradient(self, node, dy):
        return [apply(MaxPool2dGrad(), [dy, node.inputs[0], node], dict(node.attrs), name="max_pool2d_grad")]


class MaxPool2dGrad(Op):
    """dy routed to the first maximum of each window (overlapping windows add up)."""
    name = "max_pool2d_grad"
    differentiable = False

    def infer_shape(self, in_shapes, attrs, ref_shapes):
        return in_shapes[1]

    def flops(self, in_shapes, out_shape, attrs):
        kh, kw = attrs["kernel_size"]
        return numel(in_shapes[0]) * kh * kw

    describe = Pool2d.describe


class AvgPool2d(Pool2d):
    name = "avg_pool2d"

    def gradient(self, node, dy):
        return [apply(AvgPool2dGrad(), [dy], dict(node.attrs), refs=[node.inputs[0]], name="avg_pool2d_grad")]


class AvgPool2dGrad(Op):
    """Each dy spread evenly over its window: dx += dy / (R·S)."""
    name = "avg_pool2d_grad"
    differentiable = False

    def infer_shape(self, in_shapes, attrs, ref_shapes):
        return ref_shapes[0]

    def flops(self, in_shapes, out_shape, attrs):
        kh, kw = attrs["kernel_size"]
        return numel(in_shapes[0]) * kh * kw

    describe = Pool2d.describe


def pool_attrs(kernel_size, stride, padding):
    kernel = shapes.normalize_pair(kernel_size, "kernel_size")
    stride = kernel if stride is None else shapes.normalize_pair(stride, "stride")
    if isinstance(padding, str):
        raise ShapeRuleViolation(f"padding {padding!r}: pooling takes an int or a pair")
    ph, pw = shapes.normalize_pair(padding, "padding", allow_zero=True)
    return {"kernel_size": kernel, "stride": stride, "padding": ((ph, ph), (pw, pw))}


def _pool(op, x, kernel_size, stride, padding, name):
    (x,) = tensors(x)
    require_float(x, op.name)
    return apply(op, [x], checked(op.name, pool_attrs, kernel_size, stride, padding), name=name)


def max_pool2d(x, kernel_size, stride=None, padding=0, name=None):
    """Max over kernel_size windows of NCHW x; stride defaults to kernel_size. Padding counts as −∞."""
    return _pool(MaxPool2d(), x, kernel_size, stride, padding, name)


def avg_pool2d(x, kernel_size, stride=None, padding=0, name=None):
    """Mean over kernel_size windows of NCHW x; stride defaults to kernel_size. Padding counts as zeros."""
    return _pool(AvgPool2d(), x, kernel_size, stride, padding, name)


def global_avg_pool2d(x, name=None):
    """Mean over the whole height and width: (N, C, H, W) -> (N, C)."""
    (x,) = tensors(x)
    if x.ndim != 4:
        checked("global_avg_pool2d", _bad_rank, x.shape)
    return mean(x, axis=(2, 3), name=name or "global_avg_pool2d")


def _bad_rank(shape):
    raise ShapeRuleViolation(f"input must be 4-D (N, C, H, W), got {format_shape(shape)}")
