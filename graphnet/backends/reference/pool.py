"""2-D max and average pooling in NumPy (NCHW), one loop over the offsets (r, s) of the window.

With window (KH, KW), stride (sh, sw) and padding ((pt, pb), (pl, pr)) the output is (N, C, OH, OW),
OH = floor((H + pt + pb - KH) / sh) + 1, and output position (oh, ow) pools

    xpad[n, c, oh*sh + r, ow*sw + s]        for 0 <= r < KH, 0 <= s < KW.

Max pooling pads with -inf, so padding never wins; average pooling pads with 0 and divides by the full window
size KH*KW, padding included (PyTorch's count_include_pad=True).

Kernels are called as `fn(out, *inputs, **params)` and write into the preallocated `out`.
"""
import numpy as np

from .conv import offset_window
from ...ops.pool import AvgPool2d, AvgPool2dGrad, MaxPool2d, MaxPool2dGrad


NO_DILATION = (1, 1)


def _pad(x, padding, value):
    (pt, pb), (pl, pr) = padding
    return np.pad(x, ((0, 0), (0, 0), (pt, pb), (pl, pr)), constant_values=value)


def _unpad(padded, padding, x_shape):
    (pt, _), (pl, _) = padding
    return padded[:, :, pt:pt + x_shape[2], pl:pl + x_shape[3]]


def max_pool2d(out, x, *, kernel_size, stride, padding):
    """y[n, c, oh, ow] = max over the window of xpad (padding is -inf)."""
    out_hw = out.shape[2:]
    padded = _pad(x, padding, -np.inf)
    result = np.full(out.shape, -np.inf, dtype=out.dtype)
    for r in range(kernel_size[0]):
        for s in range(kernel_size[1]):
            np.maximum(result, offset_window(padded, r, s, out_hw, stride, NO_DILATION), out=result)
    out[...] = result


def max_pool2d_grad(out, dy, x, y, *, kernel_size, stride, padding):
    """dx: each dy goes to the first position of its window, in row-major order, whose x equals the max y — or,
    where the max is NaN, to the window's first NaN (the gradient goes to where the max came from, as in PyTorch).

    Padding positions never receive gradient; where windows overlap, a position collects from each window it won.
    """
    out_hw = dy.shape[2:]
    padded_x = _pad(x, padding, 0)
    padded_dx = np.zeros(padded_x.shape, dtype=out.dtype)
    is_real = _pad(np.ones(x.shape, dtype=bool), padding, False)
    routed = np.zeros(dy.shape, dtype=bool)          # has this window's gradient been given to a position yet?
    for r in range(kernel_size[0]):                  # row-major order over the window: first winner takes it
        for s in range(kernel_size[1]):
            window_x = offset_window(padded_x, r, s, out_hw, stride, NO_DILATION)
            window_real = offset_window(is_real, r, s, out_hw, stride, NO_DILATION)
            is_max = (window_x == y) | (np.isnan(window_x) & np.isnan(y))
            wins = is_max & window_real & ~routed
            offset_window(padded_dx, r, s, out_hw, stride, NO_DILATION)[...] += np.where(wins, dy, 0)
            routed |= wins
    out[...] = _unpad(padded_dx, padding, x.shape)


def avg_pool2d(out, x, *, kernel_size, stride, padding):
    """y[n, c, oh, ow] = (sum over the window of xpad) / (KH*KW), padding counted as zeros."""
    out_hw = out.shape[2:]
    padded = _pad(x, padding, 0)
    total = np.zeros(out.shape, dtype=out.dtype)
    for r in range(kernel_size[0]):
        for s in range(kernel_size[1]):
            total += offset_window(padded, r, s, out_hw, stride, NO_DILATION)
    out[...] = total / (kernel_size[0] * kernel_size[1])


def avg_pool2d_grad(out, dy, *, kernel_size, stride, padding):
    """dx: every position of a window receives dy / (KH*KW); overlapping windows add up. out has x's shape."""
    out_hw = dy.shape[2:]
    (pt, pb), (pl, pr) = padding
    padded_dx = np.zeros((out.shape[0], out.shape[1], out.shape[2] + pt + pb, out.shape[3] + pl + pr),
                         dtype=out.dtype)
    share = dy / (kernel_size[0] * kernel_size[1])
    for r in range(kernel_size[0]):
        for s in range(kernel_size[1]):
            offset_window(padded_dx, r, s, out_hw, stride, NO_DILATION)[...] += share
    out[...] = _unpad(padded_dx, padding, out.shape)


KERNELS = {MaxPool2d: max_pool2d, MaxPool2dGrad: max_pool2d_grad, AvgPool2d: avg_pool2d,
           AvgPool2dGrad: avg_pool2d_grad}
