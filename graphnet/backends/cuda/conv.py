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

p, the integers the device functions read: (M, N, K, splits, epilogue, N_img, C, H, W, K_out, OH, OW, R, S, sh, sw,
pt, pl, dh, dw, G, TA, TB); the epilogue adds the bias and, for the fused conv2d → relu, applies the ReLU; for the
fused conv2d_grad_input → relu_grad it multiplies by [relu_y > 0].

No index is divided inside the K loop. An element's address is split into the part of its GEMM row or column,
worked out once per block (see gemm.py), and the part of k, read from a table made on the host when the step is
first run: for the forward, k = (c, r, s) contributes c·H·W + r·dh·W + s·dw to the offset and (r·dh, s·dw) to the
position, which is checked against the padding. TA and TB say where A's and B's tables start in the table array.
"""
import math
from functools import lru_cache

import numba
import numpy as np
from numba import cuda, types

from ...errors import GraphError
from .gemm import (ADD_BIAS, BIG_ENOUGH, I64, P_SIZE, RELU, RELU_GRAD, TILINGS, U64, Operand, Output, choose_tiling,
                   inside, pack, tiled_gemm)
from .launch import BoundLaunch, flat, step_kernel, shape_of
from .reduce import ReductionPlan, SUM_KERNELS, reduction_launches
from .registry import register
from ...ops.conv import Conv2d, Conv2dGradInput, Conv2dGradWeight
from ...ops.fused import Conv2dGradInputReluGrad, Conv2dRelu

# indices into p
NB, C, H, W, KO, OH, OW, R, S, SH, SW, PT, PL, DH, DW, G, TA, TB = range(5, 23)


@lru_cache(maxsize=None)
def conv_functions(dtype):
    """The operands and outputs of the three convolution GEMMs for one dtype (Numba type).

    Every division of an index happens in a `locate` (once per block); a `fetch` adds the k part from the table:
    entry k of a table is four integers at table[p[TA] + 4k] (A's) or table[p[TB] + 4k] (B's)."""
    zero = I64(0)

    # -- forward: A = w (rows: output channels), B = x gathered at the output positions -----------------------
    @cuda.jit(device=True)
    def locate_filter(w, p, g, i):
        return (g * p[0] + i) * p[2], zero, zero, zero

    @cuda.jit(device=True)
    def fetch_contiguous(w, table, p, row, unused1, unused2, unused3, k):
        return w[U64(row + k)]

    @cuda.jit(device=True)
    def locate_output_position(unused, p, g, j):
        """column j = (n, oh, ow): the top-left corner of its receptive field, (offset, row, column)"""
        positions = p[OH] * p[OW]
        n, position = j // positions, j % positions
        h0 = (position // p[OW]) * p[SH] - p[PT]
        w0 = (position % p[OW]) * p[SW] - p[PL]
        return (n * p[C] + g * (p[C] // p[G])) * p[H] * p[W] + h0 * p[W] + w0, h0, w0, zero

    @cuda.jit(device=True)
    def fetch_gathered(x, table, p, corner, h0, w0, unused, k):
        """x at the corner plus tap k's (offset, row, column) — zero where that falls in the padding"""
        at = p[TB] + 4 * k
        h = h0 + table[U64(at + 1)]
        col = w0 + table[U64(at + 2)]
        if inside(h, p[H]) and inside(col, p[W]):
            return x[U64(corner + table[U64(at)])]
        return dtype(0)

    @cuda.jit(device=True)
    def row_of_output_channel(p, g, split, i):
        return (g * p[0] + i) * p[OH] * p[OW]

    @cuda.jit(device=True)
    def column_of_output_position(p, g, j):
        positions = p[OH] * p[OW]
        return (j // positions) * p[KO] * positions + j % positions

    @cuda.jit(device=True)
    def bias_of_output_channel(p, g, i, j):
        return g * p[0] + i

    # -- grad_input: A = w read per input channel, B = dy gathered for each input pixel ------------------------
    @cuda.jit(device=True)
    def locate_filter_input_channel(unused, p, g, i):
        return (g * (p[KO] // p[G]) * p[0] + i) * p[R] * p[S], zero, zero, zero

    @cuda.jit(device=True)
    def fetch_by_table(array, table, p, row, unused1, unused2, unused3, k):
        return array[U64(row + table[U64(p[TA] + 4 * k)])]

    @cuda.jit(device=True)
    def locate_input_pixel(unused, p, g, j):
        """column j = (n, h, w): the first gradient plane of its group; (h + pt)//sh, (w + pl)//sw; and the
        pixel's phase ((h + pt) % sh, (w + pl) % sw) as one number"""
        plane = p[H] * p[W]
        n, pixel = j // plane, j % plane
        h_padded, w_padded = pixel // p[W] + p[PT], pixel % p[W] + p[PL]
        return ((n * p[KO] + g * (p[KO] // p[G])) * p[OH] * p[OW], h_padded // p[SH], w_padded // p[SW],
                (h_padded % p[SH]) * p[SW] + w_padded % p[SW])

    @cuda.jit(device=True)
    def fetch_scattered(dy, table, p, plane0, h_steps, w_steps, phase, k):
        """dy[n, k_out, oh, ow] for the output position whose tap (r, s) landed on this pixel, if there is one:
        oh = (h + pt − r·dh)/sh must be a whole number inside the output (ow alike). It is whole exactly when
        h + pt and r·dh leave the same remainder by sh, and then oh = (h + pt)//sh − (r·dh)//sh: so the pixel's
        and the tap's phases are compared, and the quotients subtracted."""
        at = p[TB] + 4 * k
        if phase == table[U64(at + 3)]:
            oh = h_steps - table[U64(at + 1)]
            ow = w_steps - table[U64(at + 2)]
            if inside(oh, p[OH]) and inside(ow, p[OW]):
                return dy[U64(plane0 + table[U64(at)] + oh * p[OW] + ow)]
        return dtype(0)

    @cuda.jit(device=True)
    def row_of_input_channel(p, g, split, i):
        return (g * p[0] + i) * p[H] * p[W]

    @cuda.jit(device=True)
    def column_of_input_pixel(p, g, j):
        plane = p[H] * p[W]
        return (j // plane) * p[C] * plane + j % plane

    # -- grad_weight: A = dy per output channel, B = x gathered at each tap; rows of split s go to partials[s] --
    @cuda.jit(device=True)
    def locate_gradient_channel(unused, p, g, i):
        return (g * p[0] + i) * p[OH] * p[OW], zero, zero, zero

    @cuda.jit(device=True)
    def locate_tap(unused, p, g, j):
        """column j = (c, r, s): where the tap reads relative to an output position, (offset, row, column)"""
        taps = p[R] * p[S]
        c, tap = j // taps, j % taps
        h0 = (tap // p[S]) * p[DH] - p[PT]
        w0 = (tap % p[S]) * p[DW] - p[PL]
        return (g * (p[C] // p[G]) + c) * p[H] * p[W] + h0 * p[W] + w0, h0, w0, zero

    @cuda.jit(device=True)
    def row_of_partial(p, g, split, i):
        return (split * p[KO] + g * p[0] + i) * p[1]

    @cuda.jit(device=True)
    def column_as_is(p, g, j):
        return j

    @cuda.jit(device=True)
    def no_bias(p, g, i, j):
        return zero

    return {
        "forward": (Operand(locate_filter, fetch_contiguous, k_contiguous=True),
                    Operand(locate_output_position, fetch_gathered, k_contiguous=False),
                    Output(row_of_output_channel, column_of_output_position, bias_of_output_channel)),
        "grad_input": (Operand(locate_filter_input_channel, fetch_by_table, k_contiguous=True),
                       Operand(locate_input_pixel, fetch_scattered, k_contiguous=False),
                       Output(row_of_input_channel, column_of_input_pixel, no_bias)),
        "grad_weight": (Operand(locate_gradient_channel, fetch_by_table, k_contiguous=True),
                        Operand(locate_tap, fetch_gathered, k_contiguous=True),
                        Output(row_of_partial, column_as_is, no_bias)),
    }


def conv_kernel(which, tiling, dtype):
    numba_dtype = numba.from_dtype(np.dtype(dtype))
    operand_a, operand_b, output = conv_functions(numba_dtype)[which]
    return tiled_gemm(tiling, operand_a, operand_b, output, numba_dtype)


def _conv_signature(f):
    return (f[::1], f[::1], f[::1], f[::1], types.int64[::1], types.int32[::1], types.UniTuple(types.int64, P_SIZE))


for _tiling in TILINGS:
    register(f"conv2d[{_tiling.label}]", lambda dtype, t=_tiling: conv_kernel("forward", t, dtype), _conv_signature)
    register(f"conv2d_grad_input[{_tiling.label}]", lambda dtype, t=_tiling: conv_kernel("grad_input", t, dtype),
             _conv_signature)
    register(f"conv2d_grad_weight[{_tiling.label}]", lambda dtype, t=_tiling: conv_kernel("grad_weight", t, dtype),
             _conv_signature)


# ---------------------------------------------------------------------------------------------------------------
# the per-k address tables

def rows_of_four(*columns):
    """A table: one row of four integers per k, from up to four columns (missing ones are zero)."""
    columns = [np.asarray(column, dtype=np.int64).reshape(-1) for column in columns]
    table = np.zeros((columns[0].size, 4), dtype=np.int64)
    for index, column in enumerate(columns):
        table[:, index] = column
    return table


def conv_tables(which, x_shape, w_shape, y_shape, stride, dilation, groups):
    """(A's table, B's table) for one of the three GEMMs, in the order of k (see conv_functions)."""
    (n, c, h, w), (k, c_per_group, r, s), (oh, ow) = x_shape, w_shape, y_shape[2:]
    (sh, sw), (dh, dw) = stride, dilation
    none = np.zeros((0, 4), dtype=np.int64)
    if which == "forward":                         # k = (c, r, s)
        cc, rr, ss = np.meshgrid(np.arange(c_per_group), np.arange(r) * dh, np.arange(s) * dw, indexing="ij")
        return none, rows_of_four(cc * h * w + rr * w + ss, rr, ss)
    if which == "grad_input":                      # k = (k_out, r, s)
        kk, rr, ss = np.meshgrid(np.arange(k // groups), np.arange(r) * dh, np.arange(s) * dw, indexing="ij")
        taps = np.arange(r * s)[None, :] + np.zeros((k // groups, 1), dtype=np.int64)
        filters = rows_of_four(np.arange(k // groups)[:, None] * c_per_group * r * s + taps)
        return filters, rows_of_four(kk * oh * ow, rr // sh, ss // sw, (rr % sh) * sw + ss % sw)
    images, rows, columns = np.meshgrid(np.arange(n), np.arange(oh) * sh, np.arange(ow) * sw, indexing="ij")
    gradients = rows_of_four(np.arange(n)[:, None] * k * oh * ow + np.arange(oh * ow)[None, :])
    return gradients, rows_of_four(images * c * h * w + rows * w + columns, rows, columns)   # k = (n, oh, ow)


def device_table(a_table, b_table):
    """Both tables in one int32 device array, and (TA, TB): where each starts."""
    both = np.concatenate([a_table, b_table]).reshape(-1)
    if both.size and np.abs(both).max() >= 2 ** 31:
        raise GraphError("conv2d on the cuda backend: a tensor of 2^31 elements or more is beyond its 32-bit "
                         "address tables; use a smaller batch")
    return cuda.to_device(np.append(both, 0).astype(np.int32)), (0, 4 * len(a_table))


# ---------------------------------------------------------------------------------------------------------------
# shapes of the three GEMMs

def geometry(x_shape, w_shape, y_shape, stride, padding, dilation, groups):
    """p[5:21]: (N_img, C, H, W, K_out, OH, OW, R, S, sh, sw, pt, pl, dh, dw, G)"""
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


def gemm_launch(which, tiling, splits, out, a, b, x_shape, w_shape, y_shape, stride, padding, dilation, groups,
                bias=None, epilogue=0):
    m, n, k = gemm_sizes(which, x_shape, w_shape, y_shape, groups)
    table, offsets = device_table(*conv_tables(which, x_shape, w_shape, y_shape, stride, dilation, groups))
    p = pack([m, n, k, splits, epilogue] + geometry(x_shape, w_shape, y_shape, stride, padding, dilation, groups)
             + list(offsets))
    kernel = conv_kernel(which, tiling, out.dtype)
    no_offsets = cuda.to_device(np.zeros(1, dtype=np.int64))   # a convolution's addresses come from its table
    return BoundLaunch(kernel, tiling.grid(m, n, groups * splits), tiling.threads,
                       [flat(out), flat(a), flat(b), flat(out if bias is None else bias), no_offsets, table, p])


def forward_launch(out, x, w, b, stride, padding, dilation, groups, tiling, relu):
    x_shape, w_shape, y_shape = shape_of(x), shape_of(w), shape_of(out)
    tiling = tiling or plan_conv("forward", x_shape, w_shape, y_shape, groups)[0]
    epilogue = (ADD_BIAS if b is not None else 0) | (RELU if relu else 0)
    return gemm_launch("forward", tiling, 1, out, w, x, x_shape, w_shape, y_shape, stride, padding, dilation, groups,
                       bias=b, epilogue=epilogue)


@step_kernel
def conv2d(out, x, w, b=None, *, stride, padding, dilation, groups, tiling=None, splits=1, algorithm=None):
    """y = conv(x, w) + b"""
    return [forward_launch(out, x, w, b, stride, padding, dilation, groups, tiling, relu=False)]


@step_kernel
def conv2d_relu(out, x, w, b=None, *, stride, padding, dilation, groups, tiling=None, splits=1, algorithm=None):
    """y = max(conv(x, w) + b, 0): the fused conv2d → relu, the ReLU applied as each output is written"""
    return [forward_launch(out, x, w, b, stride, padding, dilation, groups, tiling, relu=True)]


def input_grad_launch(out, dy, w, relu_y, stride, padding, dilation, groups, tiling):
    x_shape, w_shape, y_shape = shape_of(out), shape_of(w), shape_of(dy)
    tiling = tiling or plan_conv("grad_input", x_shape, w_shape, y_shape, groups)[0]
    return gemm_launch("grad_input", tiling, 1, out, w, dy, x_shape, w_shape, y_shape, stride, padding, dilation,
                       groups, bias=relu_y, epilogue=0 if relu_y is None else RELU_GRAD)


@step_kernel
def conv2d_grad_input(out, dy, w, *, stride, padding, dilation, groups, tiling=None, splits=1, algorithm=None):
    """dx: the transposed convolution of dy with w"""
    return [input_grad_launch(out, dy, w, None, stride, padding, dilation, groups, tiling)]


@step_kernel
def conv2d_grad_input_relu_grad(out, dy, w, relu_y, *, stride, padding, dilation, groups, tiling=None, splits=1,
                                algorithm=None):
    """dx · [relu_y > 0]: the fused conv2d_grad_input → relu_grad (the relu before the convolution, whose output
    relu_y is the convolution's input)"""
    return [input_grad_launch(out, dy, w, relu_y, stride, padding, dilation, groups, tiling)]


@step_kernel
def conv2d_grad_weight(out, dy, x, *, stride, padding, dilation, groups, tiling=None, splits=None, algorithm=None,
                       workspace=None):
    """dw = Σ over images and positions of dy · cols(x)ᵀ"""
    x_shape, w_shape, y_shape = shape_of(x), shape_of(out), shape_of(dy)
    if tiling is None or splits is None:
        tiling, splits = plan_conv("grad_weight", x_shape, w_shape, y_shape, groups)
    if splits == 1:
        return [gemm_launch("grad_weight", tiling, 1, out, dy, x, x_shape, w_shape, y_shape, stride, padding,
                            dilation, groups)]
    count = int(np.prod(w_shape))
    if workspace is None:
        partials = cuda.device_array(splits * count, dtype=out.dtype)
    else:
        partials = workspace[:splits * count * out.dtype.itemsize].view(out.dtype)
    plan = ReductionPlan("per-thread", 1, count, splits, ((1,) * 5 + (count,), (0,) * 5 + (1,)),
                         ((1,) * 5 + (splits,), (0,) * 5 + (count,)))
    return ([gemm_launch("grad_weight", tiling, splits, partials, dy, x, x_shape, w_shape, y_shape, stride,
                         padding, dilation, groups)]
            + reduction_launches(SUM_KERNELS, out, partials, plan, 1.0, None))


SPECIALIZE = {Conv2d: specializer("forward"), Conv2dRelu: specializer("forward"),
              Conv2dGradInput: specializer("grad_input"),
              Conv2dGradInputReluGrad: specializer("grad_input"),
              Conv2dGradWeight: specializer("grad_weight")}
WORKSPACE = {Conv2dGradWeight: weight_grad_workspace}


KERNELS = {Conv2d: conv2d, Conv2dRelu: conv2d_relu, Conv2dGradInput: conv2d_grad_input,
           Conv2dGradInputReluGrad: conv2d_grad_input_relu_grad, Conv2dGradWeight: conv2d_grad_weight}
