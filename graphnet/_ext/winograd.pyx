# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Winograd's minimal filtering F(2×2, 3×3) (Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks",
2016) for the 3×3, stride-1 convolutions of the cpu backend (NCHW, groups 1, dilation 1, float32 and float64).

The idea. A 2×2 block ("tile") of outputs of a 3×3 convolution reads a 4×4 block d of one input plane, shifted by 2
from one tile to the next. Written directly it costs 2·2·9 = 36 multiplies per (input, output) channel pair;
Winograd's algorithm gets the same four numbers with 16, by moving to a basis where the convolution is an
elementwise product (like the FFT does, but with small integers and halves only):

    Y = Aᵀ [ (G g Gᵀ) ⊙ (Bᵀ d B) ] A                   g: the 3×3 filter, d: the 4×4 input tile, Y: the 2×2 outputs

         ⎡ 1  0 −1  0 ⎤           ⎡ 1    0    0  ⎤
    Bᵀ = ⎢ 0  1  1  0 ⎥       G = ⎢ ½    ½    ½  ⎥       Aᵀ = ⎡ 1  1  1  0 ⎤
         ⎢ 0 −1  1  0 ⎥           ⎢ ½   −½    ½  ⎥            ⎣ 0  1 −1 −1 ⎦
         ⎣ 0  1  0 −1 ⎦           ⎣ 0    0    1  ⎦

(as in the paper, and as in deep learning, "convolution" here is the cross-correlation
Y[a, b] = Σ_{r, s} g[r, s] · d[a + r, b + s]). Over many channels the transforms are paid once per tile and
channel, and the sum over input channels moves into the transformed space: with ξ = (i, j) one of the 16 positions
of a 4×4 transformed tile,

    U[ξ][k, c] = (G w[k, c] Gᵀ)[ξ]                     the weight transform, once per call  (K × C per ξ)
    V[ξ][c, t] = (Bᵀ d[c, t] B)[ξ]                      the input transform, tile t of input channel c  (C × T)
    M[ξ]       = U[ξ] · V[ξ]                            16 GEMMs (K × C) · (C × T): sgemm / dgemm
    y[k, tile t] = Aᵀ M[·][k, t] A  (+ bias, ReLU)      the output transform and the epilogue

so the GEMMs do 16·K·C multiply-adds per tile of 4 outputs — 4 per output instead of the 9 of im2col + GEMM,
2.25× fewer — and the transforms add O(K + C) additions per tile. The price is accuracy: the transforms form
sums and differences that cancel in exact arithmetic but not in floating point, and an output's rounding errors
come from the whole 4×4 input tile, not only from its own 3×3 window. The error bound is therefore a few ulps of
Ȳ, the Σ|w||x| of the transformed algorithm (tests/test_cpu_winograd.py derives it): on inputs of one scale that
is about what im2col + GEMM does (measured: within ~2.5 ulps of Σ|w||x| for both), but an output next to a
much larger input is off by ulps of that input. float64 is as exact as one needs.

Tiles. The output (OH × OW) is covered by ⌈OH/2⌉ × ⌈OW/2⌉ tiles; tile (th, tw) reads input rows
2·th − pt … 2·th + 3 − pt and columns 2·tw − pl … 2·tw + 3 − pl, zero outside the input plane (the padding; any
padding ≥ 0, top/bottom and left/right may differ, and the input gradient's padding 2 − p may even be negative: a
crop). When OH or OW is odd, the last tile row/column is partial: its transformed values are computed in full and
only the outputs that exist are written.

Blocks, threads and workspace. Tiles are numbered across the whole batch (image, tile row, tile column) and cut into
blocks of `block_tiles` consecutive tiles — several images per block for small images, part of one image for large
ones. A block's V (16·C·block_tiles) and M (16·K·block_tiles) are sized to stay in the core's L2 cache between the
input transform, the 16 GEMMs and the output transform (BLOCK_BYTES below). OpenMP threads take blocks one at a
time (dynamic schedule); each owns one slot of the workspace for its block's V and M; U, shared, comes first in the
workspace (computed by all threads before the blocks, one output channel each). BLAS runs single-threaded inside
the loop (see _blas.pxd), exactly as in conv.pyx.

Speed (one thread, float32, the 2-core AVX-512 EPYC; benchmarks/bench_winograd.py): the GEMMs run at OpenBLAS's
small-matrix speed (~125 GFLOP/s of real work) and the transforms, written as loops over local arrays that gcc
vectorizes, take about a third of the time; counted in the direct convolution's FLOPs that is 120–160 GFLOP/s on
layers of 32–64 channels at 16×16 to 56×56, 1.6–2.4× faster than im2col + sgemm, and ~95 at 8×8.

