"""2-D convolution, NCHW, forward and both gradients, as implicit GEMMs on the tiled kernel of gemm.py.

x (N, C, H, W), w (K, C/G, R, S), y (N, K, OH, OW); group g owns input channels g·C/G … and output channels
g·K/G …; stride (sh, sw), padding (pt, pl) on top/left (bottom/right only change OH, OW), dilation (dh, dw).
The input row read by output row oh at kernel row r is h = oh·sh + r·dh − pt (columns alike); rows outside
0 ≤ h < H are the zero padding. Each kernel is one GEMM per group (grid depth = G), with the im2col matrix read
through that formula instead of being stored:

    forward       y_g  = W_g · cols_g        M = K/G,  N = N·OH·OW,  K = C/G·R·S
                  A[k, (c,r,s)] = w[g·K/G + k, c, r, s]      B[(c,r,s), (n,oh,ow)] = x[n, g·C/G + c, h, w]
                  C[k, (n,oh,ow)] → y[n, g·K/G + k, oh, ow] (+ b[k])
    grad_input    dx_g = W_gᵀ · dy_g, scattered back by col2im — written as a gather, so no two threads add into
                  the same dx: dx[n, c, h, w] = Σ_{k,r,s} w[k, c, r, s] · dy[n, k, oh, ow] over the (r, s) with
                  oh = (h + pt − r·dh)/sh and ow = (w + pl − s·dw)/sw whole numbers inside the output
                  M = C/G,  N = N·H·W,  K = K/G·R·S
    grad_weight   dw_g = dy_g · cols_gᵀ      M = K/G,  N = C/G·R·S,  K = N·OH·OW
                  K is large and M·N small, so K is split into slices ("split-K"); each slice writes its partial
                  dw to a workspace, and a reduction over the slices adds them (deterministically).

p, the integers the device functions read: (M, N, K, splits, N_img, C, H, W, K_out, OH, OW, R, S, sh, sw, pt, pl,
dh, dw, G).
"""
import math
from functools import lru_cache

import numba
import numpy as np
from numba import cuda, types

from .gemm import BIG_ENOUGH, TILINGS, choose_tiling, pack, tiled_gemm
from .launch import BoundLaunch, flat, step_kernel, shape_of
from .reduce import ReductionPlan, SUM_KERNELS, reduction_launches
from .registry import register

# indices into p
NB, C, H, W, KO, OH, OW, R, S, SH, SW, PT, PL, DH, DW, G = range(4, 20)


