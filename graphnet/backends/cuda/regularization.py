"""dropout and batch norm kernels (formulas in graphnet/ops/regularization.py).

dropout draws its mask from the counter-based generator of graphnet/random.py, bit for bit:

    u_i = (splitmix64(key + i) >> 40) · 2⁻²⁴,   key = splitmix64(seed·2³² + run counter)   (key made on the host)
    out_i = x_i · (1/(1 − rate) if u_i ≥ rate else 0)                                 (the product in float64)

Batch norm works per channel c of x viewed as (N, C, S) (S = H·W, or 1 for (N, C)): element (n, c, s) sits at
(n·C + c)·S + s, and the M = N·S elements of a channel are reduced by one block of 256 threads into a float64
workspace holding, per channel,

    stats[0·C + c] = μ = Σ x / M          stats[1·C + c] = σ² = Σ (x − μ)² / M       (two passes, as np.var)
    stats[2·C + c] = Σ dy                  stats[3·C + c] = Σ dy·x̂,   x̂ = (x − μ)/√(σ² + ε)

and an elementwise kernel applies them:

    forward:   y = γ·x̂ + β
    backward:  dx = γ/(√(σ² + ε)·M) · (M·dy − Σdy − x̂·Σ dy·x̂),   dγ = Σ dy·x̂
    variance (ddof):  σ²·M/(M − ddof);   its gradient  dx = dy_c · 2(x − μ)/(M − ddof)
"""
import math

import numpy as np
from numba import cuda, float64, types, uint64

from ...errors import GraphError
from ...random import splitmix64 as host_splitmix64, stream_start
from .launch import BLOCK, BoundLaunch, PerRun, flat, grid_for, shape_of, step_kernel
from .reduce import block_sum, workspace_array
from .registry import register_generic
from ...ops.regularization import (BatchNorm, BatchNormGradGamma, BatchNormGradInput, Dropout, Variance,
                                  VarianceGrad)

# ---------------------------------------------------------------------------------------------------------------
# dropout

GOLDEN = np.uint64(0x9E3779B97F4A7C15)
MIX1 = np.uint64(0xBF58476D1CE4E5B9)
MIX2 = np.uint64(0x94D049BB133111EB)
SHIFT_27, SHIFT_30, SHIFT_31, SHIFT_40 = np.uint64(27), np.uint64(30), np.uint64(31), np.uint64(40)
TWO_TO_MINUS_24 = 2.0 ** -24


@cuda.jit(device=True)
def splitmix64(z):
    """Steele, Lea & Flood's 64-bit mixer; all arithmetic wraps modulo 2⁶⁴."""
    z = z + GOLDEN
    z = (z ^ (z >> SHIFT_30)) * MIX1
    z = (z ^ (z >> SHIFT_27)) * MIX2
    return z ^ (z >> SHIFT_31)


@cuda.jit
def dropout_mask(out, x, key, rate, scale):
    for i in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        u = float64(splitmix64(key + uint64(i)) >> SHIFT_40) * TWO_TO_MINUS_24
        out[i] = float64(x[i]) * (scale if u >= rate else 0.0)     # in float64, as NumPy multiplies


register_generic("dropout_mask", dropout_mask, lambda f: (f[::1], f[::1], types.uint64, types.float64, types.float64),
                 float64="the mask's product is in float64, as the reference's NumPy computes it (bit for bit)")

KEY_ARGUMENT = 2      # dropout_mask's argument that changes with every run


def dropout_key(seed, counter, start=0):
    """key = splitmix64(seed·2³² + counter), as the reference computes it, plus `start` (modulo 2⁶⁴): element i
    then draws number start + i of the stream (start > 0 for a shard of the batch: graphnet/random.py)."""
    with np.errstate(over="ignore"):
        return host_splitmix64(np.array([(seed << 32) + counter], dtype=np.uint64))[0] + np.uint64(start)


@step_kernel
def dropout(out, x, *, rate, seed, rng):
    """out = x · mask / (1 − rate), the mask drawn anew for each run of the program (rng.counter)."""
    shape = shape_of(x)

    def key():
        return dropout_key(seed, rng.counter, stream_start(shape, rng.first_sample))

    launch = BoundLaunch(dropout_mask, grid_for(out.size), BLOCK,
                         [flat(out), flat(x), key(), float(rate), 1.0 / (1.0 - rate)])
    return [PerRun(launch, KEY_ARGUMENT, key)]


