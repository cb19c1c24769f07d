"""Local response normalization across channels (formulas in graphnet/ops/lrn.py; reference in
graphnet/backends/reference/lrn.py).

x is viewed as (N, C, S), S the positions after the channel axis; element (n, c, s) sits at (n·C + c)·S + s. With
n = size and the window of channel c the channels c − before … c − before + n − 1 that exist:

    forward:   one thread per element:  D_c = k + α/n · Σ_window a_{c'}²,  y_c = a_c · D_c^−β
    backward:  one thread per element j, which gathers from every channel c whose window holds j
               (c from j − after to j + before, after = n − 1 − before), computing each D_c again:
               dx_j = dy_j · D_j^−β − (2αβ/n) · a_j · Σ_c dy_c · a_c · D_c^(−β−1)

No two threads write the same place, so no atomics; the backward pass does n window sums of n terms per element
(n is 5 in AlexNet and GoogLeNet). The constants α/n, −β, k and 2αβ/n reach the kernels in x's type, so float32
kernels compute in float32, as the reference does.
"""
from numba import cuda, types

from ...ops.lrn import LocalResponseNorm, LocalResponseNormGrad
from .launch import BLOCK, BoundLaunch, flat, grid_for, shape_of, step_kernel
from .registry import register_generic


@cuda.jit(device=True)
def denominator_base(x, image, c, s, geometry, alpha_n, k, zero):
    """D_c = k + α/n · Σ x[image, c', s]² over c's window."""
    channels, positions, size, before = geometry
    total = zero
    for other in range(max(c - before, 0), min(c - before + size, channels)):
        v = x[(image * channels + other) * positions + s]
        total += v * v
    return k + alpha_n * total


@cuda.jit
def lrn_forward(out, x, geometry, alpha_n, minus_beta, k, zero):
    channels, positions, size, before = geometry
    for o in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        s = o % positions
        c = (o // positions) % channels
        image = o // (positions * channels)
        out[o] = x[o] * denominator_base(x, image, c, s, geometry, alpha_n, k, zero) ** minus_beta


@cuda.jit
def lrn_backward(dx, dy, x, geometry, alpha_n, minus_beta, k, two_alpha_beta_n, zero):
    channels, positions, size, before = geometry
    after = size - 1 - before
    for j in range(cuda.grid(1), dx.size, cuda.gridsize(1)):
        s = j % positions
        c_j = (j // positions) % channels
        image = j // (positions * channels)
        through = zero
        for c in range(max(c_j - after, 0), min(c_j + before + 1, channels)):
            base = denominator_base(x, image, c, s, geometry, alpha_n, k, zero)
            i = (image * channels + c) * positions + s
            through += dy[i] * x[i] * base ** minus_beta / base
        scale = denominator_base(x, image, c_j, s, geometry, alpha_n, k, zero) ** minus_beta
        dx[j] = dy[j] * scale - two_alpha_beta_n * x[j] * through


_GEOMETRY = types.UniTuple(types.int64, 4)
register_generic("lrn_forward", lrn_forward, lambda f: (f[::1], f[::1], _GEOMETRY, f, f, f, f))
register_generic("lrn_backward", lrn_backward, lambda f: (f[::1], f[::1], f[::1], _GEOMETRY, f, f, f, f, f))


def lrn_geometry(shape, size, before):
    """(C, S, n, before) as the kernels unpack it."""
    positions = 1
    for d in shape[2:]:
        positions *= d
    return tuple(int(v) for v in (shape[1], positions, size, before))


@step_kernel
def local_response_norm(out, x, *, size, before, alpha, beta, k):
    t = out.dtype.type
    return [BoundLaunch(lrn_forward, grid_for(out.size), BLOCK,
                        [flat(out), flat(x), lrn_geometry(shape_of(x), size, before), t(alpha / size), t(-beta),
                         t(k), t(0)])]


@step_kernel
def local_response_norm_grad(out, dy, x, *, size, before, alpha, beta, k):
    t = out.dtype.type
    return [BoundLaunch(lrn_backward, grid_for(out.size), BLOCK,
                        [flat(out), flat(dy), flat(x), lrn_geometry(shape_of(x), size, before), t(alpha / size),
                         t(-beta), t(k), t(2 * alpha * beta / size), t(0)])]


KERNELS = {LocalResponseNorm: local_response_norm, LocalResponseNormGrad: local_response_norm_grad}
