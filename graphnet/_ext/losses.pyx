# cython: language_level=3, boundscheck=False, cdivision=True, initializedcheck=False
"""Loss kernels of the cpu backend: each a mean over the batch, computed in one pass without overflow.

    softmax_cross_entropy       L = (1/N) Σₙ [ mₙ + log Σⱼ e^(z_nj − mₙ) − z_{n,yₙ} ],  mₙ = maxⱼ z_nj
    softmax_cross_entropy_grad  dz_nj = dL · (softmax(z)_nj − [j = yₙ]) / N
    mse                         L = (1/M) Σ (p − t)²                  mse_grad  dp = dL · 2(p − t) / M
    binary_cross_entropy_with_logits
                                L = (1/M) Σ [ max(z, 0) − z·t + log(1 + e^(−|z|)) ]
    bce_grad                    dz = dL · (σ(z) − t) / M   (wrt="logits"),   dt = dL · (−z) / M   (wrt="targets")

(N: batch size, M: elements.) Sums are accumulated in double; with enough work the rows or elements are split
between threads (an OpenMP sum reduction). Labels outside [0, classes) raise the reference backend's FeedError —
in the gradient kernel as well, which may run without the loss (it is its own step) and must never index outside
a row.
"""
from cython.parallel cimport prange
from libc.math cimport exp, fabs, log, log1p
from libc.stdint cimport int64_t

cimport numpy as cnp
import numpy as np

from ..errors import FeedError
from ._buffers cimport (PARALLEL_MIN, PARALLEL_MIN_COSTLY, RELEASE_GIL_MIN, data, is_single, real, require_floats,
                        require_size, same_floats, shape_of, size)
from ._scalar cimport _exp
from ._sums cimport row_max
from graphnet.ops.losses import (BceGrad, BinaryCrossEntropyWithLogits, Mse, MseGrad, SoftmaxCrossEntropy,
                                 SoftmaxCrossEntropyGrad)

cnp.import_array()


# ----------------------------------------------------------------------------------------------------------------
# labels

cdef int _check_labels(const int64_t* labels, Py_ssize_t n, Py_ssize_t classes) except -1:
    """The reference's FeedError for the first label outside [0, classes), with the count of bad ones."""
    cdef Py_ssize_t i, bad = 0, first = -1
    for i in range(n):
        if labels[i] < 0 or labels[i] >= classes:
            bad += 1
            if first < 0:
                first = i
    if bad:
        raise FeedError(f"softmax_cross_entropy: labels must be class indices in [0, {classes}), got "
                        f"{labels[first]} ({bad} out of range)")
    return 0


cdef cnp.ndarray _as_int64(cnp.ndarray labels):
    """Labels as C-contiguous int64 (a copy only for another integer type, e.g. an int32 placeholder)."""
    if cnp.PyArray_TYPE(labels) == cnp.NPY_INT64 and cnp.PyArray_IS_C_CONTIGUOUS(labels):
        return labels
    return np.ascontiguousarray(labels, dtype=np.int64)


cdef int _check_logits(str kernel, cnp.ndarray logits, cnp.ndarray labels) except -1:
    if cnp.PyArray_NDIM(logits) != 2 or cnp.PyArray_NDIM(labels) != 1 or \
            cnp.PyArray_DIM(labels, 0) != cnp.PyArray_DIM(logits, 0):
        raise ValueError(f"cpu.{kernel}: logits must be (N, C) and labels (N,), got {shape_of(logits)} and "
                         f"{shape_of(labels)}")
    return 0


# ----------------------------------------------------------------------------------------------------------------
# softmax cross-entropy

cdef inline double _row_loss(const real* z, Py_ssize_t classes, int64_t label) noexcept nogil:
    """log Σⱼ e^(zⱼ − m) + m − z[label] for one row."""
    cdef real m = row_max(z, classes, 1)
    cdef double total = 0
    cdef Py_ssize_t j
    for j in range(classes):
        total += _exp(z[j] - m)
    return log(total) + m - z[label]


cdef double _cross_entropy(const real* z, const int64_t* labels, Py_ssize_t n, Py_ssize_t classes) noexcept nogil:
    cdef double total = 0
    cdef Py_ssize_t row
    if n > 1 and n * classes >= PARALLEL_MIN_COSTLY:
        for row in prange(n, schedule="static"):
            total += _row_loss(z + row * classes, classes, labels[row])
    else:
        for row in range(n):
            total += _row_loss(z + row * classes, classes, labels[row])
    return total


cdef inline void _row_grad(real* dz, const real* z, Py_ssize_t classes, int64_t label, real scale) noexcept nogil:
    """dz = (softmax(z) − onehot(label)) · scale for one row."""
    cdef real m = row_max(z, classes, 1)
    cdef double total = 0
    cdef Py_ssize_t j
    for j in range(classes):
        dz[j] = _exp(z[j] - m)
        total += dz[j]
    for j in range(classes):
        dz[j] = dz[j] / <real>total
    dz[label] -= 1
    for j in range(classes):
        dz[j] = dz[j] * scale


