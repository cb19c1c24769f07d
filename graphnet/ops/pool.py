"""Pooling over NCHW windows: max_pool2d, avg_pool2d, global_avg_pool2d.

A window of R×S positions (kernel_size), moved by the stride (sh, sw), over the input padded with P_top, P_bottom
rows and P_left, P_right columns:

    output height = floor((H + P_top + P_bottom − R) / sh) + 1                       (stride defaults to the window)
                  = ceil((H + P_top + P_bottom − R) / sh) + 1 with ceil_mode, less 1 if that last window would
                    start in the bottom padding ((OH − 1)·sh ≥ H + P_top): a partial last window is kept
    max:  out = max over the window's input positions (padding never wins)
    avg:  out = sum over the window's input positions / divisor, where the divisor counts
            count_include_pad=True (PyTorch's default):  the window's positions inside the padded input — R·S,
                                                           except for a partial ceil_mode window
            count_include_pad=False (ONNX's default):    the window's positions inside the input only

padding is an int, a pair (ph, pw), or ((top, bottom), (left, right)) for different amounts on the two sides (the
form conv2d takes). Each side pads at most half the window, as in PyTorch.
"""
import numpy as np

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
        ceil_mode = attrs["ceil_mode"]
        return x[:2] + (shapes.pool_output_size(x[2], kh, pt, pb, sh, "height", ceil_mode=ceil_mode),
                        shapes.pool_output_size(x[3], kw, pl, pr, sw, "width", ceil_mode=ceil_mode))

    def flops(self, in_shapes, out_shape, attrs):
        kh, kw = attrs["kernel_size"]
        return numel(out_shape) * kh * kw

    def describe(self, attrs):
        return describe_window(attrs)


def describe_window(attrs):
    """'3x3/2 pad=1 ceil' for the printed schedule: window/stride, then whatever differs from the defaults."""
    (kh, kw), (sh, sw), ((pt, pb), (pl, pr)) = attrs["kernel_size"], attrs["stride"], attrs["padding"]
    text = f"{kh}x{kw}/{sh}" if sh == sw else f"{kh}x{kw}/({sh},{sw})"
    if (pt, pb, pl, pr) != (0, 0, 0, 0):
        text += f" pad={pt}" if pt == pb == pl == pr else f" pad=(({pt},{pb}),({pl},{pr}))"
    if attrs.get("ceil_mode"):
        text += " ceil"
    if not attrs.get("count_include_pad", True):
        text += " exclude-pad"
    return text


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

    def describe(self, attrs):
        return describe_window(attrs)


class AvgPool2d(Pool2d):
    name = "avg_pool2d"

    def gradient(self, node, dy):
        return [apply(AvgPool2dGrad(), [dy], dict(node.attrs), refs=[node.inputs[0]], name="avg_pool2d_grad")]


class AvgPool2dGrad(Op):
    """Each dy spread evenly over its window: dx += dy / divisor at each input position of the window."""
    name = "avg_pool2d_grad"
    differentiable = False

    def infer_shape(self, in_shapes, attrs, ref_shapes):
        return ref_shapes[0]

    def flops(self, in_shapes, out_shape, attrs):
        kh, kw = attrs["kernel_size"]
        return numel(in_shapes[0]) * kh * kw

    def describe(self, attrs):
        return describe_window(attrs)


def pool_attrs(kernel_size, stride, padding, ceil_mode):
    kernel = shapes.normalize_pair(kernel_size, "kernel_size")
    stride = kernel if stride is None else shapes.normalize_pair(stride, "stride")
    if isinstance(padding, str):
        raise ShapeRuleViolation(f"padding {padding!r}: pooling takes an int, a pair (ph, pw) or "
                                 "((top, bottom), (left, right))")
    return {"kernel_size": kernel, "stride": stride, "padding": shapes.explicit_padding(padding),
            "ceil_mode": flag("ceil_mode", ceil_mode)}


def flag(what, value):
    """A yes/no argument as a bool; numbers and strings are refused ("False" would be true)."""
    if not isinstance(value, (bool, np.bool_)):
        raise ShapeRuleViolation(f"{what} must be True or False, got {value!r}")
    return bool(value)


def _pool(op, x, attrs, name):
    (x,) = tensors(x)
    require_float(x, op.name)
    return apply(op, [x], attrs, name=name)


def max_pool2d(x, kernel_size, stride=None, padding=0, ceil_mode=False, name=None):
    """Max over kernel_size windows of NCHW x; stride defaults to kernel_size. Padding counts as −∞.

    padding: int, (ph, pw) or ((top, bottom), (left, right)). ceil_mode: round the output size up, keeping a
    partial last window (PyTorch's rule: it must start inside the input or the top/left padding)."""
    attrs = checked("max_pool2d", pool_attrs, kernel_size, stride, padding, ceil_mode)
    return _pool(MaxPool2d(), x, attrs, name)


def avg_pool2d(x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True, name=None):
    """Mean over kernel_size windows of NCHW x; stride defaults to kernel_size.

    padding: int, (ph, pw) or ((top, bottom), (left, right)). ceil_mode: round the output size up, keeping a
    partial last window. count_include_pad=True divides by the window's positions inside the padded input (the
    padding counts as zeros: R·S but for a partial window), False by its positions inside the input only."""
    attrs = checked("avg_pool2d", pool_attrs, kernel_size, stride, padding, ceil_mode)
    attrs["count_include_pad"] = checked("avg_pool2d", flag, "count_include_pad", count_include_pad)
    return _pool(AvgPool2d(), x, attrs, name)


def global_avg_pool2d(x, name=None):
    """Mean over the whole height and width: (N, C, H, W) -> (N, C)."""
    (x,) = tensors(x)
    if x.ndim != 4:
        checked("global_avg_pool2d", _bad_rank, x.shape)
    return mean(x, axis=(2, 3), name=name or "global_avg_pool2d")


def _bad_rank(shape):
    raise ShapeRuleViolation(f"input must be 4-D (N, C, H, W), got {format_shape(shape)}")
