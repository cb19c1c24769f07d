# cython: language_level=3, boundscheck=False, cdivision=True, initializedcheck=False
"""Elementwise kernels of the cpu backend: arithmetic with NumPy broadcasting, unary math, and their adjoints.

    add sub mul div maximum minimum    out[i] = a[i_a] ∘ b[i_b]             (NumPy broadcasting)
    select_grad                        out[i] = dy[i] · [a[i_a] wins over b[i_b]]   (gradient of maximum/minimum)
    cast                               out[i] = x[i] in out's dtype, as x.astype(out.dtype)
    broadcast_to                       out[i] = dy[i_d] · scale            (the adjoint of sum and mean)
    neg exp log sqrt pow               out[i] = f(x[i])
    sgd_update                         variable[i] = u[i] − a·x[i]          (fused mul → sub → assign, a one number)

maximum and minimum propagate NaN like NumPy's; select_grad gives dy to the input they returned: the first where
a >= b (a <= b) or a is NaN, else the second — ties go to the first input, a NaN result's gradient to the NaN.
pow with p = 0.5 is √x, as NumPy computes it ((−∞) ** 0.5 is NaN, where C's pow gives +∞).

Broadcasting by strides. Each operand is read through one element stride per output axis: its contiguous
stride, or 0 along an axis where it has size 1 and is repeated. At compile time `BroadcastWalk` simplifies the
problem: it drops the output's size-1 axes and merges neighbouring axes k, k+1 wherever every operand steps
through them evenly (stride[k] = stride[k+1] · shape[k+1]). What is left is usually one of the fast shapes:

    same shape               1 axis, strides (1, 1):   one flat loop the compiler vectorizes
    bias row  (M, N) + (N,)  2 axes, b strides (0, 1): per row, a contiguous loop against the same b row
    scalar    x * 2          1 axis, b stride 0:        a loop against one value held in a register
    anything else            k axes: rows along the last axis, each row's start found by unravelling its index

Work is cut into tiles of at most TILE elements of one row; OpenMP shares the tiles between threads once the
output is large enough to pay for waking them (PARALLEL_MIN elements, fewer for exp/log/pow).

Only float32 and float64 operands of one type run the C loops. Other dtypes (integer tensors, or a float32
tensor combined with a float64 one) take the NumPy ufunc the reference backend uses: nothing on a training
step's hot path produces them.
"""
from cython.parallel cimport prange
from libc.math cimport exp, expf, log, logf, pow, powf, sqrt, sqrtf

cimport numpy as cnp
import numpy as np

from ._buffers cimport (MAX_DIMS, PARALLEL_MIN, PARALLEL_MIN_COSTLY, RELEASE_GIL_MIN, data, is_single, real,
                        require_floats, require_size, same_floats, shape_of, size)
from graphnet.ops import elementwise as ops     # as ops.Add: this module's Add, Sub, ... are its C structs
from graphnet.ops.reduce import BroadcastTo
from graphnet.ops.dtypes import Cast
from graphnet.ops.fused import SgdUpdate

cnp.import_array()

cdef enum:
    TILE = 4096                 # elements of one row handled as one unit of (parallel) work
    MAX_OPERANDS = 3

cdef enum Binary:
    ADD, SUB, MUL, DIV, MAXIMUM, MINIMUM

cdef enum Pick:
    MAX_FIRST, MAX_SECOND, MIN_FIRST, MIN_SECOND

cdef enum Unary:
    NEG, EXP, LOG, SQRT, POW, SQUARE

cdef enum Walker:
    COMBINE, SELECT, SCALE      # what one row of a walk computes: a ∘ b, dy·[a wins], dy·scale

_NUMPY_BINARY = {ADD: np.add, SUB: np.subtract, MUL: np.multiply, DIV: np.divide, MAXIMUM: np.maximum,
                 MINIMUM: np.minimum}
_PICKS = {"max_first": MAX_FIRST, "max_second": MAX_SECOND, "min_first": MIN_FIRST, "min_second": MIN_SECOND}


# ----------------------------------------------------------------------------------------------------------------
# the compile-time plan of a broadcasting loop

