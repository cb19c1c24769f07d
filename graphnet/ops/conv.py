"""2-D convolution, NCHW, as PyTorch's conv2d: x (N, C, H, W) * w (K, C/groups, R, S) + b (K,).

    out[n, k, i, j] = b[k] + Σ_{c, r, s} x[n, g·C/groups + c, i·S_h + r·D_h − P_top, j·S_w + s·D_w − P_left]
                                          · w[k, c, r, s]          (g = the group of output channel k)
    output height = floor((H + P_top + P_bottom − D_h·(R − 1) − 1) / S_h) + 1, and likewise the width
"""
from ..errors import ShapeRuleViolation
from ..graph import format_shape
from ..op import Op, numel
from .. import shapes
from ._util import apply, checked, tensors
from .reduce import sum as reduce_sum


class Conv2d(Op):
    name = "conv2d"

    def infer_shape(self, in_shapes, attrs, ref_shapes):
        x, w = in_shapes[0], in_shapes[1]
        check_conv_operands(x, w, in_shapes[2] if len(in_shapes) > 2 else None, attrs["groups"])
        return (x[0], w[0]) + conv_output_hw(x, w, attrs)

    def infer_dtype(self, in_dtypes, attrs):
        if len(set(in_dtypes)) > 1:
            raise ShapeRuleViolation(f"dtypes differ: {', '.join(map(str, in_dtypes))}; cast to one dtype")
        return in_dtypes[0]

    def flops(self, in_shapes, out_shape, attrs):
        w = in_shapes[1]
        return 2 * numel(out_shape) * numel(w[1:]) + (numel(out_shape) if len(in_shapes) > 2 else 0)

    def describe(self, attrs):
        return describe_conv(attrs)

    def gradient(self, node, dy):
        x, w = node.inputs[:2]
        attrs = dict(node.attrs)
        dx = apply(Conv2dGradInput(), [dy, w], attrs, refs=[x], name="conv2d_grad_input")
        dw = apply(Conv2dGradWeight(), [dy, x], attrs, refs=[w], name="conv2d_grad_weight")
        grads = [dx, dw]
        if len(node.inputs) > 2:
            grads.append(reduce_sum(dy, axis=(0, 2, 3)))
        return grads


class Conv2dGradInput(Op):
    """dx = the transposed convolution of dy with w (col2im of wᵀ·dy)."""
    name = "conv2d_grad_input"
    differentiable = False

    def infer_shape(self, in_shapes, attrs, ref_shapes):
        return ref_shapes[0]

    def flops(self, in_shapes, out_shape, attrs):
        return 2 * numel(in_shapes[0]) * numel(in_shapes[1][1:])

    def describe(self, attrs):
        return describe_conv(attrs)


class Conv2dGradWeight(Op):
    """dw = dy · im2col(x)ᵀ, summed over the batch."""
    name = "conv2d_grad_weight"
    differentiable = False

    def infer_shape(self, in_shapes, attrs, ref_shapes):
        return ref_shapes[0]

    def flops(self, in_shapes, out_shape, attrs):
        return 2 * numel(in_shapes[0]) * numel(out_shape[1:])

    def describe(self, attrs):
        return describe_conv(attrs)


def describe_conv(attrs):
    parts = []
    if attrs["stride"] != (1, 1):
        parts.append(f"stride={_pair(attrs['stride'])}")
    if attrs["padding"] != ((0, 0), (0, 0)):
        (pt, pb), (pl, pr) = attrs["padding"]
        parts.append(f"pad={pt}" if pt == pb == pl == pr else f"pad=({pt},{pb},{pl},{pr})")
    if attrs["dilation"] != (1, 1):
        parts.append(f"dilation={_pair(attrs['dilation'])}")
    if attrs["groups"] != 1:
        parts.append(f"groups={attrs['groups']}")
    return " ".join(parts)


def _pair(p):
    return str(p[0]) if p[0] == p[1] else f"{p[0]}x{p[1]}"


def check_conv_operands(x, w, b, groups):
    if len(x) != 4:
        raise ShapeRuleViolation(f"input must be 4-D (N, C, H, W), got {format_shape(x)}"
                                 + ("; add a channel axis: x.reshape(N, 1, H, W)" if len(x) == 3 else ""))
    if len(w) != 4:
        raise ShapeRuleViolation(f"weight must be 4-D (K, C/groups, R, S), got {format_shape(w)}")
    k, c_per_group = w[0], w[1]
    c = x[1]
    if k % groups:
        raise ShapeRuleViolation(f"groups={groups} does not divide the {k} output channels of weight "
                                 f"{format_shape(w)}")
    if c is not None and c % groups:
        raise ShapeRuleViolation(f"groups={groups} does not divide the {c} input channels of {format_shape(x)}")
    if c is not None and c != c_per_group * groups:
        hint = ""
        if x[3] == c_per_group * groups:
            hint = "; the input looks NHWC: graphnet expects NCHW, use x.transpose(0, 3, 1, 2)"
        raise ShapeRuleViolation(f"input channels do not match: input {format_shape(x)} has C={c}, but weight "
                                 f"{format_shape(w)} expects C/groups·groups = {c_per_group}·{groups} = "
                                 f"{c_per_group * groups}{hint}")
    if b is not None and tuple(b) != (k,):
        raise ShapeRuleViolation(f"bias must have shape ({k},) — one per output channel — got {format_shape(b)}")


def conv_output_hw(x, w, attrs):
    (pt, pb), (pl, pr) = attrs["padding"]
    (sh, sw), (dh, dw) = attrs["stride"], attrs["dilation"]
    return (shapes.conv_output_size(x[2], w[2], pt, pb, sh, dh, "height"),
            shapes.conv_output_size(x[3], w[3], pl, pr, sw, dw, "width"))


def conv2d(x, w, b=None, stride=1, padding=0, dilation=1, groups=1, name=None):
    """2-D convolution of x (N, C, H, W) with w (K, C/groups, R, S), plus an optional bias b (K,).

    `stride`, `padding` and `dilation` take an int or a pair; `padding` also takes "valid" (no padding) and "same"
    (output size = input size; stride 1 only)."""
    inputs = tensors(x, w) if b is None else tensors(x, w, b)
    w_shape = inputs[1].shape
    if len(w_shape) != 4:
        checked("conv2d", check_conv_operands, inputs[0].shape, w_shape, None, 1)
    if not isinstance(groups, int) or groups < 1:
        checked("conv2d", _bad, f"groups must be a positive int, got {groups!r}")
    attrs = checked("conv2d", conv_attrs, w_shape[2:], stride, padding, dilation)
    attrs["groups"] = groups
    return apply(Conv2d(), inputs, attrs, name=name)


def conv_attrs(kernel_hw, stride, padding, dilation):
    stride = shapes.normalize_pair(stride, "stride")
    dilation = shapes.normalize_pair(dilation, "dilation")
    padding = shapes.conv_padding(padding, kernel_hw, dilation, stride)
    return {"stride": stride, "padding": padding, "dilation": dilation}


def _bad(message):
    raise ShapeRuleViolation(message)