# ---------------------------------------------------------------------------------------------------------------
# per-channel statistics

@cuda.jit(device=True)
def channel_position(k, c, channels, size):
    """The offset of the k-th element (n, s) of channel c: (n·C + c)·S + s."""
    return ((k // size) * channels + c) * size + k % size


@cuda.jit
def channel_mean_var(stats, x, batch, channels, size):
    """Block c: stats[c] = μ_c, stats[C + c] = σ²_c (biased)."""
    partial = cuda.shared.array(BLOCK, float64)
    c, t = cuda.blockIdx.x, cuda.threadIdx.x
    count = batch * size
    acc = 0.0
    for k in range(t, count, BLOCK):
        acc += x[channel_position(k, c, channels, size)]
    mu = block_sum(partial, t, acc) / count
    acc = 0.0
    for k in range(t, count, BLOCK):
        d = x[channel_position(k, c, channels, size)] - mu
        acc += d * d
    var = block_sum(partial, t, acc) / count
    if t == 0:
        stats[c] = mu
        stats[channels + c] = var


@cuda.jit
def channel_grad_sums(stats, dy, x, batch, channels, size, eps):
    """Block c: stats[2C + c] = Σ dy, stats[3C + c] = Σ dy·x̂ (μ, σ² already in stats)."""
    partial = cuda.shared.array(BLOCK, float64)
    c, t = cuda.blockIdx.x, cuda.threadIdx.x
    mu = stats[c]
    inv_std = 1.0 / math.sqrt(stats[channels + c] + eps)
    sum_dy = 0.0
    sum_dy_xhat = 0.0
    for k in range(t, batch * size, BLOCK):
        at = channel_position(k, c, channels, size)
        sum_dy += dy[at]
        sum_dy_xhat += dy[at] * (x[at] - mu) * inv_std
    sum_dy = block_sum(partial, t, sum_dy)
    sum_dy_xhat = block_sum(partial, t, sum_dy_xhat)
    if t == 0:
        stats[2 * channels + c] = sum_dy
        stats[3 * channels + c] = sum_dy_xhat


@cuda.jit
def batch_norm_apply(out, x, gamma, beta, stats, channels, size, eps):
    for i in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        c = (i // size) % channels
        x_hat = (x[i] - stats[c]) / math.sqrt(stats[channels + c] + eps)
        out[i] = gamma[c] * x_hat + beta[c]


@cuda.jit
def batch_norm_backward_apply(out, dy, x, gamma, stats, channels, size, eps, count):
    for i in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        c = (i // size) % channels
        inv_std = 1.0 / math.sqrt(stats[channels + c] + eps)
        x_hat = (x[i] - stats[c]) * inv_std
        out[i] = gamma[c] * inv_std / count * (count * dy[i] - stats[2 * channels + c]
                                                - x_hat * stats[3 * channels + c])


@cuda.jit
def take_stats(out, stats, first, scale):
    """out[c] = stats[first + c] · scale"""
    for c in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        out[c] = stats[first + c] * scale


@cuda.jit
def variance_backward_apply(out, dy, x, stats, channels, size, scale):
    """dx = dy_c · scale · (x − μ_c),  scale = 2/(M − ddof)"""
    for i in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        c = (i // size) % channels
        out[i] = dy[c] * scale * (x[i] - stats[c])


_I, _F8 = types.int64, types.float64
STATS = "per-channel statistics are float64 (the workspace of the module docstring)"
register_generic("channel_mean_var", channel_mean_var, lambda f: (_F8[::1], f[::1], _I, _I, _I), float64=STATS)
register_generic("channel_grad_sums", channel_grad_sums, lambda f: (_F8[::1], f[::1], f[::1], _I, _I, _I, _F8),
                 float64=STATS)
register_generic("batch_norm_apply", batch_norm_apply,
                 lambda f: (f[::1], f[::1], f[::1], f[::1], _F8[::1], _I, _I, _F8), float64=STATS)
register_generic("batch_norm_backward_apply", batch_norm_backward_apply,
                 lambda f: (f[::1], f[::1], f[::1], f[::1], _F8[::1], _I, _I, _F8, _I), float64=STATS)
register_generic("take_stats", take_stats, lambda f: (f[::1], _F8[::1], _I, _F8), float64=STATS)
register_generic("variance_backward_apply", variance_backward_apply,
                 lambda f: (f[::1], f[::1], f[::1], _F8[::1], _I, _I, _F8), float64=STATS)


def channel_view(shape, axes):
    """(N, C, S) for batch norm's axes: (0,) on (N, C), or (0, 2, 3) on (N, C, H, W)."""
    shape = tuple(shape)
    if len(shape) == 2 and tuple(axes) == (0,):
        return shape[0], shape[1], 1
    if len(shape) == 4 and tuple(axes) == (0, 2, 3):
        return shape[0], shape[1], shape[2] * shape[3]
    raise GraphError(f"cuda: per-channel statistics reduce (N, C) over (0,) or (N, C, H, W) over (0, 2, 3); "
                     f"got shape {shape} and axes {tuple(axes)}")


def mean_var_launch(stats, x, n, c, s):
    return BoundLaunch(channel_mean_var, c, BLOCK, [stats, flat(x), n, c, s])


@step_kernel
def batch_norm(out, x, gamma, beta, *, eps, axes, workspace=None):
    """y = γ·(x − μ)/√(σ² + ε) + β with the batch's statistics"""
    n, c, s = channel_view(shape_of(x), axes)
    stats = workspace_array(workspace, 4 * c)
    return [mean_var_launch(stats, x, n, c, s),
            BoundLaunch(batch_norm_apply, grid_for(out.size), BLOCK,
                        [flat(out), flat(x), flat(gamma), flat(beta), stats, c, s, float(eps)])]


@step_kernel
def batch_norm_grad_input(out, dy, x, gamma, *, eps, axes, workspace=None):
    n, c, s = channel_view(shape_of(x), axes)
    stats = workspace_array(workspace, 4 * c)
    return [mean_var_launch(stats, x, n, c, s),
            BoundLaunch(channel_grad_sums, c, BLOCK, [stats, flat(dy), flat(x), n, c, s, float(eps)]),
            BoundLaunch(batch_norm_backward_apply, grid_for(out.size), BLOCK,
                        [flat(out), flat(dy), flat(x), flat(gamma), stats, c, s, float(eps), n * s])]


@step_kernel
def batch_norm_grad_gamma(out, dy, x, *, eps, axes, workspace=None):
    """dγ = Σ dy·x̂ per channel"""
    n, c, s = channel_view(shape_of(x), axes)
    stats = workspace_array(workspace, 4 * c)
    return [mean_var_launch(stats, x, n, c, s),
            BoundLaunch(channel_grad_sums, c, BLOCK, [stats, flat(dy), flat(x), n, c, s, float(eps)]),
            BoundLaunch(take_stats, grid_for(c), BLOCK, [flat(out), stats, 3 * c, 1.0])]


@step_kernel
def variance(out, x, *, axes, ddof, workspace=None):
    """σ² · M/(M − ddof) per channel"""
    n, c, s = channel_view(shape_of(x), axes)
    stats = workspace_array(workspace, 4 * c)
    m = n * s
    return [mean_var_launch(stats, x, n, c, s),
            BoundLaunch(take_stats, grid_for(c), BLOCK, [flat(out), stats, c, m / (m - ddof)])]


@step_kernel
def variance_grad(out, dy, x, *, axes, ddof, workspace=None):
    """dx = dy_c · 2(x − μ_c)/(M − ddof)"""
    n, c, s = channel_view(shape_of(x), axes)
    stats = workspace_array(workspace, 4 * c)
    return [mean_var_launch(stats, x, n, c, s),
            BoundLaunch(variance_backward_apply, grid_for(out.size), BLOCK,
                        [flat(out), flat(dy), flat(x), stats, c, s, 2.0 / (n * s - ddof)])]


def _x_channels(index):
    """Workspace rule: 4 float64 per channel of input `index` (x)."""
    return lambda params, in_shapes, out_shape, dtype: 4 * tuple(in_shapes[index])[1] * 8


WORKSPACE = {BatchNorm: _x_channels(0), BatchNormGradInput: _x_channels(1),
             BatchNormGradGamma: _x_channels(1), Variance: _x_channels(0), VarianceGrad: _x_channels(1)}


KERNELS = {Dropout: dropout, BatchNorm: batch_norm, BatchNormGradInput: batch_norm_grad_input,
           BatchNormGradGamma: batch_norm_grad_gamma, Variance: variance, VarianceGrad: variance_grad}