ctypedef struct Walk:
    int ndim                                  # axes left after dropping size-1 axes and merging
    int n_operands
    Py_ssize_t size                           # output elements
    Py_ssize_t row_length                     # shape[ndim - 1]
    Py_ssize_t tiles_per_row
    Py_ssize_t n_tiles
    Py_ssize_t shape[MAX_DIMS]
    Py_ssize_t strides[MAX_OPERANDS][MAX_DIMS]
    Py_ssize_t operand_size[MAX_OPERANDS]


def broadcast_strides(in_shape, out_shape):
    """Element strides for reading a C-contiguous array of `in_shape` as if broadcast to `out_shape`."""
    rank = len(out_shape)
    if len(in_shape) > rank:
        raise ValueError(f"shape {tuple(in_shape)} has more axes than the result {tuple(out_shape)}")
    padded = (1,) * (rank - len(in_shape)) + tuple(in_shape)
    strides, step = [0] * rank, 1
    for axis in range(rank - 1, -1, -1):
        if padded[axis] == out_shape[axis]:
            strides[axis] = step if padded[axis] != 1 else 0
        elif padded[axis] != 1:
            raise ValueError(f"shape {tuple(in_shape)} does not broadcast to {tuple(out_shape)}")
        step *= padded[axis]
    return strides


def simplified_walk(out_shape, in_shapes):
    """(shape, per-operand strides) of the same loop with size-1 axes dropped and evenly strided neighbours merged."""
    strides = [broadcast_strides(s, out_shape) for s in in_shapes]
    shape, merged = [], [[] for _ in in_shapes]
    for axis, extent in enumerate(out_shape):
        if extent == 1:
            continue
        if shape and all(m[-1] == st[axis] * extent for m, st in zip(merged, strides)):
            shape[-1] *= extent
            for m, st in zip(merged, strides):
                m[-1] = st[axis]
        else:
            shape.append(extent)
            for m, st in zip(merged, strides):
                m.append(st[axis])
    if not shape:                             # a single element
        shape, merged = [1], [[0] for _ in in_shapes]
    return shape, merged


cdef class BroadcastWalk:
    """How a broadcasting kernel walks its output (made once per plan): see the module docstring."""
    cdef Walk walk
    cdef readonly str algorithm
    cdef readonly tuple out_shape

    def __init__(self, out_shape, in_shapes):
        if len(in_shapes) > MAX_OPERANDS:
            raise ValueError(f"a broadcast walk reads at most {MAX_OPERANDS} operands, got {len(in_shapes)}")
        self.out_shape = tuple(out_shape)
        shape, strides = simplified_walk(self.out_shape, in_shapes)
        if len(shape) > MAX_DIMS:
            raise ValueError(f"shape {self.out_shape} has more than {MAX_DIMS} axes")
        cdef Walk* w = &self.walk
        w.ndim, w.n_operands = len(shape), len(in_shapes)
        w.size = int(np.prod(self.out_shape, dtype=np.int64))
        for axis, extent in enumerate(shape):
            w.shape[axis] = extent
            for operand in range(w.n_operands):
                w.strides[operand][axis] = strides[operand][axis]
        for operand, s in enumerate(in_shapes):
            w.operand_size[operand] = int(np.prod(s, dtype=np.int64))
        w.row_length = shape[-1]
        w.tiles_per_row = (w.row_length + TILE - 1) // TILE
        w.n_tiles = 0 if w.size == 0 else w.size // w.row_length * w.tiles_per_row
        self.algorithm = _describe(shape, strides)

    def __repr__(self):
        return f"BroadcastWalk({self.out_shape}, {self.algorithm})"


def _describe(shape, strides):
    if len(shape) == 1:
        return "same-shape" if all(s[0] == 1 for s in strides) or shape[0] == 1 else "scalar"
    if len(shape) == 2 and all(s[1] == 1 for s in strides) and any(s[0] == 0 for s in strides):
        return "bias-row"
    return "strided"


