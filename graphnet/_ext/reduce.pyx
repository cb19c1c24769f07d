# cython: language_level=3, boundscheck=False, cdivision=True, initializedcheck=False
"""Reductions of the cpu backend over any set of axes, and the adjoints that route gradients back.

    sum      out[k] = Σ_r x[k, r]                 (k: the kept axes, r: the reduced ones)
    mean     out[k] = Σ_r x[k, r] / R              R = elements per output
    max      out[k] = max_r x[k, r]                (NaN if any is NaN, like np.max)
    max_grad dx[k, r] = dy[k] · [x[k, r] ≡ y[k]] / #{r : x[k, r] ≡ y[k]}     (ties share the gradient)
             where v ≡ m means v = m, or both are NaN: a NaN max's gradient goes to the NaNs (as torch.max's)
    sum_to   sum over the axes a broadcast repeated, giving the broadcast input's shape (the adjoint of broadcasting)

keepdims does not change the result's memory, only its shape. At compile time `ReductionPlan` drops size-1 axes
and merges neighbouring axes that are both kept or both reduced, leaving alternating groups. Its innermost
group (contiguous in memory) decides the loop:

    innermost reduced (e.g. sum over the last axis, or batch norm's (N, C, H·W) statistics):
        one output at a time: for every combination of the outer reduced axes, sum a contiguous run
    innermost kept (e.g. sum over the batch axis of (N, F), a bias gradient):
        BLOCK outputs at a time, held in a small accumulator on the stack: for every combination of the reduced
        axes, add a contiguous run of x to the block — one streaming pass over x, no temporary array

float32 sums are accumulated in double. Parallel (OpenMP) over outputs or output blocks, or over chunks of x
when everything reduces to one number, once x is large enough to pay for waking the threads.
"""
from cython.parallel cimport prange
from libc.math cimport INFINITY

cimport numpy as cnp
import numpy as np

from ._sums cimport run_sum
from ._buffers cimport (MAX_DIMS, PARALLEL_MIN, RELEASE_GIL_MIN, data, is_single, real, require_size, same_floats,
                        shape_of)
from graphnet.ops.reduce import Max, MaxGrad, Mean, Sum
from graphnet.ops.elementwise import SumTo

cnp.import_array()

cdef enum:
    BLOCK = 256                # outputs accumulated together when the innermost axis is kept
    CHUNK = 16384              # elements of x per parallel chunk when everything reduces to one value
    MAX_CHUNKS = 64
    LANES = 16                 # independent partial sums along a contiguous run

cdef enum Kind:
    SUM, MEAN, MAX


# ----------------------------------------------------------------------------------------------------------------
# the compile-time plan

ctypedef struct Reduction:
    int n_kept                                   # kept axis groups outside the innermost group
    int n_reduced                                # reduced axis groups outside the innermost group
    Py_ssize_t kept_shape[MAX_DIMS]
    Py_ssize_t kept_stride[MAX_DIMS]             # element strides in x
    Py_ssize_t reduced_shape[MAX_DIMS]
    Py_ssize_t reduced_stride[MAX_DIMS]
    Py_ssize_t inner                             # length of the innermost group (stride 1 in x)
    bint inner_reduced
    Py_ssize_t n_in                              # elements of x
    Py_ssize_t n_out                             # elements of the result
    Py_ssize_t outer_reductions                  # product of reduced_shape
    Py_ssize_t count                             # elements combined into each output
    Py_ssize_t blocks_per_row                    # innermost kept: ceil(inner / BLOCK)


def axis_groups(shape, axes):
    """[(reduced, extent)] of `shape` with size-1 axes dropped and same-kind neighbours merged."""
    groups = []
    for axis, extent in enumerate(shape):
        if extent == 1:
            continue
        reduced = axis in axes
        if groups and groups[len(groups) - 1][0] == reduced:
            groups[len(groups) - 1] = (reduced, groups[len(groups) - 1][1] * extent)
        else:
            groups.append((reduced, extent))
    return groups or [(False, 1)]


