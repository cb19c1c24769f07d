"""Local response normalization across channels (AlexNet, GoogLeNet's first layers): local_response_norm.

For an input a of shape (N, C, ...) each value is divided by a power of the sum of squares of its neighbours
across channels, at the same position (n = size, the window's channels):

    b_c = a_c / D_c^β,     D_c = k + α/n · Σ_{c' = c − before}^{c − before + n − 1} a_{c'}²

Channels outside 0 … C−1 count as zeros, and the sum is divided by n even at the edges (PyTorch's zero padding of
the channel axis). The window starts before = n // 2 channels before c, as in PyTorch (for an odd n: the n//2
channels on either side, as in Caffe and ONNX). ONNX's LRN starts an even window one channel later,
before = (n − 1) // 2, which `channels_before` expresses (the ONNX importer uses it).

Gradient. With y_c = a_c · D_c^−β and j in the window of c exactly when c lies in [j − after, j + before]
(after = n − 1 − before, the channels after the centre):

    ∂L/∂a_j = dy_j · D_j^−β − (2αβ/n) · a_j · Σ_{c = j − after}^{j + before} dy_c · a_c · D_c^(−β−1)

The gradient is one op (local_response_norm_grad), which computes D again from a rather than keeping it.
"""
import math
import numbers

from ..errors import ShapeRuleViolation
from ..graph import format_shape
from ..op import Op, numel
from ._util import apply, checked, require_float, tensors


class LocalResponseNorm(Op):
    name = "local_response_norm"

    def infer_shape(self, in_shapes, attrs, ref_shapes):
        (x,) = in_shapes
        if len(x) < 3:
            raise ShapeRuleViolation(
                f"input must be (N, C, ...) with at least one axis after the channels (as in PyTorch and ONNX), got "
                f"{format_shape(x)}; for (N, C) features reshape to (N, C, 1) first")
        return x

    def flops(self, in_shapes, out_shape, attrs):
        return (2 * attrs["size"] + 4) * numel(out_shape)      # the window's squares and sums, the power, the product

    def describe(self, attrs):
        return describe_lrn(attrs)

    def gradient(self, node, dy):
        return [apply(LocalResponseNormGrad(), [dy, node.inputs[0]], dict(node.attrs),
                      name="local_response_norm_grad")]


class LocalResponseNormGrad(Op):
    """dx from dy and x (formula at the top of this module)."""
    name = "local_response_norm_grad"
    differentiable = False

    def infer_shape(self, in_shapes, attrs, ref_shapes):
        return in_shapes[1]

    def flops(self, in_shapes, out_shape, attrs):
        return (4 * attrs["size"] + 8) * numel(out_shape)

    def describe(self, attrs):
        return describe_lrn(attrs)


def describe_lrn(attrs):
    text = f"size={attrs['size']} alpha={attrs['alpha']:g} beta={attrs['beta']:g} k={attrs['k']:g}"
    if attrs["before"] != attrs["size"] // 2:
        text += f" before={attrs['before']}"
    return text


def lrn_attrs(size, alpha, beta, k, channels_before):
    if isinstance(size, bool) or not isinstance(size, numbers.Integral) or size < 1:
        raise ShapeRuleViolation(f"size must be a positive integer (the channels in each window), got {size!r}")
    size = int(size)
    values = {}
    for what, value in (("alpha", alpha), ("beta", beta), ("k", k)):
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
            raise ShapeRuleViolation(f"{what} must be a finite number, got {value!r}")
        values[what] = float(value)
    if values["alpha"] < 0 or values["k"] <= 0:
        raise ShapeRuleViolation(
            f"the base k + alpha/n·Σa² must stay positive for every input, so alpha >= 0 and k > 0 are needed, got "
            f"alpha={alpha!r}, k={k!r} (AlexNet uses alpha=1e-4, beta=0.75, k=2; PyTorch's default k is 1)")
    before = size // 2 if channels_before is None else channels_before
    if isinstance(before, bool) or not isinstance(before, numbers.Integral) or not 0 <= before < size:
        raise ShapeRuleViolation(f"channels_before must be an integer in 0 … size − 1 = {size - 1} (the window's "
                                 f"channels before the centre), got {channels_before!r}")
    return {"size": size, "before": int(before), **values}


def local_response_norm(x, size, alpha=1e-4, beta=0.75, k=1.0, channels_before=None, name=None):
    """b_c = a_c / (k + α/n · Σ_{c' in the n channels around c} a_{c'}²)^β over the channels of x (N, C, ...),
    n = size; PyTorch's arguments and defaults. Channels beyond the edges count as zeros.

    channels_before: where the window starts, default size // 2 (PyTorch's); ONNX's LRN uses (size − 1) // 2,
    which differs for an even size."""
    (x,) = tensors(x)
    require_float(x, "local_response_norm")
    attrs = checked("local_response_norm", lrn_attrs, size, alpha, beta, k, channels_before)
    return apply(LocalResponseNorm(), [x], attrs, name=name)