cdef int _check_walk(str kernel, BroadcastWalk walk, cnp.ndarray out, cnp.ndarray a, cnp.ndarray b=None,
                     cnp.ndarray c=None) except -1:
    cdef Walk* w = &walk.walk
    require_size(kernel, "the output", out, w.size)
    require_size(kernel, "input 1", a, w.operand_size[0])
    if b is not None:
        require_size(kernel, "input 2", b, w.operand_size[1])
    if c is not None:
        require_size(kernel, "input 3", c, w.operand_size[2])
    return 0


# ----------------------------------------------------------------------------------------------------------------
# the C loops

# Operation tags: each operation gets its own compiled copy of the row loops (like a C++ template parameter), so no
# loop tests which operation it runs and the compiler vectorizes each one. A tag is passed as a typed NULL pointer.
ctypedef struct Add:
    char unused
ctypedef struct Sub:
    char unused
ctypedef struct Mul:
    char unused
ctypedef struct Div:
    char unused
ctypedef struct Max:
    char unused
ctypedef struct Min:
    char unused

ctypedef fused binary_op:
    Add
    Sub
    Mul
    Div
    Max
    Min

ctypedef struct MaxFirst:
    char unused
ctypedef struct MaxSecond:
    char unused
ctypedef struct MinFirst:
    char unused
ctypedef struct MinSecond:
    char unused

ctypedef fused pick_op:
    MaxFirst
    MaxSecond
    MinFirst
    MinSecond


cdef inline real _combine(binary_op* op, real x, real y) noexcept nogil:
    if binary_op is Add:
        return x + y
    elif binary_op is Sub:
        return x - y
    elif binary_op is Mul:
        return x * y
    elif binary_op is Div:
        return x / y
    elif binary_op is Max:
        return x if (x >= y or x != x) else y          # x != x: x is NaN, which wins as in np.maximum
    else:
        return x if (x <= y or x != x) else y


cdef inline bint _wins(pick_op* pick, real a, real b) noexcept nogil:
    """Whether the picked input is the one maximum (minimum) returned; a != a: a is NaN, and maximum returns it."""
    if pick_op is MaxFirst:
        return (a >= b) | (a != a)
    elif pick_op is MaxSecond:
        return not ((a >= b) | (a != a))
    elif pick_op is MinFirst:
        return (a <= b) | (a != a)
    else:
        return not ((a <= b) | (a != a))


cdef void _combine_row(binary_op* op, real* out, const real* a, Py_ssize_t sa, const real* b, Py_ssize_t sb,
                       Py_ssize_t n) noexcept nogil:
    """out[i] = a[i·sa] ∘ b[i·sb]; strides 1 and 0 get loops of their own so the compiler vectorizes them."""
    cdef Py_ssize_t i
    cdef real x, y
    if sa == 1 and sb == 1:
        for i in range(n):
            out[i] = _combine(op, a[i], b[i])
    elif sa == 1 and sb == 0:
        y = b[0]
        for i in range(n):
            out[i] = _combine(op, a[i], y)
    elif sa == 0 and sb == 1:
        x = a[0]
        for i in range(n):
            out[i] = _combine(op, x, b[i])
    else:
        for i in range(n):
            out[i] = _combine(op, a[i * sa], b[i * sb])


cdef void _combine_any(int op, real* out, const real* a, Py_ssize_t sa, const real* b, Py_ssize_t sb,
                       Py_ssize_t n) noexcept nogil:
    """The row loop compiled for operation `op`."""
    if op == ADD:
        _combine_row(<Add*>NULL, out, a, sa, b, sb, n)
    elif op == SUB:
        _combine_row(<Sub*>NULL, out, a, sa, b, sb, n)
    elif op == MUL:
        _combine_row(<Mul*>NULL, out, a, sa, b, sb, n)
    elif op == DIV:
        _combine_row(<Div*>NULL, out, a, sa, b, sb, n)
    elif op == MAXIMUM:
        _combine_row(<Max*>NULL, out, a, sa, b, sb, n)
    else:
        _combine_row(<Min*>NULL, out, a, sa, b, sb, n)