cdef class ReductionPlan:
    """How a reduction of x (of `in_shape`) over `axes` walks memory (made once per plan; see the docstring)."""
    cdef Reduction plan
    cdef readonly tuple in_shape, axes
    cdef readonly str algorithm

    def __init__(self, in_shape, axes):
        self.in_shape, self.axes = tuple(in_shape), tuple(axes)
        groups = axis_groups(self.in_shape, self.axes)
        if len(groups) > MAX_DIMS:
            raise ValueError(f"shape {self.in_shape} has more than {MAX_DIMS} axes")
        cdef Reduction* p = &self.plan
        p.inner_reduced, p.inner = groups[len(groups) - 1]
        p.n_kept = p.n_reduced = 0
        p.outer_reductions = 1
        stride = p.inner
        for reduced, extent in reversed(groups[:len(groups) - 1]):     # innermost first, to know the strides
            if reduced:
                p.reduced_shape[p.n_reduced], p.reduced_stride[p.n_reduced] = extent, stride
                p.n_reduced += 1
                p.outer_reductions *= extent
            else:
                p.kept_shape[p.n_kept], p.kept_stride[p.n_kept] = extent, stride
                p.n_kept += 1
            stride *= extent
        _reverse(p.reduced_shape, p.n_reduced)
        _reverse(p.reduced_stride, p.n_reduced)
        _reverse(p.kept_shape, p.n_kept)
        _reverse(p.kept_stride, p.n_kept)
        p.n_in = stride
        p.count = p.outer_reductions * (p.inner if p.inner_reduced else 1)
        p.n_out = p.n_in // p.count if p.count else int(np.prod(
            [d for a, d in enumerate(self.in_shape) if a not in self.axes], dtype=np.int64))
        p.blocks_per_row = 0 if p.inner_reduced else (p.inner + BLOCK - 1) // BLOCK
        if p.inner_reduced:
            self.algorithm = ("all" if p.n_out == 1 and p.n_reduced == 0 else
                              "trailing" if p.n_reduced == 0 else "strided-runs")
        else:
            self.algorithm = "leading" if p.n_kept == 0 else "column-blocks"

    @property
    def count(self):
        return self.plan.count

    def __repr__(self):
        return f"ReductionPlan({self.in_shape}, axes={self.axes}, {self.algorithm})"


