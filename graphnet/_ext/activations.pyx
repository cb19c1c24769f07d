# cython: language_level=3, boundscheck=False, cdivision=True, initializedcheck=False
"""Activation kernels of the cpu backend and their derivatives (formulas in graphnet/ops/activations.py).

Pointwise, one pass each, with the same rounding choices as the NumPy reference:

    relu             y = max(x, 0)   (NaN stays NaN)      relu_grad        dx = dy · [y > 0]
    leaky_relu       y = x if x > 0 else s·x               leaky_relu_grad  dx = dy if x > 0 else s·dy
    elu              y = x if x > 0 else α(eˣ − 1)         elu_grad         dx = dy if x > 0 else dy·(y + α)
    sigmoid          y = 1/(1 + e⁻ˣ) for x ≥ 0, eˣ/(1 + eˣ) for x < 0 (e^−|x| never overflows)
                                                           sigmoid_grad     dx = dy·y·(1 − y)
    tanh             y = tanh x                            tanh_grad        dx = dy·(1 − y²)

Along one axis, where the tensor is read as (outer, L, inner) — L the axis' length, inner the elements after it
— so that each of the outer·inner rows is L elements `inner` apart (contiguous when the axis is the last):

    softmax          yᵢ = e^(xᵢ − m) / Σⱼ e^(xⱼ − m),   m = maxⱼ xⱼ   (three passes: max, exponentials, divide)
    log_softmax      yᵢ = xᵢ − m − log Σⱼ e^(xⱼ − m)
    softmax_grad     dxᵢ = yᵢ·(dyᵢ − Σⱼ dyⱼ·yⱼ)
    log_softmax_grad dxᵢ = dyᵢ − e^(yᵢ)·Σⱼ dyⱼ

Sums along a row are accumulated in double. Parallel (OpenMP) over tiles, or over rows, once a tensor is large
enough to pay for waking the threads.
"""
from cython.parallel cimport prange
from libc.math cimport exp, expf, expm1, expm1f, fabs, log, tanh, tanhf

cimport numpy as cnp

from ._buffers cimport (PARALLEL_MIN, PARALLEL_MIN_COSTLY, RELEASE_GIL_MIN, data, is_single, real, require_floats,
                        require_size, same_floats, shape_of, size)
from ._sums cimport row_max
from graphnet.ops.activations import (Elu, EluGrad, LeakyRelu, LeakyReluGrad, LogSoftmax, LogSoftmaxGrad, Relu,
                                      ReluGrad, Sigmoid, SigmoidGrad, Softmax, SoftmaxGrad, Tanh, TanhGrad)

cnp.import_array()

cdef enum:
    TILE = 4096

cdef enum Pointwise:
    RELU, RELU_GRAD, LEAKY_RELU, LEAKY_RELU_GRAD, ELU, ELU_GRAD, SIGMOID, SIGMOID_GRAD, TANH, TANH_GRAD

cdef enum AlongAxis:
    SOFTMAX, LOG_SOFTMAX, SOFTMAX_GRAD, LOG_SOFTMAX_GRAD


# ----------------------------------------------------------------------------------------------------------------
# pointwise

cdef inline real _exp(real x) noexcept nogil:
    if real is float:
        return expf(x)
    else:
        return exp(x)


cdef inline real _sigmoid(real x) noexcept nogil:
    cdef real e = _exp(-fabs(x))
    return <real>1 / (<real>1 + e) if x >= 0 else e / (<real>1 + e)


cdef void _pointwise_run(int fn, real* out, const real* a, const real* b, const real* c, real p,
                         Py_ssize_t n) noexcept nogil:
    """One loop per function, so each compiles (and vectorizes) on its own; a, b, c are the kernel's inputs."""
    cdef Py_ssize_t i
    if fn == RELU:
        for i in range(n):
            out[i] = a[i] if (a[i] > 0 or a[i] != a[i]) else <real>0        # np.maximum(x, 0)
    elif fn == RELU_GRAD:                                                       # a = dy, b = y
        for i in range(n):
            out[i] = a[i] * (<real>1 if b[i] > 0 else <real>0)
    elif fn == LEAKY_RELU:
        for i in range(n):
            out[i] = a[i] if a[i] > 0 else p * a[i]
    elif fn == LEAKY_RELU_GRAD:                                                 # a = dy, b = x
        for i in range(n):
            out[i] = a[i] if b[i] > 0 else p * a[i]
    elif fn == ELU:
        for i in range(n):
            if a[i] > 0:
                out[i] = a[i]
            elif real is float:
                out[i] = p * expm1f(a[i])
            else:
                out[i] = p * expm1(a[i])
    elif fn == ELU_GRAD:                                                        # a = dy, b = x, c = y
        for i in range(n):
            out[i] = a[i] if b[i] > 0 else a[i] * (c[i] + p)
    elif fn == SIGMOID:
        for i in range(n):
            out[i] = _sigmoid(a[i])
    elif fn == SIGMOID_GRAD:                                                    # a = dy, b = y
        for i in range(n):
            out[i] = a[i] * b[i] * (<real>1 - b[i])
    elif fn == TANH:
        for i in range(n):
            if real is float:
                out[i] = tanhf(a[i])
            else:
                out[i] = tanh(a[i])
    else:                                                                       # TANH_GRAD: a = dy, b = y
        for i in range(n):
            out[i] = a[i] * (<real>1 - b[i] * b[i])


