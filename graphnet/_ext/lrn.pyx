# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Local response normalization across channels, the cpu backend's kernels (formulas in graphnet/ops/lrn.py; the
NumPy twin is graphnet/backends/reference/lrn.py).

x is viewed as (N, C, S), S the positions after the channel axis (H·W). With n = size, the window of channel c is
the channels c − before … c − before + n − 1 that exist (the others are zeros), after = n − 1 − before:

    local_response_norm        D_c = k + α/n · Σ_window a_{c'}²,   y_c = a_c · D_c^−β
    local_response_norm_grad   dx_j = dy_j · D_j^−β − (2αβ/n) · a_j · Σ_c dy_c · a_c · D_c^(−β−1),
                               c from j − after to j + before (the channels whose window holds j)

The channels of one position are S elements apart, so the work goes by tiles: TILE consecutive positions of one
image, all C channels. Inside a tile every loop runs along the positions (contiguous, vectorizable); the window
sums are taken in double, straight from the window's channels (n additions per value, no running sum whose
rounding would drift along the channels). The gradient first writes, per channel of the tile, D^−β and
dy·a·D^(−β−1) into the thread's scratch (2·C·TILE doubles), then sums the second over each reversed window.
Tiles are independent: OpenMP shares them between threads when x is large enough.
"""
from cython.parallel cimport prange, threadid
cimport numpy as cnp
cimport openmp
from libc.math cimport pow

import numpy as np

from ._buffers cimport PARALLEL_MIN_COSTLY, data, is_single, real, require_floats, shape_of, size
from graphnet.ops.lrn import LocalResponseNorm, LocalResponseNormGrad

cnp.import_array()

cdef enum:
    TILE = 64                          # positions per work item: 2·C·TILE doubles of scratch stay in L2


cdef struct Lrn:
    Py_ssize_t channels, positions     # C, S
    Py_ssize_t size, before            # n, the window's channels before the centre
    double alpha_n, beta, k            # α/n, β, k


cdef inline void window_squares(const real* x, double* acc, Py_ssize_t c, Py_ssize_t width,
                                const Lrn* p) noexcept nogil:
    """acc[i] = Σ x[c', i]² over the channels c' of c's window (x: the tile's first position of channel 0)."""
    cdef Py_ssize_t i, other
    cdef Py_ssize_t first = max(c - p.before, 0), stop = min(c - p.before + p.size, p.channels)
    cdef const real* row
    for i in range(width):
        acc[i] = 0
    for other in range(first, stop):
        row = x + other * p.positions
        for i in range(width):
            acc[i] += <double>row[i] * row[i]


cdef void forward_tile(const real* x, real* y, double* acc, Py_ssize_t width, const Lrn* p) noexcept nogil:
    cdef Py_ssize_t c, i
    cdef const real* row
    for c in range(p.channels):
        window_squares(x, acc, c, width, p)
        row = x + c * p.positions
        for i in range(width):
            y[c * p.positions + i] = <real>(row[i] * pow(p.k + p.alpha_n * acc[i], -p.beta))


cdef void backward_tile(const real* dy, const real* x, real* dx, double* scratch, Py_ssize_t width,
                        const Lrn* p) noexcept nogil:
    """scratch: acc (TILE), then scale[c] = D_c^−β and through[c] = dy_c·a_c·D_c^(−β−1) (C·TILE each)."""
    cdef Py_ssize_t c, j, i, first, stop, after = p.size - 1 - p.before
    cdef double* acc = scratch
    cdef double* scale = scratch + TILE
    cdef double* through = scale + p.channels * TILE
    cdef double base
    for c in range(p.channels):
        window_squares(x, acc, c, width, p)
        for i in range(width):
            base = p.k + p.alpha_n * acc[i]
            scale[c * TILE + i] = pow(base, -p.beta)
            through[c * TILE + i] = <double>dy[c * p.positions + i] * x[c * p.positions + i] * \
                scale[c * TILE + i] / base
    for j in range(p.channels):
        first, stop = max(j - after, 0), min(j + p.before + 1, p.channels)
        for i in range(width):
            acc[i] = 0
        for c in range(first, stop):
            for i in range(width):
                acc[i] += through[c * TILE + i]
        for i in range(width):
            dx[j * p.positions + i] = <real>(dy[j * p.positions + i] * scale[j * TILE + i]
                                             - 2 * p.alpha_n * p.beta * x[j * p.positions + i] * acc[i])


cdef void all_tiles(bint backward, Py_ssize_t images, const Lrn* p, const real* x, const real* dy, real* out,
                    double* scratch, Py_ssize_t scratch_size, int threads) noexcept nogil:
    cdef Py_ssize_t per_image = (p.positions + TILE - 1) // TILE
    cdef Py_ssize_t task, image, start, width, offset
    for task in prange(images * per_image, num_threads=threads, schedule="static"):
        image, start = task // per_image, (task % per_image) * TILE
        width = min(<Py_ssize_t>TILE, p.positions - start)
        offset = image * p.channels * p.positions + start
        if backward:
            backward_tile(dy + offset, x + offset, out + offset, scratch + threadid() * scratch_size, width, p)
        else:
            forward_tile(x + offset, out + offset, scratch + threadid() * scratch_size, width, p)


cdef run(bint backward, str kernel, cnp.ndarray out, cnp.ndarray x, cnp.ndarray dy, n, before, alpha, beta, k):
    require_floats(kernel, out, (x,) if dy is None else (dy, x))
    cdef tuple shape = shape_of(x)
    if len(shape) < 3 or shape_of(out) != shape or (dy is not None and shape_of(dy) != shape):
        raise ValueError(f"cpu.{kernel}: x must be (N, C, ...) with at least one axis after the channels and out"
                         f"{'' if dy is None else ' and dy'} of its shape, got x {shape}, out {shape_of(out)}"
                         f"{'' if dy is None else f', dy {shape_of(dy)}'}")
    if not 0 <= before < n:
        raise ValueError(f"cpu.{kernel}: the window's channels before the centre must be in 0 … size − 1, got "
                         f"before={before} for size={n}")
    cdef Lrn p
    p.channels, p.positions = shape[1], size(x) // max(shape[0] * shape[1], 1)
    p.size, p.before, p.alpha_n, p.beta, p.k = n, before, alpha / n, beta, k
    cdef Py_ssize_t count = size(x)
    if count == 0:
        return
    cdef int threads = openmp.omp_get_max_threads() if count >= PARALLEL_MIN_COSTLY else 1
    cdef Py_ssize_t scratch_size = TILE + (2 * p.channels * TILE if backward else 0)
    scratch = np.empty(threads * scratch_size, dtype=np.float64)
    cdef double* pscratch = <double*>data(scratch)
    cdef void* px = data(x)
    cdef void* pdy = NULL if dy is None else data(dy)
    cdef void* pout = data(out)
    cdef bint single = is_single(out)
    cdef Py_ssize_t images = shape[0]
    with nogil:
        if single:
            all_tiles(backward, images, &p, <float*>px, <float*>pdy, <float*>pout, pscratch, scratch_size, threads)
        else:
            all_tiles(backward, images, &p, <double*>px, <double*>pdy, <double*>pout, pscratch, scratch_size,
                      threads)


def local_response_norm(cnp.ndarray out, cnp.ndarray x, *, size, before, alpha, beta, k):
    """out = x · D^−β, D = k + α/n · (the window's sum of x²)"""
    run(False, "local_response_norm", out, x, None, size, before, alpha, beta, k)


def local_response_norm_grad(cnp.ndarray out, cnp.ndarray dy, cnp.ndarray x, *, size, before, alpha, beta, k):
    """out = dx = dy · D^−β − (2αβ/n) · x · (the reversed window's sum of dy · x · D^(−β−1))"""
    run(True, "local_response_norm_grad", out, x, dy, size, before, alpha, beta, k)


KERNELS = {LocalResponseNorm: local_response_norm, LocalResponseNormGrad: local_response_norm_grad}