cdef void _select_row(pick_op* pick, real* out, const real* dy, Py_ssize_t sd, const real* a, Py_ssize_t sa,
                      const real* b, Py_ssize_t sb, Py_ssize_t n) noexcept nogil:
    """out[i] = dy[i] · [the picked input wins], written as a product so NaN and -0 follow NumPy's dy * won."""
    cdef Py_ssize_t i
    for i in range(n):
        out[i] = dy[i * sd] * (<real>1 if _wins(pick, a[i * sa], b[i * sb]) else <real>0)


cdef void _select_any(int pick, real* out, const real* dy, Py_ssize_t sd, const real* a, Py_ssize_t sa,
                      const real* b, Py_ssize_t sb, Py_ssize_t n) noexcept nogil:
    if pick == MAX_FIRST:
        _select_row(<MaxFirst*>NULL, out, dy, sd, a, sa, b, sb, n)
    elif pick == MAX_SECOND:
        _select_row(<MaxSecond*>NULL, out, dy, sd, a, sa, b, sb, n)
    elif pick == MIN_FIRST:
        _select_row(<MinFirst*>NULL, out, dy, sd, a, sa, b, sb, n)
    else:
        _select_row(<MinSecond*>NULL, out, dy, sd, a, sa, b, sb, n)


cdef void _scale_row(real* out, const real* x, Py_ssize_t sx, real scale, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i
    cdef real value
    if sx == 1:
        for i in range(n):
            out[i] = x[i] * scale
    else:
        value = x[0] * scale
        for i in range(n):
            out[i] = value


cdef inline Py_ssize_t _row_start(const Walk* w, int operand, Py_ssize_t row) noexcept nogil:
    """Element offset where `row` (an index over every axis but the last) starts in one operand."""
    cdef Py_ssize_t offset = 0
    cdef int axis
    if w.ndim < 2:
        return 0
    for axis in range(w.ndim - 2, 0, -1):
        offset += (row % w.shape[axis]) * w.strides[operand][axis]
        row = row // w.shape[axis]
    return offset + row * w.strides[operand][0]                  # what is left of row indexes the first axis


cdef void _walk_tile(int walker, int op, real scale, const Walk* w, real* out, const real* x0, const real* x1,
                     const real* x2, Py_ssize_t tile) noexcept nogil:
    """One tile: `n` elements of one row of the output, starting at element `start` of that row."""
    cdef Py_ssize_t row = tile // w.tiles_per_row
    cdef Py_ssize_t start = (tile % w.tiles_per_row) * TILE
    cdef Py_ssize_t n = min(<Py_ssize_t>TILE, w.row_length - start)
    cdef int last = w.ndim - 1
    cdef Py_ssize_t s0 = w.strides[0][last], s1 = w.strides[1][last], s2 = w.strides[2][last]
    out = out + row * w.row_length + start
    x0 = x0 + _row_start(w, 0, row) + start * s0
    if walker == SCALE:
        _scale_row(out, x0, s0, scale, n)
        return
    x1 = x1 + _row_start(w, 1, row) + start * s1
    if walker == COMBINE:
        _combine_any(op, out, x0, s0, x1, s1, n)
    else:
        x2 = x2 + _row_start(w, 2, row) + start * s2
        _select_any(op, out, x0, s0, x1, s1, x2, s2, n)


cdef void _walk(int walker, int op, real scale, const Walk* w, real* out, const real* x0, const real* x1,
                const real* x2) noexcept nogil:
    cdef Py_ssize_t tile
    if w.size >= PARALLEL_MIN and w.n_tiles > 1:
        for tile in prange(w.n_tiles, schedule="static"):
            _walk_tile(walker, op, scale, w, out, x0, x1, x2, tile)
    else:
        for tile in range(w.n_tiles):
            _walk_tile(walker, op, scale, w, out, x0, x1, x2, tile)


cdef void _walk_typed(bint single, int walker, int op, double scale, const Walk* w, void* out, const void* x0,
                      const void* x1, const void* x2) noexcept nogil:
    if single:
        _walk(walker, op, <float>scale, w, <float*>out, <const float*>x0, <const float*>x1, <const float*>x2)
    else:
        _walk(walker, op, scale, w, <double*>out, <const double*>x0, <const double*>x1, <const double*>x2)


cdef int _run_walk(int walker, int op, double scale, BroadcastWalk walk, cnp.ndarray out, cnp.ndarray x0,
                   cnp.ndarray x1, cnp.ndarray x2) except -1:
    cdef Walk* w = &walk.walk
    cdef void* po = data(out)
    cdef void* p0 = data(x0)
    cdef void* p1 = NULL if x1 is None else data(x1)
    cdef void* p2 = NULL if x2 is None else data(x2)
    cdef bint single = is_single(out)
    if w.size >= RELEASE_GIL_MIN:
        with nogil:
            _walk_typed(single, walker, op, scale, w, po, p0, p1, p2)
    else:
        _walk_typed(single, walker, op, scale, w, po, p0, p1, p2)
    return 0


# ----------------------------------------------------------------------------------------------------------------
# broadcasting kernels

cdef int _binary(int op, str kernel, cnp.ndarray out, cnp.ndarray a, cnp.ndarray b, BroadcastWalk walk) except -1:
    if not same_floats(out, a, b):
        _NUMPY_BINARY[op](a, b, out=out)
        return 0
    if walk is None:
        walk = BroadcastWalk(shape_of(out), [shape_of(a), shape_of(b)])
    _check_walk(kernel, walk, out, a, b)
    return _run_walk(COMBINE, op, 0.0, walk, out, a, b, None)


def add(cnp.ndarray out, cnp.ndarray a, cnp.ndarray b, BroadcastWalk walk=None, algorithm=None):
    """out = a + b"""
    _binary(ADD, "add", out, a, b, walk)


def sub(cnp.ndarray out, cnp.ndarray a, cnp.ndarray b, BroadcastWalk walk=None, algorithm=None):
    """out = a − b"""
    _binary(SUB, "sub", out, a, b, walk)


def mul(cnp.ndarray out, cnp.ndarray a, cnp.ndarray b, BroadcastWalk walk=None, algorithm=None):
    """out = a · b"""
    _binary(MUL, "mul", out, a, b, walk)


def div(cnp.ndarray out, cnp.ndarray a, cnp.ndarray b, BroadcastWalk walk=None, algorithm=None):
    """out = a / b"""
    _binary(DIV, "div", out, a, b, walk)


def maximum(cnp.ndarray out, cnp.ndarray a, cnp.ndarray b, BroadcastWalk walk=None, algorithm=None):
    """out = max(a, b), NaN if either is NaN"""
    _binary(MAXIMUM, "maximum", out, a, b, walk)


def minimum(cnp.ndarray out, cnp.ndarray a, cnp.ndarray b, BroadcastWalk walk=None, algorithm=None):
    """out = min(a, b), NaN if either is NaN"""
    _binary(MINIMUM, "minimum", out, a, b, walk)


def select_grad(cnp.ndarray out, cnp.ndarray dy, cnp.ndarray a, cnp.ndarray b, *, str pick,
                BroadcastWalk walk=None, algorithm=None):
    """out = dy · [the picked input won]: max_first a ≥ b, max_second b > a, min_first a ≤ b, min_second b < a."""
    cdef int code = _PICKS[pick]
    if not same_floats(out, dy, a, b):
        from graphnet.backends.reference.elementwise import select_grad as numpy_select_grad
        numpy_select_grad(out, dy, a, b, pick=pick)
        return
    if walk is None:
        walk = BroadcastWalk(shape_of(out), [shape_of(dy), shape_of(a), shape_of(b)])
    _check_walk("select_grad", walk, out, dy, a, b)
    _run_walk(SELECT, code, 0.0, walk, out, dy, a, b)


def broadcast_to(cnp.ndarray out, cnp.ndarray dy, *, tuple keep_shape, double scale, BroadcastWalk walk=None,
                 algorithm=None):
    """out = reshape(dy, keep_shape) · scale, repeated along the axes where keep_shape has size 1."""
    if not same_floats(out, dy):
        out[...] = np.reshape(dy, keep_shape) * scale
        return
    if walk is None:
        walk = BroadcastWalk(shape_of(out), [keep_shape])
    _check_walk("broadcast_to", walk, out, dy)
    _run_walk(SCALE, 0, scale, walk, out, dy, None, None)


def _plan_walk(params, in_shapes, out_shape, dtype):
    walk = BroadcastWalk(out_shape, in_shapes)
    return dict(params, walk=walk, algorithm=walk.algorithm)


def _plan_broadcast_to(params, in_shapes, out_shape, dtype):
    walk = BroadcastWalk(out_shape, [params["keep_shape"]])
    return dict(params, keep_shape=tuple(params["keep_shape"]), walk=walk, algorithm=walk.algorithm)


# ----------------------------------------------------------------------------------------------------------------
# unary kernels

cdef void _unary_run(int fn, real* out, const real* x, Py_ssize_t n, real p) noexcept nogil:
    """out[i] = f(x[i]): one loop per function, so that each is compiled (and vectorized) on its own."""
    cdef Py_ssize_t i
    if fn == NEG:
        for i in range(n):
            out[i] = -x[i]
    elif fn == SQUARE:
        for i in range(n):
            out[i] = x[i] * x[i]
    elif real is float:
        if fn == EXP:
            for i in range(n):
                out[i] = expf(x[i])
        elif fn == LOG:
            for i in range(n):
                out[i] = logf(x[i])
        elif fn == SQRT:
            for i in range(n):
                out[i] = sqrtf(x[i])
        else:
            for i in range(n):
                out[i] = powf(x[i], p)
    else:
        if fn == EXP:
            for i in range(n):
                out[i] = exp(x[i])
        elif fn == LOG:
            for i in range(n):
                out[i] = log(x[i])
        elif fn == SQRT:
            for i in range(n):
                out[i] = sqrt(x[i])
        else:
            for i in range(n):
                out[i] = pow(x[i], p)


cdef void _unary_loop(int fn, real* out, const real* x, Py_ssize_t n, real p) noexcept nogil:
    cdef Py_ssize_t tile, n_tiles = (n + TILE - 1) // TILE
    cdef Py_ssize_t threshold = PARALLEL_MIN if fn == NEG or fn == SQUARE or fn == SQRT else PARALLEL_MIN_COSTLY
    if n >= threshold and n_tiles > 1:
        for tile in prange(n_tiles, schedule="static"):
            _unary_run(fn, out + tile * TILE, x + tile * TILE, min(<Py_ssize_t>TILE, n - tile * TILE), p)
    else:
        _unary_run(fn, out, x, n, p)


cdef void _unary_typed(bint single, int fn, void* out, const void* x, Py_ssize_t n, double p) noexcept nogil:
    if single:
        _unary_loop(fn, <float*>out, <const float*>x, n, <float>p)
    else:
        _unary_loop(fn, <double*>out, <const double*>x, n, p)


_NUMPY_UNARY = {NEG: np.negative, EXP: np.exp, LOG: np.log, SQRT: np.sqrt}


cdef int _unary(int fn, str kernel, cnp.ndarray out, cnp.ndarray x, double p=0.0) except -1:
    if not same_floats(out, x):
        if fn == POW or fn == SQUARE:
            np.power(x, out.dtype.type(p), out=out)           # an integer power of integers stays integer
        else:
            _NUMPY_UNARY[fn](x, out=out)
        return 0
    require_size(kernel, "the input", x, size(out))
    cdef void* po = data(out)
    cdef void* px = data(x)
    cdef Py_ssize_t n = size(out)
    cdef bint single = is_single(out)
    if n >= RELEASE_GIL_MIN:
        with nogil:
            _unary_typed(single, fn, po, px, n, p)
    else:
        _unary_typed(single, fn, po, px, n, p)
    return 0


def neg(cnp.ndarray out, cnp.ndarray x):
    """out = −x"""
    _unary(NEG, "neg", out, x)


def exp_(cnp.ndarray out, cnp.ndarray x):
    """out = eˣ"""
    _unary(EXP, "exp", out, x)


def log_(cnp.ndarray out, cnp.ndarray x):
    """out = ln x"""
    _unary(LOG, "log", out, x)


def sqrt_(cnp.ndarray out, cnp.ndarray x):
    """out = √x"""
    _unary(SQRT, "sqrt", out, x)


def pow_(cnp.ndarray out, cnp.ndarray x, *, double exponent):
    """out = x^p for a constant p (x·x when p = 2, which is exact; √x when p = 0.5, as NumPy computes it)"""
    if exponent == 0.5 and same_floats(out, x):
        _unary(SQRT, "pow", out, x)
    else:
        _unary(SQUARE if exponent == 2.0 else POW, "pow", out, x, exponent)


def cast(cnp.ndarray out, cnp.ndarray x):
    """out = x in out's dtype (x.astype(out.dtype): floats to integers truncate toward zero)"""
    require_size("cast", "the input", x, size(out))
    np.copyto(out, x, casting="unsafe")


# ----------------------------------------------------------------------------------------------------------------
# the fused update of gradient descent

cdef void _scaled_step_run(real* out, const real* u, const real* x, real a, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(n):
        out[i] = u[i] - a * x[i]


cdef void _scaled_step(real* out, const real* u, const real* x, real a, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t tile, n_tiles = (n + TILE - 1) // TILE
    if n >= PARALLEL_MIN and n_tiles > 1:
        for tile in prange(n_tiles, schedule="static"):
            _scaled_step_run(out + tile * TILE, u + tile * TILE, x + tile * TILE, a,
                             min(<Py_ssize_t>TILE, n - tile * TILE))
    else:
        _scaled_step_run(out, u, x, a, n)


cdef void _scaled_step_typed(bint single, void* out, const void* u, const void* x, const void* a,
                             Py_ssize_t n) noexcept nogil:
    if single:
        _scaled_step(<float*>out, <const float*>u, <const float*>x, (<const float*>a)[0], n)
    else:
        _scaled_step(<double*>out, <const double*>u, <const double*>x, (<const double*>a)[0], n)


def sgd_update(cnp.ndarray out, cnp.ndarray scale, cnp.ndarray x, cnp.ndarray u, cnp.ndarray variable):
    """variable ← u − scale·x, with out the variable's storage: the fused mul(scale, x) → sub(u, ·) →
    assign(variable, ·) of w ← w − η·g; scale is one number (a learning rate that may change between runs),
    first whichever side of the mul it was on (SgdUpdate.kernel_inputs)."""
    require_floats("sgd_update", out, (scale, x, u))
    require_size("sgd_update", "the scale", scale, 1)
    require_size("sgd_update", "the gradient", x, size(out))
    require_size("sgd_update", "the value it is subtracted from", u, size(out))
    cdef Py_ssize_t n = size(out)
    cdef void* po = data(out)
    cdef const void* pu = data(u)
    cdef const void* px = data(x)
    cdef const void* pa = data(scale)
    cdef bint single = is_single(out)
    if n >= RELEASE_GIL_MIN:        # a bias of a few values is updated faster than the GIL is released
        with nogil:
            _scaled_step_typed(single, po, pu, px, pa, n)
    else:
        _scaled_step_typed(single, po, pu, px, pa, n)


KERNELS = {ops.Add: add, ops.Sub: sub, ops.Mul: mul, ops.Div: div, ops.Maximum: maximum, ops.Minimum: minimum,
           ops.SelectGrad: select_grad, BroadcastTo: broadcast_to,
           ops.Neg: neg, ops.Exp: exp_, ops.Log: log_, ops.Sqrt: sqrt_, ops.Pow: pow_, Cast: cast, SgdUpdate: sgd_update}

SPECIALIZE = {ops.Add: _plan_walk, ops.Sub: _plan_walk, ops.Mul: _plan_walk, ops.Div: _plan_walk,
              ops.Maximum: _plan_walk, ops.Minimum: _plan_walk, ops.SelectGrad: _plan_walk,
              BroadcastTo: _plan_broadcast_to}
