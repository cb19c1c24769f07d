# cython: language_level=3, boundscheck=False, cdivision=True, initializedcheck=False
"""Softmax and log-softmax along an axis on the cpu backend, and their gradients (formulas in
graphnet/ops/activations.py; the pointwise activations are generated from graphnet/ops/formulas.py into
pointwise.pyx).

Along one axis, where the tensor is read as (outer, L, inner) — L the axis' length, inner the elements after it
— so that each of the outer·inner rows is L elements `inner` apart (contiguous when the axis is the last):

    softmax          yᵢ = e^(xᵢ − m) / Σⱼ e^(xⱼ − m),   m = maxⱼ xⱼ   (three passes: max, exponentials, divide)
    log_softmax      yᵢ = xᵢ − m − log Σⱼ e^(xⱼ − m)
    softmax_grad     dxᵢ = yᵢ·(dyᵢ − Σⱼ dyⱼ·yⱼ)
    log_softmax_grad dxᵢ = dyᵢ − e^(yᵢ)·Σⱼ dyⱼ

Sums along a row are accumulated in double. Parallel (OpenMP) over rows once a tensor is large enough to pay for
waking the threads.
"""
from cython.parallel cimport prange
from libc.math cimport log

cimport numpy as cnp

from ._buffers cimport (PARALLEL_MIN_COSTLY, RELEASE_GIL_MIN, data, is_single, real, require_floats, require_size,
                        same_floats, shape_of)
from ._scalar cimport _exp
from ._sums cimport row_max
from graphnet.ops.activations import LogSoftmax, LogSoftmaxGrad, Softmax, SoftmaxGrad

cnp.import_array()

cdef enum AlongAxis:
    SOFTMAX, LOG_SOFTMAX, SOFTMAX_GRAD, LOG_SOFTMAX_GRAD


# ----------------------------------------------------------------------------------------------------------------
# along one axis

def axis_layout(shape, axis):
    """(outer, L, inner): the tensor as outer·inner rows of L elements that lie `inner` apart."""
    outer = inner = 1
    for extent in shape[:axis]:
        outer *= extent
    for extent in shape[axis + 1:]:
        inner *= extent
    return outer, shape[axis], inner


cdef inline void _softmax_row(int fn, real* out, const real* a, const real* b, Py_ssize_t length,
                              Py_ssize_t stride) noexcept nogil:
    """One row of `fn`: a = x (forward), or a = dy and b = y (gradients)."""
    cdef Py_ssize_t j
    cdef real m, e, shift
    cdef double total = 0
    if fn == SOFTMAX or fn == LOG_SOFTMAX:
        m = row_max(a, length, stride)
        for j in range(length):
            e = _exp(a[j * stride] - m)
            total += e
            if fn == SOFTMAX:
                out[j * stride] = e
        if fn == SOFTMAX:
            for j in range(length):
                out[j * stride] = out[j * stride] / <real>total
        else:
            shift = <real>log(total)
            for j in range(length):
                out[j * stride] = (a[j * stride] - m) - shift
    elif fn == SOFTMAX_GRAD:
        for j in range(length):
            total += a[j * stride] * b[j * stride]
        for j in range(length):
            out[j * stride] = b[j * stride] * (a[j * stride] - <real>total)
    else:                                                                      # LOG_SOFTMAX_GRAD
        for j in range(length):
            total += a[j * stride]
        for j in range(length):
            out[j * stride] = a[j * stride] - _exp(b[j * stride]) * <real>total