cdef void _pointwise(int fn, real* out, const real* a, const real* b, const real* c, real p,
                     Py_ssize_t n) noexcept nogil:
    cdef bint costly = fn == ELU or fn == SIGMOID or fn == TANH
    cdef Py_ssize_t tile, n_tiles = (n + TILE - 1) // TILE
    cdef Py_ssize_t start
    if n_tiles > 1 and n >= (PARALLEL_MIN_COSTLY if costly else PARALLEL_MIN):
        for tile in prange(n_tiles, schedule="static"):
            start = tile * TILE
            _pointwise_run(fn, out + start, a + start, (b + start) if b != NULL else b,
                           (c + start) if c != NULL else c, p, min(<Py_ssize_t>TILE, n - start))
    else:
        _pointwise_run(fn, out, a, b, c, p, n)


cdef void _pointwise_typed(bint single, int fn, void* out, const void* a, const void* b, const void* c, double p,
                           Py_ssize_t n) noexcept nogil:
    if single:
        _pointwise(fn, <float*>out, <const float*>a, <const float*>b, <const float*>c, <float>p, n)
    else:
        _pointwise(fn, <double*>out, <const double*>a, <const double*>b, <const double*>c, p, n)


cdef int _run_pointwise(int fn, str kernel, cnp.ndarray out, cnp.ndarray a, cnp.ndarray b=None,
                        cnp.ndarray c=None, double p=0.0) except -1:
    if not same_floats(out, a, b, c):
        require_floats(kernel, out, tuple(x for x in (a, b, c) if x is not None))
    cdef Py_ssize_t n = size(out)
    require_size(kernel, "input 1", a, n)
    if b is not None:
        require_size(kernel, "input 2", b, n)
    if c is not None:
        require_size(kernel, "input 3", c, n)
    cdef void* po = data(out)
    cdef void* pa = data(a)
    cdef void* pb = NULL if b is None else data(b)
    cdef void* pc = NULL if c is None else data(c)
    cdef bint single = is_single(out)
    if n >= RELEASE_GIL_MIN:
        with nogil:
            _pointwise_typed(single, fn, po, pa, pb, pc, p, n)
    else:
        _pointwise_typed(single, fn, po, pa, pb, pc, p, n)
    return 0


def relu(cnp.ndarray out, cnp.ndarray x):
    """y = max(x, 0)"""
    _run_pointwise(RELU, "relu", out, x)


def relu_grad(cnp.ndarray out, cnp.ndarray dy, cnp.ndarray y):
    """dx = dy · [y > 0]  (y is relu's output: y > 0 exactly where x > 0)"""
    _run_pointwise(RELU_GRAD, "relu_grad", out, dy, y)


def leaky_relu(cnp.ndarray out, cnp.ndarray x, *, double slope):
    """y = x if x > 0 else slope·x"""
    _run_pointwise(LEAKY_RELU, "leaky_relu", out, x, None, None, slope)


def leaky_relu_grad(cnp.ndarray out, cnp.ndarray dy, cnp.ndarray x, *, double slope):
    """dx = dy if x > 0 else slope·dy"""
    _run_pointwise(LEAKY_RELU_GRAD, "leaky_relu_grad", out, dy, x, None, slope)


def elu(cnp.ndarray out, cnp.ndarray x, *, double alpha):
    """y = x if x > 0 else α(eˣ − 1)"""
    _run_pointwise(ELU, "elu", out, x, None, None, alpha)


def elu_grad(cnp.ndarray out, cnp.ndarray dy, cnp.ndarray x, cnp.ndarray y, *, double alpha):
    """dx = dy if x > 0 else dy·(y + α)"""
    _run_pointwise(ELU_GRAD, "elu_grad", out, dy, x, y, alpha)


def sigmoid(cnp.ndarray out, cnp.ndarray x):
    """y = 1 / (1 + e⁻ˣ), never overflowing"""
    _run_pointwise(SIGMOID, "sigmoid", out, x)


def sigmoid_grad(cnp.ndarray out, cnp.ndarray dy, cnp.ndarray y):
    """dx = dy·y·(1 − y)"""
    _run_pointwise(SIGMOID_GRAD, "sigmoid_grad", out, dy, y)


def tanh_(cnp.ndarray out, cnp.ndarray x):
    """y = tanh x"""
    _run_pointwise(TANH, "tanh", out, x)


def tanh_grad(cnp.ndarray out, cnp.ndarray dy, cnp.ndarray y):
    """dx = dy·(1 − y²)"""
    _run_pointwise(TANH_GRAD, "tanh_grad", out, dy, y)


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


KERNELS = {Relu: relu, ReluGrad: relu_grad, LeakyRelu: leaky_relu, LeakyReluGrad: leaky_relu_grad,
           Elu: elu, EluGrad: elu_grad, Sigmoid: sigmoid, SigmoidGrad: sigmoid_grad,
           Tanh: tanh_, TanhGrad: tanh_grad, Softmax: softmax, LogSoftmax: log_softmax,
           SoftmaxGrad: softmax_grad, LogSoftmaxGrad: log_softmax_grad}

SPECIALIZE = {Softmax: _plan_axis, LogSoftmax: _plan_axis, SoftmaxGrad: _plan_axis,
              LogSoftmaxGrad: _plan_axis}
