"""Local response normalization across channels in NumPy (formulas in graphnet/ops/lrn.py).

x has shape (N, C, ...). With n = size and the window of channel c running from c − before to c − before + n − 1
(channels outside 0 … C−1 are zeros):

    D_c = k + α/n · Σ_window a_{c'}²          y_c = a_c · D_c^−β
    dx_j = dy_j · D_j^−β − (2αβ/n) · a_j · Σ_{c = j − after}^{j + before} dy_c · a_c · D_c^(−β−1)

The window sums are the `size` shifted slices of the zero-padded channel axis, added one after another.
Kernels are called as `fn(out, *inputs, **params)` and write into the preallocated `out`.
"""
import numpy as np

from ...ops.lrn import LocalResponseNorm, LocalResponseNormGrad


def window_sums(values, size, before):
    """s[:, c] = Σ values[:, c'] over c − before ≤ c' < c − before + size (zeros beyond the channels)."""
    channels = values.shape[1]
    after = size - 1 - before
    padded = np.pad(values, [(0, 0), (before, after)] + [(0, 0)] * (values.ndim - 2))
    total = np.zeros_like(values)
    for offset in range(size):
        total += padded[:, offset:offset + channels]
    return total


def denominator_base(x, size, before, alpha, k):
    """D = k + α/n · (window sum of x²), in x's dtype."""
    return k + alpha / size * window_sums(x * x, size, before)


def local_response_norm(out, x, *, size, before, alpha, beta, k):
    """y = x · D^−β"""
    out[...] = x * denominator_base(x, size, before, alpha, k) ** -beta


def local_response_norm_grad(out, dy, x, *, size, before, alpha, beta, k):
    """dx = dy · D^−β − (2αβ/n) · x · (sum over the reversed window of dy · x · D^(−β−1))"""
    base = denominator_base(x, size, before, alpha, k)
    scale = base ** -beta
    through_neighbours = window_sums(dy * x * scale / base, size, size - 1 - before)   # c in [j − after, j + before]
    out[...] = dy * scale - (2 * alpha * beta / size) * x * through_neighbours


KERNELS = {LocalResponseNorm: local_response_norm, LocalResponseNormGrad: local_response_norm_grad}