The input gradient of a stride-1 3×3 convolution is itself a stride-1 3×3 convolution (a "full" correlation):

    dx[n, c, h, v] = Σ_{k, r, s} w[k, c, 2 − r, 2 − s] · dy[n, k, h + r − (2 − pt), v + s − (2 − pl)]

i.e. the forward algorithm applied to dy with the weights flipped in both spatial axes and transposed in (K, C),
and padding 2 − p on every side. The flip and transpose are folded into the weight transform (no extra copy).

Python API (the kernel call convention of the cpu backend: the output first, preallocated):

    winograd_conv2d(out, x, w, b=None, *, padding, relu=False, workspace=None)
    winograd_conv2d_grad_input(out, dy, w, *, padding, workspace=None)
    winograd_workspace_bytes(x_shape, w_shape, out_shape, itemsize, threads)
    applies(w_shape, stride, dilation, groups)         # can Winograd F(2×2, 3×3) compute this layer at all?
    worthwhile(direction, x_shape, w_shape, padding)    # ... and is it faster than im2col + GEMM here (measured)?
"""
from cython.parallel cimport prange, threadid
cimport numpy as cnp
cimport openmp
from libc.string cimport memcpy

import numpy as np

from graphnet._ext._blas cimport (BlasThreads, blas_threads_known, find_blas_threads, gemm, pin_blas_to_one_thread,
                                  restore_blas_threads)
from graphnet._ext._buffers cimport data, real, require_floats
from graphnet._ext._sizes import aligned          # U and each thread's slot start on their own cache line

cnp.import_array()

cdef BlasThreads BLAS = find_blas_threads()

cdef enum:
    POSITIONS = 16                     # ξ = 0 … 15 in the 4 × 4 transformed tile: one GEMM each
    BLOCK_BYTES = 512 * 1024           # a block's V + M (bytes): half the L2 cache of a core (see block_tiles)
    MAX_RUN = 32                       # tiles of one tile row transformed at a time (local arrays on the stack)
    MIN_BLOCK_TILES = 16               # block sizes are multiples of 16 tiles: the M-unroll of OpenBLAS's sgemm
    MAX_BLOCK_TILES = 512


cdef struct Plan:
    Py_ssize_t images
    Py_ssize_t channels, kernels       # input channels (C; K for the input gradient) and output channels
    Py_ssize_t height, width           # the input plane
    Py_ssize_t out_h, out_w            # the output plane
    Py_ssize_t pt, pl                  # top and left padding (negative: a crop, for the input gradient)
    Py_ssize_t tiles_h, tiles_w        # ⌈OH/2⌉, ⌈OW/2⌉
    Py_ssize_t image_tiles, tiles      # tiles per image, in the batch
    Py_ssize_t block_tiles, blocks     # tiles per block (the last block may have fewer), number of blocks
    Py_ssize_t v_offset, m_offset      # bytes from the start of a slot
    Py_ssize_t slot_bytes, u_bytes
    int threads


# ----------------------------------------------------------------------------------------------------------------
# the three transforms (C, nogil, for one channel pair or one run of tiles)

cdef void transform_filters(const real* w, Py_ssize_t channels, bint flip_transpose, Py_ssize_t o,
                            Py_ssize_t i0, Py_ssize_t count, real* u, Py_ssize_t u_stride) noexcept nogil:
    """u[ξ·u_stride + j] = (G g_{o, i0 + j} Gᵀ)[ξ] for the count ≤ MAX_RUN filters g_{o, i} (see transform_weights).

    G g combines the rows of g: (g0, (g0 + g2 + g1)/2, (g0 + g2 − g1)/2, g2); · Gᵀ does the same with the columns.
    The filters are first gathered tap by tap into a local array, so that the arithmetic runs over j (vectorized)."""
    cdef real g[9][MAX_RUN]
    cdef real t[4][3][MAX_RUN]
    cdef real half = 0.5
    cdef Py_ssize_t j, tap, r, col, row
    cdef const real* f
    for j in range(count):
        if flip_transpose:             # g[r, s] = w[i, o, 2 − r, 2 − s]: read the 9 taps backwards
            f = w + ((i0 + j) * channels + o) * 9
            for tap in range(9):
                g[tap][j] = f[8 - tap]
        else:
            f = w + (o * channels + i0 + j) * 9
            for tap in range(9):
                g[tap][j] = f[tap]
    for col in range(3):               # t = G g            (4 × 3 per filter)
        for j in range(count):
            t[0][col][j] = g[col][j]
            t[1][col][j] = (g[col][j] + g[6 + col][j] + g[3 + col][j]) * half
            t[2][col][j] = (g[col][j] + g[6 + col][j] - g[3 + col][j]) * half
            t[3][col][j] = g[6 + col][j]
    for row in range(4):               # u = t Gᵀ           (4 × 4 per filter)
        for j in range(count):
            u[4 * row * u_stride + j] = t[row][0][j]
        for j in range(count):
            u[(4 * row + 1) * u_stride + j] = (t[row][0][j] + t[row][2][j] + t[row][1][j]) * half
        for j in range(count):
            u[(4 * row + 2) * u_stride + j] = (t[row][0][j] + t[row][2][j] - t[row][1][j]) * half
        for j in range(count):
            u[(4 * row + 3) * u_stride + j] = t[row][2][j]


cdef void transform_weights(const real* w, Py_ssize_t kernels, Py_ssize_t channels, bint flip_transpose,
                            real* u, int threads) noexcept nogil:
    """U[ξ][o, i] = (G g_{o,i} Gᵀ)[ξ] for w (K, C, 3, 3), U stored as 16 row-major (outputs × inputs) matrices:
    forward:        outputs = K, inputs = C, g_{k,c}[r, s] = w[k, c, r, s]
    flip_transpose: outputs = C, inputs = K, g_{c,k}[r, s] = w[k, c, 2 − r, 2 − s]   (the input gradient)"""
    cdef Py_ssize_t o, i0, outputs = channels if flip_transpose else kernels
    cdef Py_ssize_t inputs = kernels if flip_transpose else channels
    for o in prange(outputs, num_threads=threads, schedule="static"):
        i0 = 0
        while i0 < inputs:
            transform_filters(w, channels, flip_transpose, o, i0, min(MAX_RUN, inputs - i0),
                              u + o * inputs + i0, outputs * inputs)
            i0 = i0 + MAX_RUN


cdef double ZEROS[2 * MAX_RUN + 2]     # a row of the padding (static storage is zero; 0.0 is all-zero bits in
                                       # float and double alike, so the float code reads it as floats)


cdef void transform_input_run(const real* plane, const Plan* p, Py_ssize_t th, Py_ssize_t tw, Py_ssize_t count,
                              real* v, Py_ssize_t v_stride) noexcept nogil:
    """v[ξ·v_stride + t] = (Bᵀ d_t B)[ξ] for the count ≤ MAX_RUN tiles (th, tw + t) of one input plane.

    Bᵀ d combines the 4 input rows the tiles read, the same way for every tile, so it runs over whole rows
    (2·count + 2 columns, 0 in the padding); · B then combines the columns 2t … 2t + 3 of each combined row e_i:
        Bᵀ d:  e0 = d0 − d2,  e1 = d1 + d2,  e2 = d2 − d1,  e3 = d1 − d3          (d_i: input row i of the tile)
        · B:   v[i, 0] = e_i[0] − e_i[2],  v[i, 1] = e_i[1] + e_i[2],
               v[i, 2] = e_i[2] − e_i[1],  v[i, 3] = e_i[1] − e_i[3]
    The combined rows live in a local array, which the compiler knows no pointer reaches: every loop is one
    vectorized stream.
    """
    cdef real e[4][2 * MAX_RUN + 2]
    cdef Py_ssize_t i, t, x, h, length = 2 * count + 2, top = 2 * th - p.pt, first = 2 * tw - p.pl
    cdef Py_ssize_t lo = min(max(-first, 0), length), hi = max(min(p.width - first, length), lo)  # inside: lo ≤ x < hi
    cdef const real* d[4]
    cdef const real* d0
    cdef const real* d1
    cdef const real* d2
    cdef const real* d3
    cdef real* out
    for i in range(4):                 # d[i][x]: the input at row top + i, column first + x (read for lo ≤ x < hi only:
        h = top + i                    # with left padding, d[i] points left of the row's start)
        d[i] = plane + h * p.width + first if 0 <= h < p.height else <const real*>ZEROS
    d0, d1, d2, d3 = d[0], d[1], d[2], d[3]
    for i in range(4):                 # columns in the left and right padding
        for x in range(lo):
            e[i][x] = 0
        for x in range(hi, length):
            e[i][x] = 0
    for x in range(lo, hi):
        e[0][x] = d0[x] - d2[x]
        e[1][x] = d1[x] + d2[x]
        e[2][x] = d2[x] - d1[x]
        e[3][x] = d1[x] - d3[x]
    for i in range(4):
        out = v + 4 * i * v_stride
        for t in range(count):
            out[t] = e[i][2 * t] - e[i][2 * t + 2]
        out = out + v_stride
        for t in range(count):
            out[t] = e[i][2 * t + 1] + e[i][2 * t + 2]
        out = out + v_stride
        for t in range(count):
            out[t] = e[i][2 * t + 2] - e[i][2 * t + 1]
        out = out + v_stride
        for t in range(count):
            out[t] = e[i][2 * t + 1] - e[i][2 * t + 3]


cdef inline real epilogue(real value, bint relu) noexcept nogil:
    """max(value, 0) if relu (NaN stays NaN, like np.maximum and conv.pyx's epilogue), else value."""
    if relu:
        return 0 if value < 0 else value
    return value


cdef void transform_output_run(const real* m, Py_ssize_t m_stride, Py_ssize_t count, Py_ssize_t columns,
                               bint two_rows, real bias, bint relu, real* top, real* bottom) noexcept nogil:
    """The outputs of count ≤ MAX_RUN tiles: top[2t + b], bottom[2t + b] = (Aᵀ m_t A)[0 | 1, b] (+ bias, then
    max(·, 0) if relu) where m_t[ξ] = m[ξ·m_stride + t]; only `columns` outputs of each row are written, and the
    bottom row only if two_rows (the partial tiles at the right and bottom edges).
    Aᵀ m combines rows: r0 = m0 + m1 + m2, r1 = m1 − m2 − m3; · A does the same with columns."""
    cdef real r0[4][MAX_RUN]
    cdef real r1[4][MAX_RUN]
    cdef real rows[2][2 * MAX_RUN]
    cdef Py_ssize_t t, j
    cdef const real* m0
    cdef const real* m1
    cdef const real* m2
    cdef const real* m3
    cdef real* row0 = top if columns == 2 * count else rows[0]       # partial tiles: via a local row, then copied
    cdef real* row1 = bottom if columns == 2 * count and two_rows else rows[1]
    for j in range(4):
        m0, m1, m2, m3 = m + j * m_stride, m + (4 + j) * m_stride, m + (8 + j) * m_stride, m + (12 + j) * m_stride
        for t in range(count):
            r0[j][t] = m0[t] + m1[t] + m2[t]
        for t in range(count):
            r1[j][t] = m1[t] - m2[t] - m3[t]
    for t in range(count):
        row0[2 * t] = epilogue(r0[0][t] + r0[1][t] + r0[2][t] + bias, relu)
        row0[2 * t + 1] = epilogue(r0[1][t] - r0[2][t] - r0[3][t] + bias, relu)
    for t in range(count):
        row1[2 * t] = epilogue(r1[0][t] + r1[1][t] + r1[2][t] + bias, relu)
        row1[2 * t + 1] = epilogue(r1[1][t] - r1[2][t] - r1[3][t] + bias, relu)
    if row0 != top:
        memcpy(top, row0, columns * sizeof(real))
    if two_rows and row1 != bottom:
        memcpy(bottom, row1, columns * sizeof(real))


# ----------------------------------------------------------------------------------------------------------------
# one block of tiles, and the batch loop

cdef void run_block(const Plan* p, Py_ssize_t block, const real* x, const real* u, const real* bias, bint relu,
                    real* y, char* slot) noexcept nogil:
    """Tiles block·block_tiles … of the batch: input transform into V, 16 GEMMs into M, output transform into y.
    The block is walked as runs of consecutive tiles of one tile row of one image, at most MAX_RUN tiles each."""
    cdef real* v = <real*>(slot + p.v_offset)
    cdef real* m = <real*>(slot + p.m_offset)
    cdef Py_ssize_t first = block * p.block_tiles
    cdef Py_ssize_t count = min(p.block_tiles, p.tiles - first)         # tiles in this block: the GEMMs' width
    cdef Py_ssize_t tile, local, run, n, th, tw, c, k, xi, size, C = p.channels, K = p.kernels
    cdef real* top
    cdef real b

    # 1. V[ξ][c, local] = (Bᵀ d B)[ξ]          (V: 16 row-major C × count matrices). Channel by channel, so that
    #    the rows of one input plane are read in order (the hardware prefetcher follows them)
    for c in range(C):
        tile = first
        while tile < first + count:
            n, th, tw = tile // p.image_tiles, (tile % p.image_tiles) // p.tiles_w, tile % p.tiles_w
            run = min(p.tiles_w - tw, first + count - tile, MAX_RUN)
            transform_input_run(x + (n * C + c) * p.height * p.width, p, th, tw, run, v + c * count + tile - first,
                                C * count)
            tile += run

    # 2. M[ξ] (K × count) = U[ξ] (K × C) · V[ξ] (C × count)
    for xi in range(POSITIONS):
        gemm(False, False, <int>K, <int>count, <int>C, <real>1, u + xi * K * C, <int>C, v + xi * C * count,
             <int>count, <real>0, m + xi * K * count, <int>count)

    # 3. y = Aᵀ M A + bias, ReLU, for the outputs that exist
    tile = first
    while tile < first + count:
        n, th, tw = tile // p.image_tiles, (tile % p.image_tiles) // p.tiles_w, tile % p.tiles_w
        run = min(p.tiles_w - tw, first + count - tile, MAX_RUN)
        local = tile - first
        size = min(2 * run, p.out_w - 2 * tw)                           # outputs of the run in each row
        for k in range(K):
            b = 0 if bias == NULL else bias[k]
            top = y + ((n * K + k) * p.out_h + 2 * th) * p.out_w + 2 * tw
            transform_output_run(m + k * count + local, K * count, run, size, 2 * th + 1 < p.out_h, b, relu, top,
                                   top + p.out_w)
        tile += run


cdef void run_batch(const Plan* p, const real* x, const real* u, const real* bias, bint relu, real* y,
                    char* slots) noexcept nogil:
    cdef Py_ssize_t block
    for block in prange(p.blocks, num_threads=p.threads, schedule="dynamic"):
        run_block(p, block, x, u, bias, relu, y, slots + threadid() * p.slot_bytes)


# ----------------------------------------------------------------------------------------------------------------
# geometry, sizes and the rules (Python level, once per call or at compile time)

def normalize_padding(padding):
    """((pt, pb), (pl, pr)) from an int, (ph, pw) or ((pt, pb), (pl, pr))."""
    if isinstance(padding, (int, np.integer)):
        return ((int(padding),) * 2,) * 2
    ph, pw = padding
    return tuple((int(p),) * 2 if isinstance(p, (int, np.integer)) else (int(p[0]), int(p[1])) for p in (ph, pw))


def _pair(value, name):
    if isinstance(value, (int, np.integer)):
        return (int(value), int(value))
    value = tuple(int(v) for v in value)
    if len(value) != 2:
        raise ValueError(f"winograd: {name} must be an int or a pair, got {value}")
    return value


def why_not(w_shape, stride=(1, 1), dilation=(1, 1), groups=1):
    """None when Winograd F(2×2, 3×3) can compute this layer, else the reason (a sentence)."""
    w_shape = tuple(w_shape)
    if len(w_shape) != 4 or w_shape[2:] != (3, 3):
        return f"it needs a 3x3 kernel, got w of shape {w_shape}"
    if _pair(stride, "stride") != (1, 1):
        return f"it needs stride 1, got stride {stride} (a strided layer has no overlapping tiles to share)"
    if _pair(dilation, "dilation") != (1, 1):
        return f"it needs dilation 1, got dilation {dilation}"
    if groups != 1:
        return f"it needs groups=1, got groups={groups} (use the im2col or direct algorithm for grouped layers)"
    return None


def applies(w_shape, stride, dilation, groups):
    """Can Winograd F(2×2, 3×3) compute this layer: a 3×3 kernel, stride 1, dilation 1, one group (any padding)."""
    return why_not(w_shape, stride, dilation, groups) is None


_block_bytes = BLOCK_BYTES              # what block_tiles uses: benchmarks/bench_winograd.py may try other sizes


def block_tiles(channels, kernels, itemsize, tiles):
    """Tiles per block: as many as keep V (16·C per tile) and M (16·K per tile) within BLOCK_BYTES, a multiple of
    MIN_BLOCK_TILES, and no more than the batch has."""
    per_tile = POSITIONS * (channels + kernels) * itemsize
    size = _block_bytes // max(per_tile, 1) // MIN_BLOCK_TILES * MIN_BLOCK_TILES
    size = min(max(size, MIN_BLOCK_TILES), MAX_BLOCK_TILES)
    return int(max(1, min(size, tiles)))


cdef int make_plan(str kernel, tuple in_shape, tuple w_shape, tuple out_shape, tuple padding, Py_ssize_t itemsize,
                   Plan* p) except -1:
    """Fill p for the call out (N, K', OH, OW) = conv3x3(in (N, C', H, W)); C', K' are C, K (forward) or K, C
    (input gradient); `padding` is the padding of that convolution (may be negative: a crop)."""
    (pt, pb), (pl, pr) = padding
    if len(in_shape) != 4 or len(out_shape) != 4:
        raise ValueError(f"{kernel}: the input and output must be 4-D (N, C, H, W), got {in_shape} and {out_shape}")
    n, c, h, w = in_shape
    expected = (n, out_shape[1], h + pt + pb - 2, w + pl + pr - 2)
    if tuple(out_shape) != expected:
        raise ValueError(f"{kernel}: input {in_shape}, weight {w_shape} and padding {padding} give an output "
                         f"(N, K, H + pt + pb − 2, W + pl + pr − 2) = {expected}; got {out_shape}")
    p.images, p.channels, p.kernels = n, c, out_shape[1]
    p.height, p.width, p.out_h, p.out_w = h, w, expected[2], expected[3]
    p.pt, p.pl = pt, pl
    p.tiles_h, p.tiles_w = (max(p.out_h, 0) + 1) // 2, (max(p.out_w, 0) + 1) // 2
    p.image_tiles = p.tiles_h * p.tiles_w
    p.tiles = p.images * p.image_tiles
    p.block_tiles = block_tiles(p.channels, p.kernels, itemsize, max(p.tiles, 1))
    p.blocks = (p.tiles + p.block_tiles - 1) // p.block_tiles
    p.v_offset = 0
    p.m_offset = aligned(POSITIONS * p.channels * p.block_tiles * itemsize)
    p.slot_bytes = p.m_offset + aligned(POSITIONS * p.kernels * p.block_tiles * itemsize)
    p.u_bytes = aligned(POSITIONS * p.channels * p.kernels * itemsize)
    p.threads = 1
    return 0


def winograd_workspace_bytes(x_shape, w_shape, out_shape, itemsize, threads):
    """Bytes of workspace a call needs with `threads` OpenMP threads: the transformed weights U (16·K·C) and one slot
    per thread (its block's V and M). The shapes are those of the call's arrays: (x, w, out) for
    winograd_conv2d, (dy, w, out = dx) for winograd_conv2d_grad_input; the padding does not matter."""
    cdef Plan p
    x_shape, out_shape = tuple(x_shape), tuple(out_shape)
    reason = why_not(w_shape)
    if reason is not None:
        raise ValueError(f"winograd_workspace_bytes: Winograd F(2x2, 3x3) does not apply: {reason}")
    n, _, h, w = x_shape
    oh, ow = out_shape[2:]
    padding = ((oh - h + 2, 0), (ow - w + 2, 0))          # any padding that gives this output size
    make_plan("winograd_workspace_bytes", x_shape, tuple(w_shape), out_shape, padding, itemsize, &p)
    return int(p.u_bytes + max(1, min(int(threads), p.blocks)) * p.slot_bytes)


def default_threads():
    return max(1, openmp.omp_get_max_threads())


cdef object run(str kernel, cnp.ndarray out, cnp.ndarray x, cnp.ndarray w, cnp.ndarray b, tuple padding,
                bint relu, bint grad_input, workspace):
    """The shared body of both kernels: plan, weight transform, the block loop (BLAS pinned to one thread)."""
    cdef Plan p
    make_plan(kernel, (<object>x).shape, (<object>w).shape, (<object>out).shape, padding, out.itemsize, &p)
    if cnp.PyArray_SIZE(out) == 0:
        return
    if p.channels == 0:
        out[...] = 0 if b is None else np.asarray(b).reshape(1, -1, 1, 1)
        if relu:
            np.maximum(out, 0, out=out)
        return
    if workspace is None:
        workspace = np.empty(p.u_bytes + min(default_threads(), p.blocks) * p.slot_bytes, dtype=np.uint8)
    if not isinstance(workspace, np.ndarray) or workspace.dtype != np.uint8 or not workspace.flags.c_contiguous:
        raise TypeError(f"{kernel}: the workspace must be a C-contiguous uint8 array")
    slots = (workspace.nbytes - p.u_bytes) // p.slot_bytes
    if slots < 1:
        raise ValueError(f"{kernel}: the workspace holds {workspace.nbytes} bytes; one thread needs "
                         f"{p.u_bytes + p.slot_bytes} (winograd_workspace_bytes)")
    p.threads = min(slots, default_threads(), p.blocks)
    if not blas_threads_known(&BLAS):
        p.threads = 1                  # BLAS threads itself and must not be called from several threads at once
    cdef void* x_data = data(x)
    cdef void* w_data = data(w)
    cdef void* b_data = NULL if b is None else data(b)
    cdef void* y_data = data(out)
    cdef char* space = <char*>data(workspace)
    cdef Py_ssize_t wk = w.shape[0], wc = w.shape[1]
    cdef bint single = cnp.PyArray_TYPE(out) == cnp.NPY_FLOAT32
    cdef int pinned
    with nogil:
        pinned = pin_blas_to_one_thread(&BLAS)
        if single:
            transform_weights(<float*>w_data, wk, wc, grad_input, <float*>space, p.threads)
            run_batch(&p, <float*>x_data, <float*>space, <float*>b_data, relu, <float*>y_data, space + p.u_bytes)
        else:
            transform_weights(<double*>w_data, wk, wc, grad_input, <double*>space, p.threads)
            run_batch(&p, <double*>x_data, <double*>space, <double*>b_data, relu, <double*>y_data,
                      space + p.u_bytes)
        restore_blas_threads(&BLAS, pinned)


def _check(kernel, w, stride, dilation, groups):
    reason = why_not(w.shape, stride, dilation, groups)
    if reason is not None:
        raise ValueError(f"cpu.{kernel}: Winograd F(2x2, 3x3) does not apply: {reason}")


# ----------------------------------------------------------------------------------------------------------------
# the kernels

def winograd_conv2d(cnp.ndarray out, cnp.ndarray x, cnp.ndarray w, cnp.ndarray b=None, *, padding, relu=False,
                    stride=(1, 1), dilation=(1, 1), groups=1, workspace=None):
    """out = conv(x, w) + b (then max(·, 0) if relu) by Winograd F(2×2, 3×3): x (N, C, H, W), w (K, C, 3, 3),
    b (K,) or None, out (N, K, H + pt + pb − 2, W + pl + pr − 2); padding an int, (ph, pw) or ((pt, pb), (pl, pr)),
    each ≥ 0. stride, dilation and groups are accepted so that a conv2d call can be forwarded as it is; anything
    but (1, 1), (1, 1), 1 is a ValueError. workspace: uint8, winograd_workspace_bytes(...) long (None: allocate)."""
    kernel = "winograd_conv2d_relu" if relu else "winograd_conv2d"
    require_floats(kernel, out, (x, w) if b is None else (x, w, b))
    _check(kernel, w, stride, dilation, groups)
    padding = normalize_padding(padding)
    if min(padding[0] + padding[1]) < 0:
        raise ValueError(f"cpu.{kernel}: padding must be ≥ 0, got {padding}")
    if x.ndim != 4 or w.shape[1] != x.shape[1]:
        raise ValueError(f"cpu.{kernel}: x (N, C, H, W) and w (K, C, 3, 3) must agree on C; got x "
                         f"{(<object>x).shape}, w {(<object>w).shape}")
    if out.ndim != 4 or out.shape[1] != w.shape[0]:
        raise ValueError(f"cpu.{kernel}: out must be (N, K, OH, OW) with K = {w.shape[0]}, got {(<object>out).shape}")
    if b is not None and cnp.PyArray_SIZE(b) != w.shape[0]:
        raise ValueError(f"cpu.{kernel}: the bias needs one value per output channel ({w.shape[0]}), got "
                         f"{(<object>b).shape}")
    run("cpu." + kernel, out, x, w, b, padding, relu, False, workspace)


def winograd_conv2d_grad_input(cnp.ndarray out, cnp.ndarray dy, cnp.ndarray w, *, padding, stride=(1, 1),
                               dilation=(1, 1), groups=1, workspace=None):
    """out = dL/dx of y = conv(x, w) (stride 1, `padding`): the stride-1 3×3 convolution of dy (N, K, OH, OW) with
    w flipped in r and s and transposed to (C, K, 3, 3), padding 2 − p on each side; out has x's shape."""
    kernel = "winograd_conv2d_grad_input"
    require_floats(kernel, out, (dy, w))
    _check(kernel, w, stride, dilation, groups)
    (pt, pb), (pl, pr) = normalize_padding(padding)
    if min(pt, pb, pl, pr) < 0:
        raise ValueError(f"cpu.{kernel}: padding must be ≥ 0, got {padding}")
    if dy.ndim != 4 or out.ndim != 4 or dy.shape[1] != w.shape[0] or out.shape[1] != w.shape[1]:
        raise ValueError(f"cpu.{kernel}: dy (N, K, OH, OW), w (K, C, 3, 3) and out (N, C, H, W) must agree on K and "
                         f"C; got dy {(<object>dy).shape}, w {(<object>w).shape}, out {(<object>out).shape}")
    run("cpu." + kernel, out, dy, w, None, ((2 - pt, 2 - pb), (2 - pl, 2 - pr)), False, True, workspace)


# ----------------------------------------------------------------------------------------------------------------
# when to choose it over im2col + GEMM (measured)

MIN_CHANNELS = 16          # min(C, K) below which im2col + GEMM stays: the GEMMs (inner size C, or K for the input
                           # gradient) are too thin and the transforms, O(C + K) per tile against 16·C·K
                           # multiply-adds, dominate
MIN_POSITIONS = 64         # N·OH·OW below which the weight transform (16·K·C values per call) is not paid back
MIN_OUTPUT_SIDE = ((64, 4), (32, 8), (16, 28))    # (channels, side): with min(C, K) ≥ channels, OH and OW ≥ side


def worthwhile(direction, x_shape, w_shape, padding):
    """Is Winograd faster than im2col + GEMM for this layer (one that `applies`)? x_shape and w_shape are the
    forward convolution's (N, C, H, W) and (K, C, 3, 3) for both directions ("forward" and "grad_input"): one rule
    for both, since both directions win and lose on the same layers.

    Measured with benchmarks/bench_winograd.py --sweep (float32, padding 1, one thread; a 2-core AMD EPYC with
    AVX-512 and 1 MiB of L2 per core, OpenBLAS's SkylakeX kernels): the median ratio of the cpu backend's time
    (im2col + sgemm, or its batched im2col on small planes) to Winograd's, forward | input gradient, on a noisy
    shared machine (±0.1):

        C → K       N    OH = OW:  4            8            16           28           32
        16 → 16     64           1.2 | 0.9    1.2 | 1.0    1.1 | 1.0    1.5 | 1.4    2.0 | 1.9
        16 → 16      1           0.8 | 0.7    1.1 | 0.9    0.9 | 1.0    1.6 | 1.6    1.6 | 1.6
        16 → 32     64           1.2 | 0.7    1.3 | 0.9    1.7 | 1.3    1.6 | 1.1    1.5 | 1.4
        32 → 32     64           1.3 | 1.0    1.4 | 1.1    1.8 | 1.5    1.7 | 1.5    1.9 | 1.9
        32 → 32      1           0.8 | 0.6    1.1 | 1.0    1.5 | 1.2    1.9 | 1.6    2.1 | 2.1
        64 → 64     64           1.4 | 1.1    1.8 | 1.4    2.1 | 1.6    1.9 | 1.5    2.1 | 1.9
        64 → 64      1           0.6 | 0.5    1.2 | 1.1    1.7 | 1.4    2.0 | 1.7    2.2 | 2.1
        128 → 128   64           1.7 | 1.6    2.0 | 1.8    2.2 | 2.0    2.4 | 2.0    2.6 | 2.2
        8 → 8       16           1.5 | 1.0    1.1 | 0.9    0.9 | 0.9    1.0 | 1.0    1.0 | 1.1
        3 → 32      16           0.5 | 0.2    0.5 | 0.2    0.5 | 0.3    0.5 | 0.3    0.5 | 0.5

    (64 → 64 at 56 × 56, N = 32: 2.3 | 1.9.) The rule keeps to the cells where both directions win (a tie at
    32 → 32, N = 1, 8 × 8): min(C, K) ≥ 16, N·OH·OW ≥ 64, and OH, OW ≥ 4 with 64 channels or more on both sides,
    ≥ 8 with 32 or more, ≥ 28 with 16 or more."""
    (pt, pb), (pl, pr) = normalize_padding(padding)
    channels = min(x_shape[1], w_shape[0])
    out_h, out_w = x_shape[2] + pt + pb - 2, x_shape[3] + pl + pr - 2
    if channels < MIN_CHANNELS or x_shape[0] * out_h * out_w < MIN_POSITIONS:
        return False
    side = next(side for least, side in MIN_OUTPUT_SIDE if channels >= least)
    return min(out_h, out_w) >= side
