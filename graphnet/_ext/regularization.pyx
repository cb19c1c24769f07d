# cython: language_level=3, boundscheck=False, cdivision=True, initializedcheck=False
"""dropout and batch norm kernels of the cpu backend (formulas in graphnet/ops/regularization.py).

dropout draws the very mask of the reference backend: a counter-based generator (graphnet/backends/reference/
random.py) turned into C with unsigned 64-bit arithmetic, which wraps modulo 2⁶⁴ exactly as NumPy's uint64 does:

    key  = splitmix64(seed·2³² + run)          uᵢ = (splitmix64(key + i) >> 40) · 2⁻²⁴       (24 bits, exact)
    splitmix64(z):  z += 0x9E3779B97F4A7C15;  z = (z ^ z>>30)·0xBF58476D1CE4E5B9;  z = (z ^ z>>27)·0x94D049BB133111EB;
                    return z ^ z>>31
    y = x · ([uᵢ ≥ rate] / (1 − rate))         the product is taken in double and rounded once, as NumPy does

Each element's mask bit depends only on (seed, run, i), so the threads need no shared generator state.

Batch norm and the variance op view x as (A, C, S): A the elements before the one kept axis (the batch), C its
length (the channels), S the elements after it (H·W, or 1 for a dense layer). Channel c's M = A·S values are
the runs x[a, c, 0:S]. Per channel, in double:

    μ = Σx / M,   σ² = Σ(x − μ)² / M   (two passes, as np.var),   x̂ = (x − μ) / √(σ² + ε)
    batch_norm             y  = γ·x̂ + β
    batch_norm_grad_input  dx = γ/(√(σ² + ε)·M) · (M·dy − Σdy − x̂·Σ(dy·x̂))
    batch_norm_grad_gamma  dγ = Σ dy·x̂
    variance               v  = Σ(x − μ)² / (M − ddof)
    variance_grad          dx = dv · 2(x − μ) / (M − ddof)

Channels are independent, so OpenMP shares them between threads when x is large enough.
"""
from cython.parallel cimport prange
from libc.math cimport sqrt
from libc.stdint cimport uint64_t

cimport numpy as cnp

from ._sums cimport run_sum
from ._buffers cimport (PARALLEL_MIN, RELEASE_GIL_MIN, data, is_single, real, require_floats, require_size,
                        same_floats, shape_of, size)
from graphnet.ops.regularization import (BatchNorm, BatchNormGradGamma, BatchNormGradInput, Dropout, Variance,
                                         VarianceGrad)

cnp.import_array()

cdef enum:
    TILE = 4096
    BLOCK = 128                # channels per work item of a dense (N, C) batch norm
    LANES = 8                  # independent partial sums along a run


# ----------------------------------------------------------------------------------------------------------------
# dropout

cdef inline uint64_t splitmix64(uint64_t z) noexcept nogil:
    z = z + <uint64_t>0x9E3779B97F4A7C15
    z = (z ^ (z >> 30)) * <uint64_t>0xBF58476D1CE4E5B9
    z = (z ^ (z >> 27)) * <uint64_t>0x94D049BB133111EB
    return z ^ (z >> 31)


cdef inline double uniform(uint64_t key, uint64_t index) noexcept nogil:
    """Element `index` of the stream `key`: 24 random bits as a double in [0, 1)."""
    return <double>(splitmix64(key + index) >> 40) * (1.0 / 16777216.0)


def stream_key(seed, counter):
    """splitmix64(seed·2³² + counter), the key of run `counter` of a dropout with this seed (uint64 arithmetic)."""
    return splitmix64(<uint64_t>(((int(seed) << 32) + int(counter)) & 0xFFFFFFFFFFFFFFFF))


def uniform_stream(seed, counter, Py_ssize_t n):
    """The first n uniforms of the stream, as a list (for tests: the same numbers as graphnet.random.uniform)."""
    cdef uint64_t key = stream_key(seed, counter)
    return [uniform(key, i) for i in range(n)]


cdef void _dropout_run(real* out, const real* x, Py_ssize_t start, Py_ssize_t n, uint64_t key, double rate,
                       double scale) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(start, start + n):
        out[i] = <real>(<double>x[i] * (scale if uniform(key, i) >= rate else 0.0))