cdef void _cross_entropy_grad(real* dz, const real* z, const int64_t* labels, Py_ssize_t n, Py_ssize_t classes,
                              real scale) noexcept nogil:
    cdef Py_ssize_t row
    if n > 1 and n * classes >= PARALLEL_MIN_COSTLY:
        for row in prange(n, schedule="static"):
            _row_grad(dz + row * classes, z + row * classes, classes, labels[row], scale)
    else:
        for row in range(n):
            _row_grad(dz + row * classes, z + row * classes, classes, labels[row], scale)


cdef double _cross_entropy_typed(bint single, const void* z, const int64_t* labels, Py_ssize_t n,
                                 Py_ssize_t classes) noexcept nogil:
    if single:
        return _cross_entropy(<const float*>z, labels, n, classes)
    return _cross_entropy(<const double*>z, labels, n, classes)


cdef void _cross_entropy_grad_typed(bint single, void* dz, const void* z, const int64_t* labels, Py_ssize_t n,
                                    Py_ssize_t classes, const void* dloss) noexcept nogil:
    if single:
        _cross_entropy_grad(<float*>dz, <const float*>z, labels, n, classes, (<const float*>dloss)[0] / <float>n)
    else:
        _cross_entropy_grad(<double*>dz, <const double*>z, labels, n, classes, (<const double*>dloss)[0] / <double>n)


def softmax_cross_entropy(cnp.ndarray out, cnp.ndarray logits, cnp.ndarray labels):
    """out = mean over rows of −log softmax(logits)[label]"""
    if not same_floats(out, logits):
        require_floats("softmax_cross_entropy", out, (logits,))
    _check_logits("softmax_cross_entropy", logits, labels)
    labels = _as_int64(labels)
    cdef Py_ssize_t n = cnp.PyArray_DIM(logits, 0), classes = cnp.PyArray_DIM(logits, 1)
    require_size("softmax_cross_entropy", "the output", out, 1)
    _check_labels(<const int64_t*>data(labels), n, classes)
    cdef void* pz = data(logits)
    cdef const int64_t* py = <const int64_t*>data(labels)
    cdef double total
    cdef bint single = is_single(out)
    if n * classes >= RELEASE_GIL_MIN:
        with nogil:
            total = _cross_entropy_typed(single, pz, py, n, classes)
    else:
        total = _cross_entropy_typed(single, pz, py, n, classes)
    _store(out, total / n)


def softmax_cross_entropy_grad(cnp.ndarray out, cnp.ndarray dloss, cnp.ndarray logits, cnp.ndarray labels):
    """out = dloss · (softmax(logits) − onehot(labels)) / N"""
    if not same_floats(out, dloss, logits):
        require_floats("softmax_cross_entropy_grad", out, (dloss, logits))
    _check_logits("softmax_cross_entropy_grad", logits, labels)
    labels = _as_int64(labels)
    cdef Py_ssize_t n = cnp.PyArray_DIM(logits, 0), classes = cnp.PyArray_DIM(logits, 1)
    require_size("softmax_cross_entropy_grad", "the output", out, n * classes)
    require_size("softmax_cross_entropy_grad", "dloss", dloss, 1)
    _check_labels(<const int64_t*>data(labels), n, classes)
    cdef void* pdz = data(out)
    cdef void* pz = data(logits)
    cdef const int64_t* py = <const int64_t*>data(labels)
    cdef void* pdl = data(dloss)
    cdef bint single = is_single(out)
    if n * classes >= RELEASE_GIL_MIN:
        with nogil:
            _cross_entropy_grad_typed(single, pdz, pz, py, n, classes, pdl)
    else:
        _cross_entropy_grad_typed(single, pdz, pz, py, n, classes, pdl)


cdef int _store(cnp.ndarray out, double value) except -1:
    """Write a scalar result into the 0-d (one element) output."""
    if is_single(out):
        (<float*>data(out))[0] = <float>value
    else:
        (<double*>data(out))[0] = value
    return 0


# ----------------------------------------------------------------------------------------------------------------
# elementwise losses: mse and binary cross-entropy

cdef enum Elementwise:
    MSE, BCE

cdef inline double _term(int loss, real p, real t) noexcept nogil:
    cdef real d
    if loss == MSE:
        d = p - t
        return d * d
    return (p if p > 0 else <real>0) - p * t + log1p(exp(-fabs(<double>p)))


cdef double _mean_loss(int loss, const real* p, const real* t, Py_ssize_t n) noexcept nogil:
    cdef double total = 0
    cdef Py_ssize_t i
    if n >= (PARALLEL_MIN if loss == MSE else PARALLEL_MIN_COSTLY):
        for i in prange(n, schedule="static"):
            total += _term(loss, p[i], t[i])
    else:
        for i in range(n):
            total += _term(loss, p[i], t[i])
    return total / n


cdef double _mean_loss_typed(bint single, int loss, const void* p, const void* t, Py_ssize_t n) noexcept nogil:
    if single:
        return _mean_loss(loss, <const float*>p, <const float*>t, n)
    return _mean_loss(loss, <const double*>p, <const double*>t, n)