cdef inline void _softmax_one(int fn, real* out, const real* a, const real* b, Py_ssize_t row, Py_ssize_t length,
                              Py_ssize_t inner) noexcept nogil:
    """Row number `row` of the outer·inner rows; the last axis (inner = 1) compiles to contiguous loops."""
    cdef Py_ssize_t start
    if inner == 1:
        start = row * length
        _softmax_row(fn, out + start, a + start, (b + start) if b != NULL else b, length, 1)
    else:
        start = (row // inner) * length * inner + row % inner
        _softmax_row(fn, out + start, a + start, (b + start) if b != NULL else b, length, inner)


cdef void _along_axis(int fn, real* out, const real* a, const real* b, Py_ssize_t outer, Py_ssize_t length,
                      Py_ssize_t inner) noexcept nogil:
    cdef Py_ssize_t row, rows = outer * inner
    if length == 0:
        return
    if rows > 1 and rows * length >= PARALLEL_MIN_COSTLY:
        for row in prange(rows, schedule="static"):
            _softmax_one(fn, out, a, b, row, length, inner)
    else:
        for row in range(rows):
            _softmax_one(fn, out, a, b, row, length, inner)


cdef void _along_axis_typed(bint single, int fn, void* out, const void* a, const void* b, Py_ssize_t outer,
                            Py_ssize_t length, Py_ssize_t inner) noexcept nogil:
    if single:
        _along_axis(fn, <float*>out, <const float*>a, <const float*>b, outer, length, inner)
    else:
        _along_axis(fn, <double*>out, <const double*>a, <const double*>b, outer, length, inner)


cdef int _run_along_axis(int fn, str kernel, cnp.ndarray out, cnp.ndarray a, cnp.ndarray b, int axis,
                         tuple layout) except -1:
    if not same_floats(out, a, b):
        require_floats(kernel, out, (a,) if b is None else (a, b))
    if layout is None:
        layout = axis_layout(shape_of(out), axis)
    cdef Py_ssize_t outer = layout[0], length = layout[1], inner = layout[2]
    require_size(kernel, "the output", out, outer * length * inner)
    require_size(kernel, "input 1", a, outer * length * inner)
    if b is not None:
        require_size(kernel, "input 2", b, outer * length * inner)
    cdef void* po = data(out)
    cdef void* pa = data(a)
    cdef void* pb = NULL if b is None else data(b)
    cdef bint single = is_single(out)
    if outer * length * inner >= RELEASE_GIL_MIN:
        with nogil:
            _along_axis_typed(single, fn, po, pa, pb, outer, length, inner)
    else:
        _along_axis_typed(single, fn, po, pa, pb, outer, length, inner)
    return 0


def softmax(cnp.ndarray out, cnp.ndarray x, *, int axis, tuple layout=None, algorithm=None):
    """yᵢ = e^(xᵢ − m) / Σⱼ e^(xⱼ − m) along `axis`"""
    _run_along_axis(SOFTMAX, "softmax", out, x, None, axis, layout)


def log_softmax(cnp.ndarray out, cnp.ndarray x, *, int axis, tuple layout=None, algorithm=None):
    """yᵢ = xᵢ − m − log Σⱼ e^(xⱼ − m) along `axis`"""
    _run_along_axis(LOG_SOFTMAX, "log_softmax", out, x, None, axis, layout)


def softmax_grad(cnp.ndarray out, cnp.ndarray dy, cnp.ndarray y, *, int axis, tuple layout=None, algorithm=None):
    """dxᵢ = yᵢ·(dyᵢ − Σⱼ dyⱼ·yⱼ) along `axis`"""
    _run_along_axis(SOFTMAX_GRAD, "softmax_grad", out, dy, y, axis, layout)


def log_softmax_grad(cnp.ndarray out, cnp.ndarray dy, cnp.ndarray y, *, int axis, tuple layout=None,
                     algorithm=None):
    """dxᵢ = dyᵢ − e^(yᵢ)·Σⱼ dyⱼ along `axis`"""
    _run_along_axis(LOG_SOFTMAX_GRAD, "log_softmax_grad", out, dy, y, axis, layout)


def _plan_axis(params, in_shapes, out_shape, dtype):
    layout = axis_layout(tuple(out_shape), params["axis"])
    return dict(params, layout=layout, algorithm="last-axis" if layout[2] == 1 else "strided-axis")


KERNELS = {Softmax: softmax, LogSoftmax: log_softmax, SoftmaxGrad: softmax_grad, LogSoftmaxGrad: log_softmax_grad}

SPECIALIZE = {Softmax: _plan_axis, LogSoftmax: _plan_axis, SoftmaxGrad: _plan_axis,
              LogSoftmaxGrad: _plan_axis}