@lru_cache(maxsize=None)
def conv_functions(dtype, with_bias):
    """The loaders and stores of the three convolution GEMMs for one dtype (Numba type)."""

    @cuda.jit(device=True)
    def forward_load_w(w, bias, p, g, i, k):
        return w[(g * p[0] + i) * p[2] + k]

    @cuda.jit(device=True)
    def forward_load_x(x, bias, p, g, k, j):
        rs = p[R] * p[S]
        c, r, s = k // rs, (k % rs) // p[S], k % p[S]
        positions = p[OH] * p[OW]
        n, oh, ow = j // positions, (j % positions) // p[OW], j % p[OW]
        h = oh * p[SH] + r * p[DH] - p[PT]
        col = ow * p[SW] + s * p[DW] - p[PL]
        if 0 <= h < p[H] and 0 <= col < p[W]:
            return x[((n * p[C] + g * (p[C] // p[G]) + c) * p[H] + h) * p[W] + col]
        return dtype(0)

    @cuda.jit(device=True)
    def forward_store(y, bias, p, g, split, i, j, value):
        k_out = g * p[0] + i
        positions = p[OH] * p[OW]
        at = ((j // positions) * p[KO] + k_out) * positions + j % positions
        if with_bias:
            y[at] = value + bias[k_out]
        else:
            y[at] = value

    @cuda.jit(device=True)
    def input_grad_load_w(w, unused, p, g, i, k):
        rs = p[R] * p[S]
        return w[((g * (p[KO] // p[G]) + k // rs) * (p[C] // p[G]) + i) * rs + k % rs]

    @cuda.jit(device=True)
    def input_grad_load_dy(dy, unused, p, g, k, j):
        rs = p[R] * p[S]
        kk, r, s = k // rs, (k % rs) // p[S], k % p[S]
        plane = p[H] * p[W]
        n, h, col = j // plane, (j % plane) // p[W], j % p[W]
        th = h + p[PT] - r * p[DH]
        tw = col + p[PL] - s * p[DW]
        if th >= 0 and tw >= 0 and th % p[SH] == 0 and tw % p[SW] == 0:
            oh = th // p[SH]
            ow = tw // p[SW]
            if oh < p[OH] and ow < p[OW]:
                return dy[((n * p[KO] + g * (p[KO] // p[G]) + kk) * p[OH] + oh) * p[OW] + ow]
        return dtype(0)

    @cuda.jit(device=True)
    def input_grad_store(dx, unused, p, g, split, i, j, value):
        plane = p[H] * p[W]
        dx[((j // plane) * p[C] + g * (p[C] // p[G]) + i) * plane + j % plane] = value

    @cuda.jit(device=True)
    def weight_grad_load_dy(dy, unused, p, g, i, k):
        positions = p[OH] * p[OW]
        return dy[((k // positions) * p[KO] + g * p[0] + i) * positions + k % positions]

    @cuda.jit(device=True)
    def weight_grad_load_x(x, unused, p, g, k, j):
        positions = p[OH] * p[OW]
        n, oh, ow = k // positions, (k % positions) // p[OW], k % p[OW]
        rs = p[R] * p[S]
        c, r, s = j // rs, (j % rs) // p[S], j % p[S]
        h = oh * p[SH] + r * p[DH] - p[PT]
        col = ow * p[SW] + s * p[DW] - p[PL]
        if 0 <= h < p[H] and 0 <= col < p[W]:
            return x[((n * p[C] + g * (p[C] // p[G]) + c) * p[H] + h) * p[W] + col]
        return dtype(0)

    @cuda.jit(device=True)
    def weight_grad_store(partials, unused, p, g, split, i, j, value):
        """partials[split, g·K/G + i, j] (with one split, partials is dw itself)"""
        partials[(split * p[KO] + g * p[0] + i) * p[1] + j] = value

    return {
        "forward": (forward_load_w, forward_load_x, forward_store, True, True),
        "grad_input": (input_grad_load_w, input_grad_load_dy, input_grad_store, True, True),
        "grad_weight": (weight_grad_load_dy, weight_grad_load_x, weight_grad_store, True, False),
    }


def conv_kernel(which, tiling, dtype, with_bias=False):
    numba_dtype = numba.from_dtype(np.dtype(dtype))
    load_a, load_b, store, a_k_contiguous, b_n_contiguous = conv_functions(numba_dtype, with_bias)[which]
    return tiled_gemm(tiling, load_a, load_b, store, a_k_contiguous, b_n_contiguous, numba_dtype)


def _conv_signature(f):
    return (f[::1], f[::1], f[::1], f[::1], types.UniTuple(types.int64, 20))


for _tiling in TILINGS:
    register(f"conv2d[{_tiling.label}]", lambda dtype, t=_tiling: conv_kernel("forward", t, dtype), _conv_signature)
    register(f"conv2d+bias[{_tiling.label}]", lambda dtype, t=_tiling: conv_kernel("forward", t, dtype, True),
             _conv_signature)
    register(f"conv2d_grad_input[{_tiling.label}]", lambda dtype, t=_tiling: conv_kernel("grad_input", t, dtype),
             _conv_signature)
    register(f"conv2d_grad_weight[{_tiling.label}]", lambda dtype, t=_tiling: conv_kernel("grad_weight", t, dtype),
             _conv_signature)


# ---------------------------------------------------------------------------------------------------------------
# shapes of the three GEMMs

def geometry(x_shape, w_shape, y_shape, stride, padding, dilation, groups):
    """p[4:]: (N_img, C, H, W, K_out, OH, OW, R, S, sh, sw, pt, pl, dh, dw, G)"""
    (n, c, h, w), (k, _, r, s), (oh, ow) = x_shape, w_shape, y_shape[2:]
    (sh, sw), ((pt, _), (pl, _)), (dh, dw) = stride, padding, dilation
    return [n, c, h, w, k, oh, ow, r, s, sh, sw, pt, pl, dh, dw, groups]


def gemm_sizes(which, x_shape, w_shape, y_shape, groups):
    (n, _, h, w), (k, c_per_group, r, s), (oh, ow) = x_shape, w_shape, y_shape[2:]
    k_per_group = k // groups
    if which == "forward":
        return k_per_group, n * oh * ow, c_per_group * r * s
    if which == "grad_input":
        return c_per_group, n * h * w, k_per_group * r * s
    return k_per_group, c_per_group * r * s, n * oh * ow


def choose_splits(tiling, m, n, k_total, groups):
    """Slices of K for grad_weight: enough blocks to fill the GPU twice, each slice at least 16 steps of BK."""
    tiles = math.ceil(m / tiling.block_m) * math.ceil(n / tiling.block_n) * groups
    most = max(1, k_total // (16 * tiling.block_k))
    return max(1, min(math.ceil(2 * BIG_ENOUGH / tiles), most, 256))


def plan_conv(which, x_shape, w_shape, y_shape, groups):
    """(tiling, splits) for one of the three GEMMs."""
    m, n, k = gemm_sizes(which, x_shape, w_shape, y_shape, groups)
    if which == "grad_weight":
        tiling = choose_tiling(m, n, depth=BIG_ENOUGH)
        return tiling, choose_splits(tiling, m, n, k, groups)
    return choose_tiling(m, n, groups), 1


def shapes_of(which, in_shapes, out_shape, ref_x=None):
    """(x shape, w shape, y shape) of the convolution a kernel belongs to."""
    if which == "forward":
        return tuple(in_shapes[0]), tuple(in_shapes[1]), tuple(out_shape)
    if which == "grad_input":                  # inputs (dy, w), out has x's shape
        return tuple(out_shape), tuple(in_shapes[1]), tuple(in_shapes[0])
    return tuple(in_shapes[1]), tuple(out_shape), tuple(in_shapes[0])   # inputs (dy, x), out has w's shape


def specializer(which):
    def specialize(params, in_shapes, out_shape, dtype):
        x_shape, w_shape, y_shape = shapes_of(which, in_shapes, out_shape)
        tiling, splits = plan_conv(which, x_shape, w_shape, y_shape, params["groups"])
        label = f"implicit-gemm {tiling.label}" + (f" split-k {splits}" if splits > 1 else "")
        return dict(params, tiling=tiling, splits=splits, algorithm=label)
    return specialize


def weight_grad_workspace(params, in_shapes, out_shape, dtype):
    splits = params["splits"]
    return splits * int(np.prod(out_shape)) * np.dtype(dtype).itemsize if splits > 1 else 0


def gemm_launch(which, tiling, splits, out, a, b, extra, x_shape, w_shape, y_shape, stride, padding, dilation,
                groups, with_bias=False):
    m, n, k = gemm_sizes(which, x_shape, w_shape, y_shape, groups)
    p = pack([m, n, k, splits] + geometry(x_shape, w_shape, y_shape, stride, padding, dilation, groups))
    kernel = conv_kernel(which, tiling, out.dtype, with_bias)
    return BoundLaunch(kernel, tiling.grid(m, n, groups * splits), tiling.threads,
                       [flat(out), flat(a), flat(b), flat(extra), p])


@step_kernel
def conv2d(out, x, w, b=None, *, stride, padding, dilation, groups, tiling=None, splits=1, algorithm=None):
    """y = conv(x, w) + b"""
    x_shape, w_shape, y_shape = shape_of(x), shape_of(w), shape_of(out)
    tiling = tiling or plan_conv("forward", x_shape, w_shape, y_shape, groups)[0]
    extra = b if b is not None else w                   # a placeholder array when there is no bias
    return [gemm_launch("forward", tiling, 1, out, w, x, extra, x_shape, w_shape, y_shape, stride, padding,
                        dilation, groups, with_bias=b is not None)]


@step_kernel
def conv2d_grad_input(out, dy, w, *, stride, padding, dilation, groups, tiling=None, splits=1, algorithm=None):
    """dx: the transposed convolution of dy with w"""
    x_shape, w_shape, y_shape = shape_of(out), shape_of(w), shape_of(dy)
    tiling = tiling or plan_conv("grad_input", x_shape, w_shape, y_shape, groups)[0]
    return [gemm_launch("grad_input", tiling, 1, out, w, dy, w, x_shape, w_shape, y_shape, stride, padding,
                        dilation, groups)]


@step_kernel
def conv2d_grad_weight(out, dy, x, *, stride, padding, dilation, groups, tiling=None, splits=None, algorithm=None,
                       workspace=None):
    """dw = Σ over images and positions of dy · cols(x)ᵀ"""
    x_shape, w_shape, y_shape = shape_of(x), shape_of(out), shape_of(dy)
    if tiling is None or splits is None:
        tiling, splits = plan_conv("grad_weight", x_shape, w_shape, y_shape, groups)
    if splits == 1:
        return [gemm_launch("grad_weight", tiling, 1, out, dy, x, dy, x_shape, w_shape, y_shape, stride, padding,
                            dilation, groups)]
    count = int(np.prod(w_shape))
    if workspace is None:
        partials = cuda.device_array(splits * count, dtype=out.dtype)
    else:
        partials = workspace[:splits * count * out.dtype.itemsize].view(out.dtype)
    plan = ReductionPlan("per-thread", 1, count, splits, ((1,) * 5 + (count,), (0,) * 5 + (1,)),
                         ((1,) * 5 + (splits,), (0,) * 5 + (count,)))
    return ([gemm_launch("grad_weight", tiling, splits, partials, dy, x, dy, x_shape, w_shape, y_shape, stride,
                         padding, dilation, groups)]
            + reduction_launches(SUM_KERNELS, out, partials, plan, 1.0, None))


KERNELS = {"conv2d": conv2d, "conv2d_grad_input": conv2d_grad_input, "conv2d_grad_weight": conv2d_grad_weight}
SPECIALIZE = {"conv2d": specializer("forward"), "conv2d_grad_input": specializer("grad_input"),
              "conv2d_grad_weight": specializer("grad_weight")}
WORKSPACE = {"conv2d_grad_weight": weight_grad_workspace}