cdef int _run_mean_loss(int loss, str kernel, cnp.ndarray out, cnp.ndarray p, cnp.ndarray t) except -1:
    if not same_floats(out, p, t):
        require_floats(kernel, out, (p, t))
    cdef Py_ssize_t n = size(p)
    require_size(kernel, "the target", t, n)
    require_size(kernel, "the output", out, 1)
    cdef void* pp = data(p)
    cdef void* pt = data(t)
    cdef double value
    cdef bint single = is_single(out)
    if n >= RELEASE_GIL_MIN:
        with nogil:
            value = _mean_loss_typed(single, loss, pp, pt, n)
    else:
        value = _mean_loss_typed(single, loss, pp, pt, n)
    return _store(out, value)


def mse(cnp.ndarray out, cnp.ndarray pred, cnp.ndarray target):
    """out = mean (pred − target)²"""
    _run_mean_loss(MSE, "mse", out, pred, target)


def binary_cross_entropy_with_logits(cnp.ndarray out, cnp.ndarray z, cnp.ndarray t):
    """out = mean [max(z, 0) − z·t + log(1 + e^(−|z|))]"""
    _run_mean_loss(BCE, "binary_cross_entropy_with_logits", out, z, t)


cdef enum Gradient:
    MSE_GRAD, BCE_LOGITS, BCE_TARGETS

cdef void _loss_grad_run(int grad, real* out, const real* p, const real* t, real scale, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i
    cdef real e
    if grad == MSE_GRAD:
        for i in range(n):
            out[i] = <real>2 * (p[i] - t[i]) * scale
    elif grad == BCE_TARGETS:
        for i in range(n):
            out[i] = -p[i] * scale
    else:
        for i in range(n):
            e = _exp(-fabs(p[i]))
            out[i] = ((<real>1 / (<real>1 + e) if p[i] >= 0 else e / (<real>1 + e)) - t[i]) * scale


cdef void _loss_grad(int grad, real* out, const real* p, const real* t, real scale, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t chunk, chunks, start, per_chunk = 4096
    if n >= (PARALLEL_MIN_COSTLY if grad == BCE_LOGITS else PARALLEL_MIN):
        chunks = (n + per_chunk - 1) // per_chunk
        for chunk in prange(chunks, schedule="static"):
            start = chunk * per_chunk
            _loss_grad_run(grad, out + start, p + start, t + start, scale, min(per_chunk, n - start))
    else:
        _loss_grad_run(grad, out, p, t, scale, n)


cdef void _loss_grad_typed(bint single, int grad, void* out, const void* p, const void* t, const void* dloss,
                           Py_ssize_t n) noexcept nogil:
    if single:
        _loss_grad(grad, <float*>out, <const float*>p, <const float*>t, (<const float*>dloss)[0] / <float>n, n)
    else:
        _loss_grad(grad, <double*>out, <const double*>p, <const double*>t, (<const double*>dloss)[0] / <double>n, n)


cdef int _run_loss_grad(int grad, str kernel, cnp.ndarray out, cnp.ndarray dloss, cnp.ndarray p,
                        cnp.ndarray t) except -1:
    if not same_floats(out, dloss, p, t):
        require_floats(kernel, out, (dloss, p, t))
    cdef Py_ssize_t n = size(out)
    require_size(kernel, "dloss", dloss, 1)
    require_size(kernel, "input 2", p, n)
    require_size(kernel, "input 3", t, n)
    cdef void* po = data(out)
    cdef void* pp = data(p)
    cdef void* pt = data(t)
    cdef void* pdl = data(dloss)
    cdef bint single = is_single(out)
    if n >= RELEASE_GIL_MIN:
        with nogil:
            _loss_grad_typed(single, grad, po, pp, pt, pdl, n)
    else:
        _loss_grad_typed(single, grad, po, pp, pt, pdl, n)
    return 0


def mse_grad(cnp.ndarray out, cnp.ndarray dloss, cnp.ndarray pred, cnp.ndarray target):
    """out = dloss · 2(pred − target) / M"""
    _run_loss_grad(MSE_GRAD, "mse_grad", out, dloss, pred, target)


def bce_grad(cnp.ndarray out, cnp.ndarray dloss, cnp.ndarray z, cnp.ndarray t, *, str wrt):
    """wrt="logits": out = dloss · (σ(z) − t) / M;  wrt="targets": out = dloss · (−z) / M"""
    if wrt not in ("logits", "targets"):
        raise ValueError(f"cpu.bce_grad: wrt must be 'logits' or 'targets', got {wrt!r}")
    _run_loss_grad(BCE_LOGITS if wrt == "logits" else BCE_TARGETS, "bce_grad", out, dloss, z, t)


KERNELS = {SoftmaxCrossEntropy: softmax_cross_entropy,
           SoftmaxCrossEntropyGrad: softmax_cross_entropy_grad,
           Mse: mse, MseGrad: mse_grad,
           BinaryCrossEntropyWithLogits: binary_cross_entropy_with_logits, BceGrad: bce_grad}
