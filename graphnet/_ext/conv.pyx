# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""2-D convolution of the cpu backend (NCHW): forward (optionally fused with ReLU), gradient of the input and of
the weight, with stride, padding, dilation and groups — the same results as graphnet.backends.reference.conv.

x is (N, C, H, W), the weight w is (K, C/G, R, S) for G groups, the output y is (N, K, OH, OW):

    y[n, k, oh, ow] = b[k] + Σ_{c, r, s} w[k, c, r, s] · x[n, g·C/G + c, oh·sh + r·dh − pt, ow·sw + s·dw − pl]
    OH = floor((H + pt + pb − dh·(R − 1) − 1) / sh) + 1            (OW likewise)     g = k // (K/G)

Per image n and group g, with cols_g[n] the (C/G·R·S) × (OH·OW) im2col matrix of the group's channels
(_windows.pxd) and w_g the weight rows of the group as a (K/G) × (C/G·R·S) matrix:

    forward       y_g[n]  = w_g · cols_g[n]                     (+ bias, ReLU: the epilogue)
    grad input    dx[n]   = col2im(w_gᵀ · dy_g[n])               (the transposed convolution)
    grad weight   dw_g    = Σ_n dy_g[n] · cols_g[n]ᵀ

Algorithms, chosen per layer shape at compile time by SPECIALIZE (the schedule shows cpu.conv2d[<algorithm>]):

    im2col+sgemm   unfold one image into the workspace, then one GEMM per group (dgemm for float64)
    sgemm          a 1×1 kernel with stride 1 and no padding: x[n] already is cols[n], no unfolding at all
    winograd       a 3×3 kernel, stride 1, one group, enough channels: Winograd's F(2×2, 3×3) in winograd.pyx, for
                   the forward pass and the input gradient (4 multiplies per output and channel pair instead of 9)
    direct         groups with at most DIRECT_MAX_OUTPUTS (2) output channels, e.g. depthwise layers, where the
                   GEMM would have one or two rows: each output plane is built as Σ_{c, r, s} w[k, c, r, s] · (a
                   shifted view of the zero-padded input plane c), one vectorized multiply-add over a whole output
                   row per tap, the output plane staying in L1 (3x faster than im2col for 3×3 depthwise).
                   Measured on the 2-core EPYC, one thread: LeNet's first layer (1 → 6, 5×5) runs faster through
                   im2col+sgemm (0.81 ms for 64 images) than direct (1.1 ms), so it is not chosen there.
    blocked        the forward pass of a float32 layer of one group whose output channels fill vector registers
                   (see blocked_conv.worthwhile), where the processor has AVX-512 or AVX2 + FMA: a direct
                   convolution with the output channels in the vector lanes and a tile of output columns held in
                   registers (blocked_conv.pyx / blocked_conv.h), no im2col matrix; 2.2–3x faster than
                   im2col+sgemm on thin layers (LeNet's 6 → 16 5×5, a 16 → 32 3×3 stride-2 layer), where
                   unfolding took as long as multiplying.
    batched-im2col+sgemm   (batched-col2im+sgemm for the input gradient) unfold B images side by side into one
                   (C·R·S) × (B·P) tile, P = OH·OW, image b in columns b·P ... b·P + P − 1, so that each group needs
                   one GEMM per B images whose long side is B·P instead of P:

        forward       Y_g (K/G × B·P) = w_g · cols_g, then y[n0 + b, k, p] = max(Y[k, b·P + p] + b[k], 0)
                      (the epilogue fused into the copy out of the tile)
        grad input    dY (K × B·P) gathered from dy[n0 + b];  dcols_g = w_gᵀ · dY_g;  dx[n0 + b] = col2im(dcols, b)
        grad weight   dY gathered likewise;  dw_g += dY_g · cols_gᵀ        (inner size B·P instead of P)

                   Chosen where the output plane is small (P ≤ BATCHED_MAX_PLANE = 64) and the per-image GEMM is
                   large (≥ BATCHED_MIN_MACS = 2²⁰ multiply-adds per group), e.g. 64 or 128 channels at 8×8 or 4×4
                   (see prefers_batched for the measurements). Not for LeNet: its GEMMs are small enough that
                   OpenBLAS runs them image by image without packing, and batching them loses that.

Workspace and threads. The images are handed out to OpenMP threads one at a time (a dynamic schedule: on a
shared machine a thread that loses its core for a while does not hold up the others) — except for the weight
gradient, a sum over the images, where each thread takes a fixed run of them (static) so that the sum is taken in
the same order on every call (deterministic results for a given thread count); each thread owns one
slot of the workspace for its unfolded image (its padded plane for `direct`), and for the weight gradient also its
own partial dw, summed into `out` at the end. One slot per thread, not one per image: memory does not grow with the
batch. The forward pass unfolds an image a few output rows at a time (forward_tile_rows), so that the tile the GEMM
reads stays in the core's L2 cache: on the 64 → 64, 3×3, 56×56 layer this took the forward from ~40% to ~65% of
the FP32 peak (2-core EPYC, one thread). (The per-batch alternative, unfolding all N images before one GEMM per
image, measured no faster and needs N slots.) `batched` hands out tiles of images instead of images: ceil(N / B)
tiles, rounded up to a multiple of the thread count so that the threads get equal shares of the batch
(batch_tiles); its slot holds the unfolded tile and the K × B·P tile of y or dy. The workspace comes from the memory
plan (WORKSPACE below sizes it for min(threads, N) slots, min(threads, tiles) for `batched`); a direct call without
one allocates it. BLAS runs single-threaded inside the loop (see _blas.pxd).
"""
from cython.parallel cimport prange, threadid
cimport numpy as cnp
cimport openmp
from libc.string cimport memcpy, memset

import numpy as np

from graphnet._ext import blocked_conv, winograd
from graphnet._ext._sizes import aligned, output_shape, output_size

from graphnet._ext._blas cimport (BlasThreads, blas_threads_known, find_blas_threads, gemm, pin_blas_to_one_thread,
                                  restore_blas_threads)
from graphnet._ext._buffers cimport data, real, require_floats
from graphnet._ext._windows cimport Window, col2im_image, im2col_image, im2col_image_rows
from graphnet.ops.conv import Conv2d, Conv2dGradInput, Conv2dGradWeight
from graphnet.ops.fused import Conv2dRelu

cnp.import_array()

cdef BlasThreads BLAS = find_blas_threads()

cdef enum:
    TILE_BYTES = 256 * 1024            # the forward unfolds at most this much of an image at a time (see below)
    DIRECT_MAX_OUTPUTS = 2             # output channels per group up to which `direct` beats im2col + GEMM
    BATCH_TILE_BYTES = 1024 * 1024     # `batched` puts as many images side by side as its tiles fit in this
    BATCHED_MAX_PLANE = 64             # `batched` is chosen for output planes OH·OW up to this (8×8) ...
    BATCHED_MIN_MACS = 1 << 20         # ... whose per-image GEMM has at least this many multiply-adds per group

cdef enum Algorithm:
    IM2COL, GEMM_1X1, DIRECT, BATCHED


cdef struct Conv:
    Py_ssize_t images, channels, kernels, groups
    Py_ssize_t channels_per_group, kernels_per_group
    Py_ssize_t taps                    # R·S
    Py_ssize_t rows_per_group          # C/G·R·S: the inner size of every GEMM
    Py_ssize_t in_plane, out_plane     # H·W and OH·OW
    Py_ssize_t padded_h, padded_w      # the part of the zero-padded input plane that windows read (direct)
    Py_ssize_t tile_rows               # output rows unfolded at a time by the forward im2col (see forward_tile_rows)
    Py_ssize_t tile_images, tiles      # `batched`: at most tile_images images per tile, in `tiles` tiles
    Window win


# ----------------------------------------------------------------------------------------------------------------
# geometry (Python level, once per call)

cdef Conv conv_geometry(str kernel, tuple x_shape, tuple w_shape, tuple y_shape, stride, padding, dilation,
                        groups) except *:
    """The sizes a convolution kernel needs, checked against each other (x, w, y as in the module docstring)."""
    cdef Conv cv
    if len(x_shape) != 4 or len(w_shape) != 4 or len(y_shape) != 4:
        raise ValueError(f"cpu.{kernel}: x, w and y must be 4-D (N, C, H, W), (K, C/G, R, S), (N, K, OH, OW); got "
                         f"{x_shape}, {w_shape}, {y_shape}")
    n, c, h, w = x_shape
    k, c_per_group, kh, kw = w_shape
    (sh, sw), ((pt, pb), (pl, pr)), (dh, dw) = stride, padding, dilation
    expected = output_shape(x_shape, w_shape, stride, padding, dilation)
    if groups < 1 or c != c_per_group * groups or k % groups or tuple(y_shape) != expected:
        raise ValueError(f"cpu.{kernel}: x {x_shape} and w {w_shape} with groups={groups}, stride={stride}, "
                         f"padding={padding}, dilation={dilation} need C = C/G·G ({c} vs {c_per_group}·{groups}), "
                         f"K divisible by G, and y = (N, K, floor((H + pt + pb − dh·(R−1) − 1)/sh) + 1, ...) = "
                         f"{expected}; got y {y_shape}")
    cv.images, cv.channels, cv.kernels, cv.groups = n, c, k, groups
    cv.channels_per_group, cv.kernels_per_group = c_per_group, k // groups
    cv.taps = kh * kw
    cv.rows_per_group = c_per_group * kh * kw
    cv.in_plane, cv.out_plane = h * w, expected[2] * expected[3]
    cv.padded_h = (expected[2] - 1) * sh + (kh - 1) * dh + 1
    cv.padded_w = (expected[3] - 1) * sw + (kw - 1) * dw + 1
    cv.tile_rows = expected[2]
    cv.tile_images, cv.tiles = 1, n
    cv.win.height, cv.win.width, cv.win.out_h, cv.win.out_w = h, w, expected[2], expected[3]
    cv.win.kh, cv.win.kw, cv.win.sh, cv.win.sw = kh, kw, sh, sw
    cv.win.pt, cv.win.pl, cv.win.dh, cv.win.dw = pt, pl, dh, dw
    return cv


def is_pointwise(w_shape, stride, padding):
    """A 1×1 kernel, stride 1, no padding: the input planes are the im2col matrix as they are."""
    return tuple(w_shape[2:]) == (1, 1) and tuple(stride) == (1, 1) and tuple(padding) == ((0, 0), (0, 0))


# ----------------------------------------------------------------------------------------------------------------
# per-image C loops

cdef inline void add_bias_relu(real* planes, Py_ssize_t count, Py_ssize_t plane, const real* bias,
                               bint relu) noexcept nogil:
    """The epilogue: planes[k] += bias[k], then max(·, 0) (NaN kept, like np.maximum), for k < count."""
    cdef Py_ssize_t k, i
    cdef real* p
    cdef real v
    if bias == NULL and not relu:
        return
    for k in range(count):
        p = planes + k * plane
        if bias != NULL and relu:
            for i in range(plane):
                v = p[i] + bias[k]
                p[i] = 0 if v < 0 else v
        elif bias != NULL:
            for i in range(plane):
                p[i] = p[i] + bias[k]
        else:
            for i in range(plane):
                p[i] = 0 if p[i] < 0 else p[i]


cdef void forward_gemm(const Conv* cv, const real* cols, Py_ssize_t columns, const real* w, real* y) noexcept nogil:
    """y[n][:, tile] = w_g · cols_g for every group g, where cols holds `columns` output positions of the image (a
    tile of the unfolded image, or the image itself for a 1×1 kernel) and y points at the tile's first position."""
    cdef Py_ssize_t g, kpg = cv.kernels_per_group, rpg = cv.rows_per_group, p = cv.out_plane
    for g in range(cv.groups):
        gemm(False, False, <int>kpg, <int>columns, <int>rpg, <real>1, w + g * kpg * rpg, <int>rpg,
             cols + g * rpg * columns, <int>columns, <real>0, y + g * kpg * p, <int>p)


cdef void forward_im2col(const Conv* cv, const real* x, const real* w, real* y, real* cols) noexcept nogil:
    """y[n] tile by tile: unfold tile_rows output rows into cols, then one GEMM per group into those rows of y."""
    cdef Py_ssize_t oh = 0, stop, out_w = cv.win.out_w
    while oh < cv.win.out_h:
        stop = min(oh + cv.tile_rows, cv.win.out_h)
        im2col_image_rows(x, cv.channels, cols, (stop - oh) * out_w, &cv.win, oh, stop)
        forward_gemm(cv, cols, (stop - oh) * out_w, w, y + oh * out_w)
        oh = stop


cdef void pad_plane(const real* plane, real* padded, const Conv* cv) noexcept nogil:
    """padded[i, j] = plane[i − pt, j − pl] inside the plane, 0 in the padding (padded_h × padded_w)."""
    cdef const Window* win = &cv.win
    cdef Py_ssize_t i, h, width = cv.padded_w
    cdef Py_ssize_t left = min(win.pl, width), right = min(win.pl + win.width, width)
    for i in range(cv.padded_h):
        h = i - win.pt
        if h < 0 or h >= win.height or right <= left:
            memset(padded + i * width, 0, width * sizeof(real))
            continue
        memset(padded + i * width, 0, left * sizeof(real))
        memcpy(padded + i * width + left, plane + h * win.width, (right - left) * sizeof(real))
        memset(padded + i * width + right, 0, (width - right) * sizeof(real))


cdef void add_taps(real* y_plane, const real* padded, const real* taps, const Conv* cv) noexcept nogil:
    """y_plane[oh, ow] += Σ_{r, s} taps[r, s] · padded[oh·sh + r·dh, ow·sw + s·dw]: one row update per tap."""
    cdef const Window* win = &cv.win
    cdef Py_ssize_t oh, ow, r, s, out_w = win.out_w, sw = win.sw
    cdef real weight
    cdef real* out_row
    cdef const real* in_row
    for oh in range(win.out_h):
        out_row = y_plane + oh * out_w
        for r in range(win.kh):
            for s in range(win.kw):
                weight = taps[r * win.kw + s]
                in_row = padded + (oh * win.sh + r * win.dh) * cv.padded_w + s * win.dw
                if sw == 1:
                    for ow in range(out_w):
                        out_row[ow] += weight * in_row[ow]
                else:
                    for ow in range(out_w):
                        out_row[ow] += weight * in_row[ow * sw]


cdef void forward_direct(const Conv* cv, const real* x, const real* w, const real* bias, real* y,
                         real* padded) noexcept nogil:
    """y[n] = b + Σ_c Σ_taps w · shifted padded x[n, c], input channel by input channel (no BLAS)."""
    cdef Py_ssize_t k, c, g, i, cpg = cv.channels_per_group, kpg = cv.kernels_per_group
    for k in range(cv.kernels):
        for i in range(cv.out_plane):
            y[k * cv.out_plane + i] = 0 if bias == NULL else bias[k]
    for c in range(cv.channels):
        g = c // cpg
        pad_plane(x + c * cv.in_plane, padded, cv)
        for k in range(g * kpg, (g + 1) * kpg):
            add_taps(y + k * cv.out_plane, padded, w + (k * cpg + c - g * cpg) * cv.taps, cv)


cdef void forward_image(const Conv* cv, Algorithm algorithm, const real* x, const real* w, const real* bias,
                        bint relu, real* y, real* scratch) noexcept nogil:
    if algorithm == DIRECT:
        forward_direct(cv, x, w, bias, y, scratch)
        add_bias_relu(y, cv.kernels, cv.out_plane, <const real*>NULL, relu)
        return
    if algorithm == IM2COL:
        forward_im2col(cv, x, w, y, scratch)
    else:
        forward_gemm(cv, x, cv.out_plane, w, y)
    add_bias_relu(y, cv.kernels, cv.out_plane, bias, relu)


cdef void grad_input_image(const Conv* cv, Algorithm algorithm, const real* dy, const real* w, real* dx,
                           real* scratch) noexcept nogil:
    """dx[n] = col2im(w_gᵀ · dy_g[n]); for a 1×1 kernel w_gᵀ · dy_g[n] is dx[n] itself."""
    cdef Py_ssize_t g, kpg = cv.kernels_per_group, rpg = cv.rows_per_group, p = cv.out_plane
    cdef real* dcols = dx if algorithm == GEMM_1X1 else scratch
    for g in range(cv.groups):
        gemm(True, False, <int>rpg, <int>p, <int>kpg, <real>1, w + g * kpg * rpg, <int>rpg,
             dy + g * kpg * p, <int>p, <real>0, dcols + g * rpg * p, <int>p)
    if algorithm != GEMM_1X1:
        col2im_image(dcols, p, cv.channels, dx, &cv.win)


cdef void grad_weight_image(const Conv* cv, Algorithm algorithm, const real* dy, const real* x, real* dw,
                            real* scratch) noexcept nogil:
    """dw += dy_g[n] · cols_g[n]ᵀ for every group (dw: this thread's partial sum)."""
    cdef Py_ssize_t g, kpg = cv.kernels_per_group, rpg = cv.rows_per_group, p = cv.out_plane
    cdef const real* cols = x
    if algorithm == IM2COL:
        im2col_image(x, cv.channels, scratch, p, &cv.win)
        cols = scratch
    for g in range(cv.groups):
        gemm(False, True, <int>kpg, <int>rpg, <int>p, <real>1, dy + g * kpg * p, <int>p, cols + g * rpg * p, <int>p,
             <real>1, dw + g * kpg * rpg, <int>rpg)


# ----------------------------------------------------------------------------------------------------------------
# tiles of images for `batched`: `count` images n0 ≤ n < n0 + count side by side, image b in columns b·P ... b·P + P−1
# of every tile matrix (P = OH·OW, ld = count·P its row stride); count is at most B and differs between tiles

cdef void unfold_tile(const Conv* cv, const real* x, Py_ssize_t n0, Py_ssize_t count, real* cols) noexcept nogil:
    """cols (C·R·S × count·P): cols[(c·R + r)·S + s, b·P + p] = im2col(x[n0 + b])[(c·R + r)·S + s, p]."""
    cdef Py_ssize_t b, p = cv.out_plane, image = cv.channels * cv.in_plane
    for b in range(count):
        im2col_image(x + (n0 + b) * image, cv.channels, cols + b * p, count * p, &cv.win)


cdef void gather_tile(const Conv* cv, const real* dy, Py_ssize_t n0, Py_ssize_t count, real* tile) noexcept nogil:
    """tile (K × count·P): tile[k, b·P + p] = dy[n0 + b, k, p]."""
    cdef Py_ssize_t b, k, p = cv.out_plane, ld = count * cv.out_plane
    for b in range(count):
        for k in range(cv.kernels):
            memcpy(tile + k * ld + b * p, dy + ((n0 + b) * cv.kernels + k) * p, p * sizeof(real))


cdef void scatter_tile(const Conv* cv, const real* tile, Py_ssize_t n0, Py_ssize_t count, const real* bias,
                       bint relu, real* y) noexcept nogil:
    """The epilogue fused into the copy out of the tile: y[n0 + b, k, p] = max(tile[k, b·P + p] + b[k], 0)
    (no bias: + 0; no ReLU: no max; NaN kept, like np.maximum)."""
    cdef Py_ssize_t b, k, i, p = cv.out_plane, ld = count * cv.out_plane
    cdef const real* source
    cdef real* target
    cdef real shift, v
    for b in range(count):
        for k in range(cv.kernels):
            source = tile + k * ld + b * p
            target = y + ((n0 + b) * cv.kernels + k) * p
            shift = 0 if bias == NULL else bias[k]
            if relu:
                for i in range(p):
                    v = source[i] + shift
                    target[i] = 0 if v < 0 else v
            elif bias != NULL:
                for i in range(p):
                    target[i] = source[i] + shift
            else:
                memcpy(target, source, p * sizeof(real))


cdef void forward_tile(const Conv* cv, const real* x, const real* w, const real* bias, bint relu, real* y,
                       Py_ssize_t n0, Py_ssize_t count, real* cols, real* tile) noexcept nogil:
    """y[n0 : n0 + count] by one GEMM per group: tile_g (K/G × count·P) = w_g · cols_g, then the epilogue copy."""
    cdef Py_ssize_t g, kpg = cv.kernels_per_group, rpg = cv.rows_per_group, ld = count * cv.out_plane
    unfold_tile(cv, x, n0, count, cols)
    for g in range(cv.groups):
        gemm(False, False, <int>kpg, <int>ld, <int>rpg, <real>1, w + g * kpg * rpg, <int>rpg,
             cols + g * rpg * ld, <int>ld, <real>0, tile + g * kpg * ld, <int>ld)
    scatter_tile(cv, tile, n0, count, bias, relu, y)


cdef void grad_input_tile(const Conv* cv, const real* dy, const real* w, real* dx, Py_ssize_t n0, Py_ssize_t count,
                          real* dy_tile, real* dcols) noexcept nogil:
    """dcols_g (C/G·R·S × count·P) = w_gᵀ · dy_tile_g, then dx[n0 + b] = col2im(columns b·P ... of dcols)."""
    cdef Py_ssize_t b, g, kpg = cv.kernels_per_group, rpg = cv.rows_per_group, p = cv.out_plane, ld = count * p
    gather_tile(cv, dy, n0, count, dy_tile)
    for g in range(cv.groups):
        gemm(True, False, <int>rpg, <int>ld, <int>kpg, <real>1, w + g * kpg * rpg, <int>rpg,
             dy_tile + g * kpg * ld, <int>ld, <real>0, dcols + g * rpg * ld, <int>ld)
    for b in range(count):
        col2im_image(dcols + b * p, ld, cv.channels, dx + (n0 + b) * cv.channels * cv.in_plane, &cv.win)


cdef void grad_weight_tile(const Conv* cv, const real* dy, const real* x, real* dw, Py_ssize_t n0, Py_ssize_t count,
                           real* cols, real* dy_tile) noexcept nogil:
    """dw_g += dy_tile_g · cols_gᵀ: one GEMM per group whose inner size is count·P instead of P."""
    cdef Py_ssize_t g, kpg = cv.kernels_per_group, rpg = cv.rows_per_group, ld = count * cv.out_plane
    unfold_tile(cv, x, n0, count, cols)
    gather_tile(cv, dy, n0, count, dy_tile)
    for g in range(cv.groups):
        gemm(False, True, <int>kpg, <int>rpg, <int>ld, <real>1, dy_tile + g * kpg * ld, <int>ld,
             cols + g * rpg * ld, <int>ld, <real>1, dw + g * kpg * rpg, <int>rpg)


# ----------------------------------------------------------------------------------------------------------------
# the batch loops: images (or, for `batched`, tiles of images) shared between threads, one workspace slot each.
# A slot is laid out as [unfolded image or tile | K × B·P tile (`batched` only) | partial dw (weight gradient)].

cdef inline Py_ssize_t tile_start(const Conv* cv, Py_ssize_t t) noexcept nogil:
    """⌊t·N / tiles⌋, the first image of tile t: tiles differ in size by at most one image (see batch_tiles)."""
    return t * cv.images // cv.tiles


cdef void forward_batch(const Conv* cv, Algorithm algorithm, const real* x, const real* w, const real* bias,
                        bint relu, real* y, char* workspace, Py_ssize_t slot_bytes, Py_ssize_t tile_offset,
                        int threads) noexcept nogil:
    cdef Py_ssize_t n, t
    if algorithm == BATCHED:
        for t in prange(cv.tiles, num_threads=threads, schedule="dynamic"):
            forward_tile(cv, x, w, bias, relu, y, tile_start(cv, t), tile_start(cv, t + 1) - tile_start(cv, t),
                         <real*>(workspace + threadid() * slot_bytes),
                         <real*>(workspace + threadid() * slot_bytes + tile_offset))
        return
    for n in prange(cv.images, num_threads=threads, schedule="dynamic"):
        forward_image(cv, algorithm, x + n * cv.channels * cv.in_plane, w, bias, relu,
                      y + n * cv.kernels * cv.out_plane, <real*>(workspace + threadid() * slot_bytes))


cdef void grad_input_batch(const Conv* cv, Algorithm algorithm, const real* dy, const real* w, real* dx,
                           char* workspace, Py_ssize_t slot_bytes, Py_ssize_t tile_offset, int threads) noexcept nogil:
    cdef Py_ssize_t n, t
    if algorithm == BATCHED:
        for t in prange(cv.tiles, num_threads=threads, schedule="dynamic"):
            grad_input_tile(cv, dy, w, dx, tile_start(cv, t), tile_start(cv, t + 1) - tile_start(cv, t),
                            <real*>(workspace + threadid() * slot_bytes + tile_offset),
                            <real*>(workspace + threadid() * slot_bytes))
        return
    for n in prange(cv.images, num_threads=threads, schedule="dynamic"):
        grad_input_image(cv, algorithm, dy + n * cv.kernels * cv.out_plane, w, dx + n * cv.channels * cv.in_plane,
                         <real*>(workspace + threadid() * slot_bytes))


cdef void grad_weight_batch(const Conv* cv, Algorithm algorithm, const real* dy, const real* x, real* dw,
                            char* workspace, Py_ssize_t slot_bytes, Py_ssize_t tile_offset,
                            Py_ssize_t partial_offset, int threads) noexcept nogil:
    """Each thread sums its images into the partial dw at the end of its slot; then dw = Σ partials, in thread
    order. The schedule is static — thread t always gets the same contiguous run of images — so that the sum is
    taken in the same order on every call: the weight gradient is bit-for-bit the same from run to run at a given
    thread count (with a dynamic schedule, which thread summed which images changed from call to call)."""
    cdef Py_ssize_t n, t, i, size = cv.kernels * cv.rows_per_group
    cdef int thread
    cdef real* partial
    for thread in range(threads):
        memset(workspace + thread * slot_bytes + partial_offset, 0, size * sizeof(real))
    if algorithm == BATCHED:
        for t in prange(cv.tiles, num_threads=threads, schedule="static"):
            grad_weight_tile(cv, dy, x, <real*>(workspace + threadid() * slot_bytes + partial_offset),
                             tile_start(cv, t), tile_start(cv, t + 1) - tile_start(cv, t),
                             <real*>(workspace + threadid() * slot_bytes),
                             <real*>(workspace + threadid() * slot_bytes + tile_offset))
    else:
        for n in prange(cv.images, num_threads=threads, schedule="static"):
            grad_weight_image(cv, algorithm, dy + n * cv.kernels * cv.out_plane, x + n * cv.channels * cv.in_plane,
                              <real*>(workspace + threadid() * slot_bytes + partial_offset),
                              <real*>(workspace + threadid() * slot_bytes))
    memcpy(dw, workspace + partial_offset, size * sizeof(real))
    for thread in range(1, threads):
        partial = <real*>(workspace + thread * slot_bytes + partial_offset)
        for i in range(size):
            dw[i] += partial[i]


# ----------------------------------------------------------------------------------------------------------------
# algorithm choice and workspace sizes (shared by the kernels, SPECIALIZE and WORKSPACE)

FORWARD, GRAD_INPUT, GRAD_WEIGHT = "forward", "grad_input", "grad_weight"
WINOGRAD, BLOCKED = "winograd", "blocked"


def choose_algorithm(direction, x_shape, w_shape, stride, padding, groups, dtype, dilation=(1, 1)):
    """The algorithm for this layer shape: a 1×1 layer is a plain GEMM; a 3×3 stride-1 layer with enough channels
    runs Winograd F(2×2, 3×3) forward and for the input gradient (winograd.pyx: 2.25x fewer multiplies; see
    winograd.worthwhile for where it wins); a forward pass whose groups have at most DIRECT_MAX_OUTPUTS output
    channels (depthwise layers) goes direct; the forward pass of a thin float32 layer of one group goes blocked
    where the processor has the vector units (see blocked_conv.worthwhile); small output planes with wide GEMMs go
    batched (see prefers_batched); everything else unfolds image by image (im2col+sgemm; col2im+sgemm for the input
    gradient; dgemm for float64)."""
    blas = "sgemm" if np.dtype(dtype) == np.float32 else "dgemm"
    if is_pointwise(w_shape, stride, padding):
        return blas
    if (direction != GRAD_WEIGHT and winograd.applies(w_shape, stride, dilation, groups)
            and winograd.worthwhile(direction, x_shape, w_shape, padding)):
        return WINOGRAD
    if direction == FORWARD and w_shape[0] // groups <= DIRECT_MAX_OUTPUTS:
        return "direct"
    if (direction == FORWARD and blocked_conv.applies(x_shape, w_shape, groups, dtype)
            and blocked_conv.worthwhile(x_shape, w_shape, output_shape(x_shape, w_shape, stride, padding, dilation))):
        return BLOCKED
    unfold = "col2im" if direction == GRAD_INPUT else "im2col"
    if prefers_batched(x_shape, w_shape, stride, padding, dilation, groups, np.dtype(dtype).itemsize):
        return f"batched-{unfold}+{blas}"
    return f"{unfold}+{blas}"


def prefers_batched(x_shape, w_shape, stride, padding, dilation, groups, itemsize):
    """Whether `batched` beats unfolding image by image: an output plane of at most BATCHED_MAX_PLANE positions, a
    per-image GEMM of at least BATCHED_MIN_MACS multiply-adds per group, (K/G)·(C/G·R·S)·OH·OW, and room for two
    images or more in a tile.

    Measured on the 2-core AMD EPYC (Zen 4, 1 MB L2 per core; SciPy's OpenBLAS with its SkylakeX kernels), one
    thread, 64 images, float32, 3×3 kernels, time per call before → after (forward, input gradient, weight gradient):
        64 → 64 at 8×8      5.25 → 5.14,  4.82 → 4.47,  5.16 → 5.04 ms   (B = 6)
        64 → 128 at 8×8     8.25 → 8.08,  8.33 → 7.54,  8.11 → 7.88 ms   (B = 5)
        128 → 128 at 8×8    19.3 → 16.0,  16.6 → 15.2,  16.4 → 15.8 ms   (B = 3; the forward also stops cutting
                                                                          each image into row tiles)
        128 → 128 at 4×4    5.68 → 4.93,  6.75 → 4.53,  5.47 → 4.87 ms   (B = 12)
    A small GEMM gets slower when batched: OpenBLAS computes a GEMM of at most 100³ multiply-adds with a kernel that
    reads its operands in place, and a larger one by first copying (packing) both, so batching lifts a small GEMM
    into the costlier path: LeNet C3 (16 × 150 × 100 per image) 0.73 → 1.08 ms forward (B = 15), LeNet C1
    0.41 → 0.85 ms, 16 → 32 at 8×8 25% slower. At 16×16 and above batching changed little (B is 1 or 2 there):
    each image's GEMM is wide enough already."""
    (sh, sw), ((pt, pb), (pl, pr)), (dh, dw) = stride, padding, dilation
    n, c, h, w = x_shape
    k, c_per_group, kh, kw = w_shape
    y_hw = (output_size(h, kh, pt, pb, sh, dh), output_size(w, kw, pl, pr, sw, dw))
    plane = y_hw[0] * y_hw[1]
    macs = k // groups * c_per_group * kh * kw * plane
    return (0 < plane <= BATCHED_MAX_PLANE and macs >= BATCHED_MIN_MACS
            and batch_tile_images(x_shape, w_shape, y_hw, itemsize) >= 2)


def algorithm_kind(direction, algorithm, w_shape, stride, padding):
    """'direct', 'winograd', 'blocked', 'gemm', 'im2col' or 'batched' for an algorithm name (as chosen above),
    checked against the layer."""
    if algorithm == "direct" and direction == FORWARD:
        return "direct"
    if algorithm == WINOGRAD and direction != GRAD_WEIGHT:
        return WINOGRAD
    if algorithm == BLOCKED and direction == FORWARD:
        return BLOCKED
    if algorithm in ("sgemm", "dgemm"):
        if not is_pointwise(w_shape, stride, padding):
            raise ValueError(f"algorithm {algorithm!r} (no unfolding) needs a 1x1 kernel with stride 1 and no "
                             f"padding; this layer has w {w_shape}, stride {stride}, padding {padding}")
        return "gemm"
    if isinstance(algorithm, str):
        unfold, batched = algorithm.split("+")[0], algorithm.startswith("batched-")
        if unfold.removeprefix("batched-") in ("im2col", "col2im"):
            return "batched" if batched else "im2col"
    choices = (("'direct', 'blocked', " if direction == FORWARD else "")
               + ("'winograd', " if direction != GRAD_WEIGHT else ""))
    raise ValueError(f"unknown algorithm {algorithm!r}; choose {choices}'im2col+sgemm' ('col2im+sgemm' for the "
                     f"input gradient), 'batched-im2col+sgemm' ('batched-col2im+sgemm') or, for a 1x1 kernel with "
                     f"stride 1 and no padding, 'sgemm'")


def workspace_slot(direction, kind, x_shape, w_shape, y_hw, stride, dilation, itemsize, tile_images=None):
    """(bytes of one thread's slot, offset of its K × B·P tile, offset of its partial dw), all in bytes.

    A slot holds, in this order:
      the unfolded image (C·R·S × OH·OW) for im2col (the forward pass: tile_rows output rows of it), the unfolded
          tile of B = batch_tile_images images (C·R·S × B·OH·OW) for batched, the read part of one zero-padded
          input plane (((OH−1)·sh + (R−1)·dh + 1) × ((OW−1)·sw + (S−1)·dw + 1)) for direct, nothing for a 1×1 GEMM;
      for batched only, the K × B·OH·OW tile of y or dy;
      for the weight gradient, the thread's partial dw (K × C/G·R·S)."""
    n, c, h, w = x_shape
    k, c_per_group, kh, kw = w_shape
    (sh, sw), (dh, dw) = stride, dilation
    tile = 0
    if kind == "direct":
        first = ((y_hw[0] - 1) * sh + (kh - 1) * dh + 1) * ((y_hw[1] - 1) * sw + (kw - 1) * dw + 1)
    elif kind == "gemm":
        first = 0
    elif kind == "batched":
        images = batch_tile_images(x_shape, w_shape, y_hw, itemsize, tile_images)
        first = c * kh * kw * images * y_hw[0] * y_hw[1]
        tile = k * images * y_hw[0] * y_hw[1]
    elif direction == FORWARD:
        first = c * kh * kw * forward_tile_rows(c, kh, kw, y_hw, itemsize) * y_hw[1]
    else:
        first = c * kh * kw * y_hw[0] * y_hw[1]
    first, tile = aligned(first * itemsize), aligned(tile * itemsize)
    partial = aligned(k * c_per_group * kh * kw * itemsize) if direction == GRAD_WEIGHT else 0
    return first + tile + partial, first, first + tile


def forward_tile_rows(channels, kh, kw, y_hw, itemsize):
    """Output rows the forward im2col unfolds at a time: as many as keep the tile (C·R·S × rows·OW) within
    TILE_BYTES, so that the GEMM reads it back from the core's L2 cache instead of memory (a whole unfolded image
    of a 64-channel 3×3 layer at 56×56 is 7 MB). Small layers unfold the whole image at once."""
    row_bytes = channels * kh * kw * y_hw[1] * itemsize
    return int(max(1, min(y_hw[0], TILE_BYTES // max(row_bytes, 1))))


def batch_tile_images(x_shape, w_shape, y_hw, itemsize, requested=None):
    """B, the images `batched` puts side by side: as many as keep its two tiles, the unfolded images
    (C·R·S × B·P) and the output (K × B·P), within BATCH_TILE_BYTES (the size of this machine's per-core L2 cache:
    a quarter of it left 64 → 64 channels at 8×8 with one image per tile), or `requested` (the kernels'
    tile_images=, for tests and experiments); at least one, at most N."""
    if requested is None:
        image_bytes = (x_shape[1] * w_shape[2] * w_shape[3] + w_shape[0]) * y_hw[0] * y_hw[1] * itemsize
        requested = BATCH_TILE_BYTES // max(image_bytes, 1)
    elif requested < 1:
        raise ValueError(f"tile_images={requested}: a tile holds at least one image")
    return int(max(1, min(x_shape[0], requested)))


def batch_tiles(images, tile_images, threads):
    """How many tiles `batched` cuts N images into: ceil(N / B), rounded up to a multiple of the thread count so
    that every thread gets about N / threads images (64 images, B = 6, two threads: 12 tiles of 5 or 6, not 10 of 6
    and one of 4, which would leave one thread 36 images and the other 28). Tile t holds the images
    ⌊t·N / tiles⌋ ≤ n < ⌊(t+1)·N / tiles⌋: never more than B."""
    tiles = -(-images // tile_images)
    return int(max(1, min(images, -(-tiles // threads) * threads)))


def work_items(kind, x_shape, w_shape, y_hw, itemsize, tile_images=None):
    """What the threads share: the images, or for batched the tiles of images."""
    if kind != "batched":
        return x_shape[0]
    images = batch_tile_images(x_shape, w_shape, y_hw, itemsize, tile_images)
    return batch_tiles(x_shape[0], images, openmp.omp_get_max_threads())


def default_slots(items):
    """One slot per OpenMP thread that will have an image (or a tile of images) to work on."""
    return max(1, min(openmp.omp_get_max_threads(), items))


# ----------------------------------------------------------------------------------------------------------------
# the kernels

cdef struct Call:                      # everything the C loops of one kernel call need besides the arrays
    Conv cv
    Algorithm algorithm
    Py_ssize_t slot_bytes, tile_offset, partial_offset
    int threads


cdef object prepare(str kernel, str direction, tuple x_shape, tuple w_shape, tuple y_shape, stride, padding,
                    dilation, groups, algorithm, tile_images, workspace, dtype, Call* call):
    """Fill `call` for these shapes; returns the workspace (the plan's, or a new one for a direct call)."""
    call.cv = conv_geometry(kernel, x_shape, w_shape, y_shape, stride, padding, dilation, groups)
    if algorithm is None:
        algorithm = choose_algorithm(direction, x_shape, w_shape, stride, padding, groups, dtype, dilation)
    try:
        kind = algorithm_kind(direction, algorithm, w_shape, stride, padding)
    except ValueError as error:
        raise ValueError(f"cpu.{kernel}: {error}") from None
    itemsize = np.dtype(dtype).itemsize
    call.algorithm = {"direct": DIRECT, "gemm": GEMM_1X1, "im2col": IM2COL, "batched": BATCHED}[kind]
    if direction == FORWARD:
        call.cv.tile_rows = forward_tile_rows(x_shape[1], w_shape[2], w_shape[3], y_shape[2:], itemsize)
    if kind == "batched":
        try:
            call.cv.tile_images = batch_tile_images(x_shape, w_shape, y_shape[2:], itemsize, tile_images)
        except ValueError as error:
            raise ValueError(f"cpu.{kernel}: {error}") from None
    call.slot_bytes, call.tile_offset, call.partial_offset = workspace_slot(
        direction, kind, x_shape, w_shape, y_shape[2:], stride, dilation, itemsize, tile_images)
    if workspace is None:
        items = work_items(kind, x_shape, w_shape, y_shape[2:], itemsize, tile_images)
        workspace = np.empty(max(call.slot_bytes * default_slots(items), 1), dtype=np.uint8)
    slots = workspace.nbytes // call.slot_bytes if call.slot_bytes else openmp.omp_get_max_threads()
    if slots < 1:
        raise ValueError(f"cpu.{kernel}: the workspace holds {workspace.nbytes} bytes; one thread needs "
                         f"{call.slot_bytes}")
    threads = min(slots, openmp.omp_get_max_threads())
    if not blas_threads_known(&BLAS) and call.algorithm != DIRECT:
        threads = 1                    # BLAS threads itself and must not be called from several threads at once
    if kind == "batched":
        call.cv.tiles = batch_tiles(call.cv.images, call.cv.tile_images, threads)
    call.threads = min(threads, max(call.cv.tiles, 1))
    return workspace


cdef forward(str kernel, cnp.ndarray out, cnp.ndarray x, cnp.ndarray w, cnp.ndarray b, stride, padding, dilation,
             groups, algorithm, tile_images, workspace, bint relu):
    cdef Call call
    if algorithm is None:
        algorithm = choose_algorithm(FORWARD, (<object>x).shape, (<object>w).shape, stride, padding, groups,
                                     out.dtype, dilation)
    if algorithm == WINOGRAD:
        return winograd.winograd_conv2d(out, x, w, b, padding=padding, relu=relu, stride=stride, dilation=dilation,
                                        groups=groups, workspace=workspace)
    if algorithm == BLOCKED:
        return blocked_conv.blocked_conv2d(out, x, w, b, stride=stride, padding=padding, dilation=dilation,
                                           groups=groups, relu=relu, workspace=workspace)
    require_floats(kernel, out, (x, w) if b is None else (x, w, b))
    if b is not None and cnp.PyArray_SIZE(b) != w.shape[0]:
        raise ValueError(f"cpu.{kernel}: the bias needs one value per output channel ({w.shape[0]}), got "
                         f"{(<object>b).shape}")
    workspace = prepare(kernel, FORWARD, (<object>x).shape, (<object>w).shape, (<object>out).shape, stride, padding,
                        dilation, groups, algorithm, tile_images, workspace, out.dtype, &call)
    if cnp.PyArray_SIZE(out) == 0:
        return
    cdef void* x_data = data(x)
    cdef void* w_data = data(w)
    cdef void* b_data = NULL if b is None else data(b)
    cdef void* y_data = data(out)
    cdef char* scratch = <char*>data(workspace)
    cdef bint single = cnp.PyArray_TYPE(out) == cnp.NPY_FLOAT32
    cdef int pinned
    with nogil:
        pinned = pin_blas_to_one_thread(&BLAS)
        if single:
            forward_batch(&call.cv, call.algorithm, <float*>x_data, <float*>w_data, <float*>b_data, relu,
                          <float*>y_data, scratch, call.slot_bytes, call.tile_offset, call.threads)
        else:
            forward_batch(&call.cv, call.algorithm, <double*>x_data, <double*>w_data, <double*>b_data, relu,
                          <double*>y_data, scratch, call.slot_bytes, call.tile_offset, call.threads)
        restore_blas_threads(&BLAS, pinned)


def conv2d(cnp.ndarray out, cnp.ndarray x, cnp.ndarray w, cnp.ndarray b=None, *, stride, padding, dilation, groups,
           algorithm=None, workspace=None, tile_images=None):
    """out = conv(x, w) + b. `algorithm` as SPECIALIZE chose it (None: choose here); `workspace`: uint8 bytes from
    the memory plan (None: allocate); `tile_images`: images per tile for `batched` (None: batch_tile_images)."""
    forward("conv2d", out, x, w, b, stride, padding, dilation, groups, algorithm, tile_images, workspace, False)


def conv2d_relu(cnp.ndarray out, cnp.ndarray x, cnp.ndarray w, cnp.ndarray b=None, *, stride, padding, dilation,
                groups, algorithm=None, workspace=None, tile_images=None):
    """out = max(conv(x, w) + b, 0): the fused conv2d → relu, bias and ReLU applied to each image after its GEMM
    (for `batched`: while copying the tile into y)."""
    forward("conv2d_relu", out, x, w, b, stride, padding, dilation, groups, algorithm, tile_images, workspace, True)


def conv2d_grad_input(cnp.ndarray out, cnp.ndarray dy, cnp.ndarray w, *, stride, padding, dilation, groups,
                      algorithm=None, workspace=None, tile_images=None):
    """out = dL/dx = col2im(w_gᵀ · dy_g[n]) per image (or Winograd: the 3×3 convolution of dy with w flipped and
    transposed); out has x's shape."""
    cdef Call call
    if algorithm is None:
        algorithm = choose_algorithm(GRAD_INPUT, (<object>out).shape, (<object>w).shape, stride, padding, groups,
                                     out.dtype, dilation)
    if algorithm == WINOGRAD:
        return winograd.winograd_conv2d_grad_input(out, dy, w, padding=padding, stride=stride, dilation=dilation,
                                                   groups=groups, workspace=workspace)
    require_floats("conv2d_grad_input", out, (dy, w))
    workspace = prepare("conv2d_grad_input", GRAD_INPUT, (<object>out).shape, (<object>w).shape,
                        (<object>dy).shape, stride, padding, dilation, groups, algorithm, tile_images, workspace,
                        out.dtype, &call)
    if cnp.PyArray_SIZE(out) == 0:
        return
    if cnp.PyArray_SIZE(dy) == 0:
        out[...] = 0
        return
    cdef void* dy_data = data(dy)
    cdef void* w_data = data(w)
    cdef void* dx_data = data(out)
    cdef char* scratch = <char*>data(workspace)
    cdef bint single = cnp.PyArray_TYPE(out) == cnp.NPY_FLOAT32
    cdef int pinned
    with nogil:
        pinned = pin_blas_to_one_thread(&BLAS)
        if single:
            grad_input_batch(&call.cv, call.algorithm, <float*>dy_data, <float*>w_data, <float*>dx_data, scratch,
                             call.slot_bytes, call.tile_offset, call.threads)
        else:
            grad_input_batch(&call.cv, call.algorithm, <double*>dy_data, <double*>w_data, <double*>dx_data, scratch,
                             call.slot_bytes, call.tile_offset, call.threads)
        restore_blas_threads(&BLAS, pinned)


def conv2d_grad_weight(cnp.ndarray out, cnp.ndarray dy, cnp.ndarray x, *, stride, padding, dilation, groups,
                       algorithm=None, workspace=None, tile_images=None):
    """out = dL/dw = Σ_n dy_g[n] · cols_g[n]ᵀ; out has w's shape."""
    cdef Call call
    require_floats("conv2d_grad_weight", out, (dy, x))
    workspace = prepare("conv2d_grad_weight", GRAD_WEIGHT, (<object>x).shape, (<object>out).shape,
                        (<object>dy).shape, stride, padding, dilation, groups, algorithm, tile_images, workspace,
                        out.dtype, &call)
    if cnp.PyArray_SIZE(out) == 0:
        return
    if cnp.PyArray_SIZE(dy) == 0:
        out[...] = 0
        return
    cdef void* dy_data = data(dy)
    cdef void* x_data = data(x)
    cdef void* dw_data = data(out)
    cdef char* scratch = <char*>data(workspace)
    cdef bint single = cnp.PyArray_TYPE(out) == cnp.NPY_FLOAT32
    cdef int pinned
    with nogil:
        pinned = pin_blas_to_one_thread(&BLAS)
        if single:
            grad_weight_batch(&call.cv, call.algorithm, <float*>dy_data, <float*>x_data, <float*>dw_data, scratch,
                              call.slot_bytes, call.tile_offset, call.partial_offset, call.threads)
        else:
            grad_weight_batch(&call.cv, call.algorithm, <double*>dy_data, <double*>x_data, <double*>dw_data,
                              scratch, call.slot_bytes, call.tile_offset, call.partial_offset, call.threads)
        restore_blas_threads(&BLAS, pinned)


# ----------------------------------------------------------------------------------------------------------------
# what the cpu backend reads: algorithm per layer shape, workspace per step, the conv → relu fusion

def _shapes(direction, in_shapes, out_shape):
    """(x, w, y) shapes from a step's input and output shapes."""
    if direction == FORWARD:
        return tuple(in_shapes[0]), tuple(in_shapes[1]), tuple(out_shape)
    if direction == GRAD_INPUT:          # inputs dy, w -> dx
        return tuple(out_shape), tuple(in_shapes[1]), tuple(in_shapes[0])
    return tuple(in_shapes[1]), tuple(out_shape), tuple(in_shapes[0])     # inputs dy, x -> dw


def _specialize(direction):
    def rule(params, in_shapes, out_shape, dtype):
        x, w, _ = _shapes(direction, in_shapes, out_shape)
        return dict(params, algorithm=choose_algorithm(direction, x, w, params["stride"], params["padding"],
                                                       params["groups"], dtype, params["dilation"]))
    rule.__name__ = f"choose_{direction}_algorithm"
    return rule


def _workspace(direction):
    def rule(params, in_shapes, out_shape, dtype):
        x, w, y = _shapes(direction, in_shapes, out_shape)
        algorithm = params.get("algorithm") or choose_algorithm(direction, x, w, params["stride"], params["padding"],
                                                                params["groups"], dtype, params["dilation"])
        kind = algorithm_kind(direction, algorithm, w, params["stride"], params["padding"])
        itemsize = np.dtype(dtype).itemsize
        if kind == WINOGRAD:                # the call's arrays: (x, w, y) forward, (dy, w, dx) for the input gradient
            call_in, call_out = (x, y) if direction == FORWARD else (y, x)
            return winograd.winograd_workspace_bytes(call_in, w, call_out, itemsize, default_slots(x[0]))
        if kind == BLOCKED:
            return blocked_conv.blocked_workspace_bytes(x, w, y, params["stride"], params["padding"],
                                                        params["dilation"], default_slots(x[0]))
        tile_images = params.get("tile_images")
        slot, _, _ = workspace_slot(direction, kind, x, w, y[2:], params["stride"], params["dilation"], itemsize,
                                    tile_images)
        return slot * default_slots(work_items(kind, x, w, y[2:], itemsize, tile_images))
    rule.__name__ = f"{direction}_workspace_bytes"
    return rule


KERNELS = {Conv2d: conv2d, Conv2dRelu: conv2d_relu, Conv2dGradInput: conv2d_grad_input,
           Conv2dGradWeight: conv2d_grad_weight}
SPECIALIZE = {Conv2d: _specialize(FORWARD), Conv2dRelu: _specialize(FORWARD),
              Conv2dGradInput: _specialize(GRAD_INPUT), Conv2dGradWeight: _specialize(GRAD_WEIGHT)}
WORKSPACE = {Conv2d: _workspace(FORWARD), Conv2dRelu: _workspace(FORWARD),
             Conv2dGradInput: _workspace(GRAD_INPUT), Conv2dGradWeight: _workspace(GRAD_WEIGHT)}
