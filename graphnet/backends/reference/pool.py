"""2-D max and average pooling in NumPy (NCHW), one loop over the offsets (r, s) of the window.

With window (KH, KW), stride (sh, sw) and padding ((pt, pb), (pl, pr)) the output is (N, C, OH, OW),
OH = floor((H + pt + pb - KH) / sh) + 1 (with ceil_mode the op rounds up instead, and `out` has that size), and
output position (oh, ow) pools

    xpad[n, c, oh*sh + r, ow*sw + s]        for 0 <= r < KH, 0 <= s < KW.

A ceil_mode window may reach past the padded input: xpad is extended there by `overhang` rows and columns, which
take part in no window (−inf for max; 0 for average, and not counted in the divisor).

Max pooling pads with -inf, so padding never wins. Average pooling pads with 0 and divides each window's sum by

    count_include_pad=True:   (rows of the window inside the padded input) x (its columns there)   — KH*KW
                              for every window of floor mode (PyTorch's default)
    count_include_pad=False:  (rows of the window inside the input) x (its columns there)

Kernels are called as `fn(out, *inputs, **params)` and write into the preallocated `out`; ceil_mode is in the
params because it is part of the op, but the kernels read the output size from `out`.
"""
import numpy as np

from .conv import offset_window
from ...ops.pool import AvgPool2d, AvgPool2dGrad, MaxPool2d, MaxPool2dGrad


NO_DILATION = (1, 1)


def overhang(x_hw, out_hw, kernel_size, stride, padding):
    """(rows, columns) the last windows reach past the padded input (0 but for a partial ceil_mode window)."""
    return tuple(max(0, (o - 1) * st + k - (size + lo + hi))
                 for size, o, k, st, (lo, hi) in zip(x_hw, out_hw, kernel_size, stride, padding))


def _pad(x, padding, value, extra=(0, 0)):
    (pt, pb), (pl, pr) = padding
    return np.pad(x, ((0, 0), (0, 0), (pt, pb + extra[0]), (pl, pr + extra[1])), constant_values=value)


def _unpad(padded, padding, x_shape):
    (pt, _), (pl, _) = padding
    return padded[:, :, pt:pt + x_shape[2], pl:pl + x_shape[3]]


def divisors(x_hw, out_hw, kernel_size, stride, padding, count_include_pad, dtype):
    """The divisor of every window, shape (OH, OW), in `dtype` (so float32 pooling divides in float32): its
    positions inside the padded input (count_include_pad) or inside the input, counted per axis and multiplied."""
    counts = []
    for size, o, k, st, (lo, hi) in zip(x_hw, out_hw, kernel_size, stride, padding):
        start = np.arange(o) * st - lo                      # the window's first position, in input coordinates
        if count_include_pad:
            counts.append(np.minimum(start + k, size + hi) - start)
        else:
            counts.append(np.minimum(start + k, size) - np.maximum(start, 0))
    return np.multiply.outer(counts[0], counts[1]).astype(dtype)


def max_pool2d(out, x, *, kernel_size, stride, padding, ceil_mode=False):
    """y[n, c, oh, ow] = max over the window of xpad (padding is -inf)."""
    out_hw = out.shape[2:]
    padded = _pad(x, padding, -np.inf, overhang(x.shape[2:], out_hw, kernel_size, stride, padding))
    result = np.full(out.shape, -np.inf, dtype=out.dtype)
    for r in range(kernel_size[0]):
        for s in range(kernel_size[1]):
            np.maximum(result, offset_window(padded, r, s, out_hw, stride, NO_DILATION), out=result)
    out[...] = result


def max_pool2d_grad(out, dy, x, y, *, kernel_size, stride, padding, ceil_mode=False):
    """dx: each dy goes to the first position of its window, in row-major order, whose x equals the max y — or,
    where the max is NaN, to the window's first NaN (the gradient goes to where the max came from, as in PyTorch).

    Padding positions never receive gradient; where windows overlap, a position collects from each window it won.
    """
    out_hw = dy.shape[2:]
    extra = overhang(x.shape[2:], out_hw, kernel_size, stride, padding)
    padded_x = _pad(x, padding, 0, extra)
    padded_dx = np.zeros(padded_x.shape, dtype=out.dtype)
    is_real = _pad(np.ones(x.shape, dtype=bool), padding, False, extra)
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


def avg_pool2d(out, x, *, kernel_size, stride, padding, ceil_mode=False, count_include_pad=True):
    """y[n, c, oh, ow] = (sum over the window of xpad) / divisor[oh, ow], padding counted as zeros."""
    out_hw = out.shape[2:]
    padded = _pad(x, padding, 0, overhang(x.shape[2:], out_hw, kernel_size, stride, padding))
    total = np.zeros(out.shape, dtype=out.dtype)
    for r in range(kernel_size[0]):
        for s in range(kernel_size[1]):
            total += offset_window(padded, r, s, out_hw, stride, NO_DILATION)
    out[...] = total / divisors(x.shape[2:], out_hw, kernel_size, stride, padding, count_include_pad,
                                         out.dtype)


def avg_pool2d_grad(out, dy, *, kernel_size, stride, padding, ceil_mode=False, count_include_pad=True):
    """dx: every position of a window receives dy / divisor; overlapping windows add up. out has x's shape."""
    out_hw = dy.shape[2:]
    (pt, pb), (pl, pr) = padding
    extra_h, extra_w = overhang(out.shape[2:], out_hw, kernel_size, stride, padding)
    padded_dx = np.zeros((out.shape[0], out.shape[1], out.shape[2] + pt + pb + extra_h,
                          out.shape[3] + pl + pr + extra_w), dtype=out.dtype)
    share = dy / divisors(out.shape[2:], out_hw, kernel_size, stride, padding, count_include_pad, out.dtype)
    for r in range(kernel_size[0]):
        for s in range(kernel_size[1]):
            offset_window(padded_dx, r, s, out_hw, stride, NO_DILATION)[...] += share
    out[...] = _unpad(padded_dx, padding, out.shape)


KERNELS = {MaxPool2d: max_pool2d, MaxPool2dGrad: max_pool2d_grad, AvgPool2d: avg_pool2d,
           AvgPool2dGrad: avg_pool2d_grad}