cdef void _reverse(Py_ssize_t* values, int n) noexcept:
    cdef int i
    for i in range(n // 2):
        values[i], values[n - 1 - i] = values[n - 1 - i], values[i]


cdef inline Py_ssize_t _offset(Py_ssize_t index, int ndim, const Py_ssize_t* shape,
                               const Py_ssize_t* stride) noexcept nogil:
    """Element offset of multi-index number `index` (C order over `shape`) in memory with these strides."""
    cdef Py_ssize_t offset = 0
    cdef int axis
    for axis in range(ndim - 1, -1, -1):
        offset += (index % shape[axis]) * stride[axis]
        index = index // shape[axis]
    return offset


cdef inline real _max(real best, real v) noexcept nogil:
    """The larger, NaN as soon as either is NaN (np.max)."""
    cdef bint take = (v > best) | (v != v)          # `|`, not `or`: no branch, so the loops vectorize
    return v if take else best


cdef inline real _run_max(real best, const real* x, Py_ssize_t n) noexcept nogil:
    """max(best, x[0:n]), NaN if any is NaN. LANES independent running maxima, each a plain `v > m ? v : m`
    (one SIMD max instruction), with the NaNs caught on the side by a second select."""
    cdef real lanes[LANES]
    cdef real nans[LANES]
    cdef real v
    cdef Py_ssize_t j, lane, whole = n - n % LANES
    for lane in range(LANES):
        lanes[lane] = best
        nans[lane] = 0
    for j in range(whole // LANES):
        for lane in range(LANES):
            v = x[j * LANES + lane]
            lanes[lane] = v if v > lanes[lane] else lanes[lane]
            nans[lane] = v if v != v else nans[lane]
    for lane in range(LANES):
        best = _max(best, lanes[lane])
        if nans[lane] != nans[lane]:
            best = nans[lane]
    for j in range(whole, n):
        best = _max(best, x[j])
    return best


# ----------------------------------------------------------------------------------------------------------------
# sum, mean, max

cdef void _reduce_runs(int kind, const Reduction* p, real* out, const real* x, Py_ssize_t o) noexcept nogil:
    """Innermost axis reduced: out[o] from outer_reductions contiguous runs of `inner` elements."""
    cdef Py_ssize_t base = _offset(o, p.n_kept, p.kept_shape, p.kept_stride)
    cdef Py_ssize_t q
    cdef const real* run
    cdef double total = 0
    cdef real best = -INFINITY
    for q in range(p.outer_reductions):
        run = x + base + _offset(q, p.n_reduced, p.reduced_shape, p.reduced_stride)
        if kind == MAX:
            best = _run_max(best, run, p.inner)
        else:
            total += run_sum(run, p.inner)
    if kind == MAX:
        out[o] = best
    elif kind == MEAN:
        out[o] = <real>(total / p.count)
    else:
        out[o] = <real>total


cdef void _reduce_block(int kind, const Reduction* p, real* out, const real* x, Py_ssize_t tile) noexcept nogil:
    """Innermost axis kept: up to BLOCK neighbouring outputs of one output row, accumulated on the stack."""
    cdef Py_ssize_t row = tile // p.blocks_per_row
    cdef Py_ssize_t first = (tile % p.blocks_per_row) * BLOCK
    cdef Py_ssize_t width = min(<Py_ssize_t>BLOCK, p.inner - first)
    cdef Py_ssize_t base = _offset(row, p.n_kept, p.kept_shape, p.kept_stride) + first
    cdef double total[BLOCK]
    cdef real best[BLOCK]
    cdef Py_ssize_t q, j
    cdef const real* run
    for j in range(width):
        total[j] = 0
        best[j] = -INFINITY
    for q in range(p.outer_reductions):
        run = x + base + _offset(q, p.n_reduced, p.reduced_shape, p.reduced_stride)
        if kind == MAX:
            for j in range(width):
                best[j] = _max(best[j], run[j])
        else:
            for j in range(width):
                total[j] += run[j]
    out = out + row * p.inner + first
    for j in range(width):
        if kind == MAX:
            out[j] = best[j]
        elif kind == MEAN:
            out[j] = <real>(total[j] / p.count)
        else:
            out[j] = <real>total[j]


cdef void _reduce_chunk(int kind, const real* x, Py_ssize_t n, double* total, real* best) noexcept nogil:
    if kind == MAX:
        best[0] = _run_max(<real>-INFINITY, x, n)
    else:
        total[0] = run_sum(x, n)


cdef void _reduce_all(int kind, const Reduction* p, real* out, const real* x) noexcept nogil:
    """Everything into one value: per-chunk partial results in parallel, then combined in chunk order."""
    cdef Py_ssize_t n = p.inner
    cdef Py_ssize_t chunks = min(<Py_ssize_t>MAX_CHUNKS, (n + CHUNK - 1) // CHUNK)
    cdef Py_ssize_t per_chunk = (n + chunks - 1) // chunks
    cdef double totals[MAX_CHUNKS]
    cdef real bests[MAX_CHUNKS]
    cdef Py_ssize_t c
    cdef double total = 0
    cdef real best = -INFINITY
    for c in prange(chunks, schedule="static"):
        _reduce_chunk(kind, x + c * per_chunk, min(per_chunk, n - c * per_chunk), &totals[c], &bests[c])
    for c in range(chunks):
        total += totals[c]
        best = _max(best, bests[c])
    if kind == MAX:
        out[0] = best
    elif kind == MEAN:
        out[0] = <real>(total / p.count)
    else:
        out[0] = <real>total


cdef void _reduce(int kind, const Reduction* p, real* out, const real* x) noexcept nogil:
    cdef Py_ssize_t o, tile, n_tiles
    cdef bint parallel = p.n_in >= PARALLEL_MIN
    if p.inner_reduced:
        if parallel and p.n_out == 1 and p.n_reduced == 0:
            _reduce_all(kind, p, out, x)
        elif parallel and p.n_out > 1:
            for o in prange(p.n_out, schedule="static"):
                _reduce_runs(kind, p, out, x, o)
        else:
            for o in range(p.n_out):
                _reduce_runs(kind, p, out, x, o)
    else:
        n_tiles = p.n_out // p.inner * p.blocks_per_row if p.inner else 0
        if parallel and n_tiles > 1:
            for tile in prange(n_tiles, schedule="static"):
                _reduce_block(kind, p, out, x, tile)
        else:
            for tile in range(n_tiles):
                _reduce_block(kind, p, out, x, tile)



cdef void _reduce_typed(bint single, int kind, const Reduction* p, void* out, const void* x) noexcept nogil:
    if single:
        _reduce(kind, p, <float*>out, <const float*>x)
    else:
        _reduce(kind, p, <double*>out, <const double*>x)


cdef int _run_reduce(int kind, str kernel, cnp.ndarray out, cnp.ndarray x, tuple axes, bint keepdims,
                     ReductionPlan plan) except -1:
    if not same_floats(out, x):
        from graphnet.backends.reference import reduce as reference
        if kernel == "sum_to":
            out[...] = np.sum(x, axis=axes, keepdims=True).reshape(shape_of(out))
        else:
            getattr(reference, kernel)(out, x, axes=axes, keepdims=keepdims)
        return 0
    if plan is None:
        plan = ReductionPlan(shape_of(x), axes)
    cdef Reduction* p = &plan.plan
    require_size(kernel, "the input", x, p.n_in)
    require_size(kernel, "the output", out, p.n_out)
    if kind == MAX and p.count == 0 and p.n_out:
        raise ValueError("zero-size array to reduction operation maximum which has no identity")
    cdef void* po = data(out)
    cdef void* px = data(x)
    cdef bint single = is_single(out)
    if p.n_in >= RELEASE_GIL_MIN:
        with nogil:
            _reduce_typed(single, kind, p, po, px)
    else:
        _reduce_typed(single, kind, p, po, px)
    return 0


def sum_(cnp.ndarray out, cnp.ndarray x, *, tuple axes, bint keepdims, ReductionPlan plan=None, algorithm=None):
    """out = Σ x over `axes`"""
    _run_reduce(SUM, "sum", out, x, axes, keepdims, plan)


def mean(cnp.ndarray out, cnp.ndarray x, *, tuple axes, bint keepdims, ReductionPlan plan=None, algorithm=None):
    """out = Σ x over `axes` / (elements per output)"""
    _run_reduce(MEAN, "mean", out, x, axes, keepdims, plan)


def max_(cnp.ndarray out, cnp.ndarray x, *, tuple axes, bint keepdims, ReductionPlan plan=None, algorithm=None):
    """out = max of x over `axes`"""
    _run_reduce(MAX, "max", out, x, axes, keepdims, plan)


def sum_to(cnp.ndarray out, cnp.ndarray dy, *, tuple axes, ReductionPlan plan=None, algorithm=None):
    """out = Σ dy over the broadcast `axes`, in the shape of the broadcast input"""
    _run_reduce(SUM, "sum_to", out, dy, axes, True, plan)


# ----------------------------------------------------------------------------------------------------------------
# max_grad: two passes per group of x — count the maxima, then hand each its share of dy

cdef inline bint _is_max(real v, real m) noexcept nogil:
    """v is where the max m came from: equal to it, or NaN like it (`|`, not `or`: no branch)."""
    return (v == m) | ((v != v) & (m != m))


cdef void _max_grad_runs(const Reduction* p, real* dx, const real* dy, const real* x, const real* y,
                         Py_ssize_t o) noexcept nogil:
    cdef Py_ssize_t base = _offset(o, p.n_kept, p.kept_shape, p.kept_stride)
    cdef Py_ssize_t q, j, offset
    cdef real m = y[o], share
    cdef double winners = 0
    for q in range(p.outer_reductions):
        offset = base + _offset(q, p.n_reduced, p.reduced_shape, p.reduced_stride)
        for j in range(p.inner):
            winners += _is_max(x[offset + j], m)
    share = <real>(<double>dy[o] / winners)
    for q in range(p.outer_reductions):
        offset = base + _offset(q, p.n_reduced, p.reduced_shape, p.reduced_stride)
        for j in range(p.inner):
            dx[offset + j] = (<real>1 if _is_max(x[offset + j], m) else <real>0) * share


cdef void _max_grad_block(const Reduction* p, real* dx, const real* dy, const real* x, const real* y,
                          Py_ssize_t tile) noexcept nogil:
    cdef Py_ssize_t row = tile // p.blocks_per_row
    cdef Py_ssize_t first = (tile % p.blocks_per_row) * BLOCK
    cdef Py_ssize_t width = min(<Py_ssize_t>BLOCK, p.inner - first)
    cdef Py_ssize_t base = _offset(row, p.n_kept, p.kept_shape, p.kept_stride) + first
    cdef Py_ssize_t reduced_index = row * p.inner + first          # where this block's y and dy start
    cdef double winners[BLOCK]
    cdef real share[BLOCK]
    cdef Py_ssize_t q, j, offset
    for j in range(width):
        winners[j] = 0
    for q in range(p.outer_reductions):
        offset = base + _offset(q, p.n_reduced, p.reduced_shape, p.reduced_stride)
        for j in range(width):
            winners[j] += _is_max(x[offset + j], y[reduced_index + j])
    for j in range(width):
        share[j] = <real>(<double>dy[reduced_index + j] / winners[j])
    for q in range(p.outer_reductions):
        offset = base + _offset(q, p.n_reduced, p.reduced_shape, p.reduced_stride)
        for j in range(width):
            dx[offset + j] = (<real>1 if _is_max(x[offset + j], y[reduced_index + j]) else <real>0) * share[j]


cdef void _max_grad(const Reduction* p, real* dx, const real* dy, const real* x, const real* y) noexcept nogil:
    cdef Py_ssize_t o, tile, n_tiles
    cdef bint parallel = p.n_in >= PARALLEL_MIN
    if p.inner_reduced:
        if parallel and p.n_out > 1:
            for o in prange(p.n_out, schedule="static"):
                _max_grad_runs(p, dx, dy, x, y, o)
        else:
            for o in range(p.n_out):
                _max_grad_runs(p, dx, dy, x, y, o)
    else:
        n_tiles = p.n_out // p.inner * p.blocks_per_row if p.inner else 0
        if parallel and n_tiles > 1:
            for tile in prange(n_tiles, schedule="static"):
                _max_grad_block(p, dx, dy, x, y, tile)
        else:
            for tile in range(n_tiles):
                _max_grad_block(p, dx, dy, x, y, tile)


cdef void _max_grad_typed(bint single, const Reduction* p, void* dx, const void* dy, const void* x,
                          const void* y) noexcept nogil:
    if single:
        _max_grad(p, <float*>dx, <const float*>dy, <const float*>x, <const float*>y)
    else:
        _max_grad(p, <double*>dx, <const double*>dy, <const double*>x, <const double*>y)


def max_grad(cnp.ndarray out, cnp.ndarray dy, cnp.ndarray x, cnp.ndarray y, *, tuple axes, bint keepdims,
             ReductionPlan plan=None, algorithm=None):
    """dx = dy · [x = max] / (number of maxima), per group of x reduced to one output"""
    if not same_floats(out, dy, x, y):
        from graphnet.backends.reference import reduce as reference
        reference.max_grad(out, dy, x, y, axes=axes, keepdims=keepdims)
        return
    if plan is None:
        plan = ReductionPlan(shape_of(x), axes)
    cdef Reduction* p = &plan.plan
    require_size("max_grad", "x", x, p.n_in)
    require_size("max_grad", "the output", out, p.n_in)
    require_size("max_grad", "dy", dy, p.n_out)
    require_size("max_grad", "y", y, p.n_out)
    cdef void* pdx = data(out)
    cdef void* pdy = data(dy)
    cdef void* px = data(x)
    cdef void* py = data(y)
    cdef bint single = is_single(out)
    if p.n_in >= RELEASE_GIL_MIN:
        with nogil:
            _max_grad_typed(single, p, pdx, pdy, px, py)
    else:
        _max_grad_typed(single, p, pdx, pdy, px, py)


def _plan_reduction(params, in_shapes, out_shape, dtype):
    """sum, mean, max, sum_to: the plan for x = input 0; max_grad: for x = input 1."""
    x_shape = in_shapes[1] if len(in_shapes) == 3 else in_shapes[0]
    plan = ReductionPlan(x_shape, params["axes"])
    return dict(params, axes=tuple(params["axes"]), plan=plan, algorithm=plan.algorithm)


KERNELS = {Sum: sum_, Mean: mean, Max: max_, MaxGrad: max_grad, SumTo: sum_to}

SPECIALIZE = {Sum: _plan_reduction, Mean: _plan_reduction, Max: _plan_reduction,
              MaxGrad: _plan_reduction, SumTo: _plan_reduction}