cdef void _dropout(real* out, const real* x, Py_ssize_t n, uint64_t key, double rate) noexcept nogil:
    cdef double scale = 1.0 / (1.0 - rate)
    cdef Py_ssize_t tile, n_tiles = (n + TILE - 1) // TILE
    if n >= PARALLEL_MIN and n_tiles > 1:
        for tile in prange(n_tiles, schedule="static"):
            _dropout_run(out, x, tile * TILE, min(<Py_ssize_t>TILE, n - tile * TILE), key, rate, scale)
    else:
        _dropout_run(out, x, 0, n, key, rate, scale)


cdef void _dropout_typed(bint single, void* out, const void* x, Py_ssize_t n, uint64_t key,
                         double rate) noexcept nogil:
    if single:
        _dropout(<float*>out, <const float*>x, n, key, rate)
    else:
        _dropout(<double*>out, <const double*>x, n, key, rate)


def dropout(cnp.ndarray out, cnp.ndarray x, *, double rate, seed, rng):
    """out = x · [u ≥ rate] / (1 − rate), u from the stream of (seed, rng.counter)"""
    if not same_floats(out, x):
        require_floats("dropout", out, (x,))
    cdef Py_ssize_t n = size(out)
    require_size("dropout", "the input", x, n)
    # element i draws number start + i of the stream: start > 0 when x is a shard of the batch (data-parallel
    # training), start = first sample · elements per sample (graphnet/random.py: stream_start)
    cdef Py_ssize_t start = rng.first_sample * (n // x.shape[0]) if x.ndim and x.shape[0] else 0
    cdef uint64_t key = stream_key(seed, rng.counter) + <uint64_t>start
    cdef void* po = data(out)
    cdef void* px = data(x)
    cdef bint single = is_single(out)
    if n >= RELEASE_GIL_MIN:
        with nogil:
            _dropout_typed(single, po, px, n, key, rate)
    else:
        _dropout_typed(single, po, px, n, key, rate)


# ----------------------------------------------------------------------------------------------------------------
# per-channel statistics

ctypedef struct Channels:
    Py_ssize_t batch          # A
    Py_ssize_t channels       # C
    Py_ssize_t spatial        # S
    Py_ssize_t count          # M = A·S


def channel_layout(shape, axes):
    """(A, C, S) for a reduction over every axis but one (batch norm's axes (0,) or (0, 2, 3))."""
    kept = [a for a in range(len(shape)) if a not in axes]
    if len(kept) != 1:
        raise ValueError(f"the cpu batch-norm kernels reduce over every axis but one; axes {tuple(axes)} of shape "
                         f"{tuple(shape)} keep {len(kept)}")
    k = kept[0]
    batch = spatial = 1
    for extent in shape[:k]:
        batch *= extent
    for extent in shape[k + 1:]:
        spatial *= extent
    return batch, shape[k], spatial


cdef Channels _channels(tuple layout) except *:
    cdef Channels ch
    ch.batch, ch.channels, ch.spatial = layout
    ch.count = ch.batch * ch.spatial
    return ch


cdef inline double _run_squares(const real* x, Py_ssize_t n, double mean) noexcept nogil:
    """Σ (x[0:n] − mean)² in LANES independent partial sums."""
    cdef double lanes[LANES]
    cdef double total = 0, d
    cdef Py_ssize_t j, lane, whole = n - n % LANES
    for lane in range(LANES):
        lanes[lane] = 0
    for j in range(whole // LANES):
        for lane in range(LANES):
            d = x[j * LANES + lane] - mean
            lanes[lane] += d * d
    for lane in range(LANES):
        total += lanes[lane]
    for j in range(whole, n):
        d = x[j] - mean
        total += d * d
    return total


cdef inline double _run_dot(const real* dy, const real* x, Py_ssize_t n, double mean) noexcept nogil:
    """Σ dy·(x − mean) over [0, n) in LANES independent partial sums."""
    cdef double lanes[LANES]
    cdef double total = 0
    cdef Py_ssize_t j, lane, whole = n - n % LANES
    for lane in range(LANES):
        lanes[lane] = 0
    for j in range(whole // LANES):
        for lane in range(LANES):
            lanes[lane] += dy[j * LANES + lane] * (x[j * LANES + lane] - mean)
    for lane in range(LANES):
        total += lanes[lane]
    for j in range(whole, n):
        total += dy[j] * (x[j] - mean)
    return total


# A work item is a block of `width` neighbouring channels: BLOCK of them for a dense layer (S = 1), where the
# loops then run along the channels of a row (contiguous, vectorized), and one for S > 1, where they run along
# the contiguous runs x[a, c, 0:S]. Per-channel statistics live in small arrays on the stack.

cdef enum ChannelKernel:
    NORMALIZE, GRAD_INPUT, GRAD_GAMMA, VARIANCE, VARIANCE_GRAD


cdef inline Py_ssize_t _row(const Channels* ch, Py_ssize_t a, Py_ssize_t c) noexcept nogil:
    """Where the run x[a, c, 0:S] starts."""
    return (a * ch.channels + c) * ch.spatial


cdef void _block_sums(const Channels* ch, Py_ssize_t first, Py_ssize_t width, const real* x,
                      double* total) noexcept nogil:
    """total[j] = Σ x over channel first + j."""
    cdef Py_ssize_t a, j, start
    for j in range(width):
        total[j] = 0
    for a in range(ch.batch):
        start = _row(ch, a, first)
        if ch.spatial == 1:
            for j in range(width):
                total[j] += x[start + j]
        else:
            for j in range(width):
                total[j] += run_sum(x + start + j * ch.spatial, ch.spatial)


cdef void _block_squares(const Channels* ch, Py_ssize_t first, Py_ssize_t width, const real* x, const double* mean,
                         double* total) noexcept nogil:
    """total[j] = Σ (x − mean[j])² over channel first + j."""
    cdef Py_ssize_t a, j, start
    cdef double d
    for j in range(width):
        total[j] = 0
    for a in range(ch.batch):
        start = _row(ch, a, first)
        if ch.spatial == 1:
            for j in range(width):
                d = x[start + j] - mean[j]
                total[j] += d * d
        else:
            for j in range(width):
                total[j] += _run_squares(x + start + j * ch.spatial, ch.spatial, mean[j])


cdef void _block_dots(const Channels* ch, Py_ssize_t first, Py_ssize_t width, const real* dy, const real* x,
                      const double* mean, double* sum_dy, double* sum_dy_dev) noexcept nogil:
    """sum_dy[j] = Σ dy and sum_dy_dev[j] = Σ dy·(x − mean[j]) over channel first + j."""
    cdef Py_ssize_t a, j, start
    for j in range(width):
        sum_dy[j] = 0
        sum_dy_dev[j] = 0
    for a in range(ch.batch):
        start = _row(ch, a, first)
        if ch.spatial == 1:
            for j in range(width):
                sum_dy[j] += dy[start + j]
                sum_dy_dev[j] += dy[start + j] * (x[start + j] - mean[j])
        else:
            for j in range(width):
                sum_dy[j] += run_sum(dy + start + j * ch.spatial, ch.spatial)
                sum_dy_dev[j] += _run_dot(dy + start + j * ch.spatial, x + start + j * ch.spatial, ch.spatial,
                                          mean[j])


cdef void _block_write(const Channels* ch, Py_ssize_t first, Py_ssize_t width, real* out, const real* x,
                       const real* dy, const double* m, const double* p, const double* q,
                       const double* r) noexcept nogil:
    """out = p[j]·dy + q[j] + r[j]·(x − m[j]) over channel first + j (the dy term only when dy is given), in
    double: the gradient is a difference of terms up to γ/σ·|dy| that can be far larger than itself."""
    cdef Py_ssize_t a, j, s, start
    cdef double pj, qj, rj, mj
    for a in range(ch.batch):
        start = _row(ch, a, first)
        if ch.spatial == 1:
            if dy == NULL:
                for j in range(width):
                    out[start + j] = <real>((x[start + j] - m[j]) * r[j] + q[j])
            else:
                for j in range(width):
                    out[start + j] = <real>(p[j] * dy[start + j] + q[j] + r[j] * (x[start + j] - m[j]))
        else:
            for j in range(width):
                pj, qj, rj, mj = p[j], q[j], r[j], m[j]
                if dy == NULL:
                    for s in range(start + j * ch.spatial, start + (j + 1) * ch.spatial):
                        out[s] = <real>((x[s] - mj) * rj + qj)
                else:
                    for s in range(start + j * ch.spatial, start + (j + 1) * ch.spatial):
                        out[s] = <real>(pj * dy[s] + qj + rj * (x[s] - mj))


cdef void _channel_block(int kernel, const Channels* ch, Py_ssize_t block, real* out, const real* x,
                         const real* dy, const real* gamma, const real* beta, double eps, double ddof) noexcept nogil:
    """One kernel over one block of channels; `dy` is the incoming gradient (one per channel for variance_grad)."""
    cdef Py_ssize_t per_block = BLOCK if ch.spatial == 1 else 1
    cdef Py_ssize_t first = block * per_block
    cdef Py_ssize_t width = min(per_block, ch.channels - first)
    cdef double mean[BLOCK]
    cdef double squares[BLOCK]
    cdef double sum_dy[BLOCK]
    cdef double sum_dy_dev[BLOCK]
    cdef double p[BLOCK]
    cdef double q[BLOCK]
    cdef double r[BLOCK]
    cdef double inv_std, k
    cdef Py_ssize_t j, c
    _block_sums(ch, first, width, x, mean)
    for j in range(width):
        mean[j] = mean[j] / ch.count
    _block_squares(ch, first, width, x, mean, squares)
    if kernel == VARIANCE:
        for j in range(width):
            out[first + j] = <real>(squares[j] / (ch.count - ddof))
        return
    if kernel == VARIANCE_GRAD:                               # dx = (x − μ)·2dv/(M − ddof)
        for j in range(width):
            p[j], q[j], r[j] = 0, 0, 2.0 * dy[first + j] / (ch.count - ddof)
        _block_write(ch, first, width, out, x, NULL, mean, p, q, r)
        return
    if kernel == NORMALIZE:                                   # y = (x − μ)·γ/σ + β
        for j in range(width):
            c = first + j
            inv_std = 1.0 / sqrt(squares[j] / ch.count + eps)
            p[j], q[j], r[j] = 0, beta[c], gamma[c] * inv_std
        _block_write(ch, first, width, out, x, NULL, mean, p, q, r)
        return
    _block_dots(ch, first, width, dy, x, mean, sum_dy, sum_dy_dev)
    for j in range(width):
        c = first + j
        inv_std = 1.0 / sqrt(squares[j] / ch.count + eps)
        if kernel == GRAD_GAMMA:                              # Σ dy·x̂ = inv_std · Σ dy·(x − μ)
            out[c] = <real>(sum_dy_dev[j] * inv_std)
        else:                                                 # dx = k·(M·dy − Σdy − x̂·Σdy·x̂),  k = γ/(σ·M)
            k = gamma[c] * inv_std / ch.count
            p[j] = k * ch.count
            q[j] = -k * sum_dy[j]
            r[j] = -k * sum_dy_dev[j] * inv_std * inv_std
    if kernel == GRAD_INPUT:
        _block_write(ch, first, width, out, x, dy, mean, p, q, r)


cdef void _per_channel(int kernel, const Channels* ch, real* out, const real* x, const real* dy,
                       const real* gamma, const real* beta, double eps, double ddof) noexcept nogil:
    cdef Py_ssize_t per_block = BLOCK if ch.spatial == 1 else 1
    cdef Py_ssize_t block, blocks = (ch.channels + per_block - 1) // per_block
    if blocks > 1 and ch.count * ch.channels >= PARALLEL_MIN:
        for block in prange(blocks, schedule="static"):
            _channel_block(kernel, ch, block, out, x, dy, gamma, beta, eps, ddof)
    else:
        for block in range(blocks):
            _channel_block(kernel, ch, block, out, x, dy, gamma, beta, eps, ddof)


cdef void _per_channel_typed(bint single, int kernel, const Channels* ch, void* out, const void* x, const void* dy,
                             const void* gamma, const void* beta, double eps, double ddof) noexcept nogil:
    if single:
        _per_channel(kernel, ch, <float*>out, <const float*>x, <const float*>dy, <const float*>gamma,
                     <const float*>beta, eps, ddof)
    else:
        _per_channel(kernel, ch, <double*>out, <const double*>x, <const double*>dy, <const double*>gamma,
                     <const double*>beta, eps, ddof)


cdef int _run_channels(int kernel, str name, tuple layout, cnp.ndarray out, cnp.ndarray x, cnp.ndarray dy,
                       cnp.ndarray gamma, cnp.ndarray beta, double eps, double ddof) except -1:
    if not same_floats(out, x, dy, gamma) or (beta is not None and not same_floats(out, beta)):
        require_floats(name, out, tuple(a for a in (x, dy, gamma, beta) if a is not None))
    cdef Channels ch = _channels(layout)
    require_size(name, "x", x, ch.count * ch.channels)
    for array, what in ((gamma, "gamma"), (beta, "beta")):
        if array is not None:
            require_size(name, what, array, ch.channels)
    cdef bint per_channel_out = kernel == VARIANCE or kernel == GRAD_GAMMA
    require_size(name, "the output", out, ch.channels if per_channel_out else ch.count * ch.channels)
    if dy is not None:
        require_size(name, "dy", dy, ch.channels if kernel == VARIANCE_GRAD else ch.count * ch.channels)
    if ch.count == 0:
        return 0
    cdef void* po = data(out)
    cdef void* px = data(x)
    cdef void* pdy = NULL if dy is None else data(dy)
    cdef void* pg = NULL if gamma is None else data(gamma)
    cdef void* pb = NULL if beta is None else data(beta)
    cdef bint single = is_single(out)
    if ch.count * ch.channels >= RELEASE_GIL_MIN:
        with nogil:
            _per_channel_typed(single, kernel, &ch, po, px, pdy, pg, pb, eps, ddof)
    else:
        _per_channel_typed(single, kernel, &ch, po, px, pdy, pg, pb, eps, ddof)
    return 0


def batch_norm(cnp.ndarray out, cnp.ndarray x, cnp.ndarray gamma, cnp.ndarray beta, *, double eps, tuple axes,
               tuple layout=None):
    """y = γ·(x − μ)/√(σ² + ε) + β with the batch statistics of each channel"""
    _run_channels(NORMALIZE, "batch_norm", layout or channel_layout(shape_of(x), axes), out, x, None, gamma, beta,
                  eps, 0)


def batch_norm_grad_input(cnp.ndarray out, cnp.ndarray dy, cnp.ndarray x, cnp.ndarray gamma, *, double eps,
                          tuple axes, tuple layout=None):
    """dx = γ/(σ·M) · (M·dy − Σdy − x̂·Σ(dy·x̂)) per channel"""
    _run_channels(GRAD_INPUT, "batch_norm_grad_input", layout or channel_layout(shape_of(x), axes), out, x, dy,
                  gamma, None, eps, 0)


def batch_norm_grad_gamma(cnp.ndarray out, cnp.ndarray dy, cnp.ndarray x, *, double eps, tuple axes,
                          tuple layout=None):
    """dγ = Σ dy·x̂ per channel"""
    _run_channels(GRAD_GAMMA, "batch_norm_grad_gamma", layout or channel_layout(shape_of(x), axes), out, x, dy,
                  None, None, eps, 0)


def variance(cnp.ndarray out, cnp.ndarray x, *, tuple axes, int ddof, tuple layout=None):
    """v = Σ(x − μ)² / (M − ddof) per channel"""
    _run_channels(VARIANCE, "variance", layout or channel_layout(shape_of(x), axes), out, x, None, None, None, 0,
                  ddof)


def variance_grad(cnp.ndarray out, cnp.ndarray dy, cnp.ndarray x, *, tuple axes, int ddof, tuple layout=None):
    """dx = dv · 2(x − μ)/(M − ddof), dv one value per channel"""
    _run_channels(VARIANCE_GRAD, "variance_grad", layout or channel_layout(shape_of(x), axes), out, x, dy, None,
                  None, 0, ddof)


def _layout_rule(x_input):
    """A SPECIALIZE rule that puts the (A, C, S) layout of input `x_input` (the kernel's x) into the params."""
    def plan(params, in_shapes, out_shape, dtype):
        layout = channel_layout(tuple(in_shapes[x_input]), params["axes"])
        return dict(params, axes=tuple(params["axes"]), layout=layout)
    return plan


KERNELS = {Dropout: dropout, BatchNorm: batch_norm, BatchNormGradInput: batch_norm_grad_input,
           BatchNormGradGamma: batch_norm_grad_gamma, Variance: variance, VarianceGrad: variance_grad}

SPECIALIZE = {BatchNorm: _layout_rule(0), BatchNormGradInput: _layout_rule(1),
              BatchNormGradGamma: _layout_rule(1), Variance: _layout_rule(0), VarianceGrad: _layout_rule(1)}
