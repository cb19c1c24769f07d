# cython: language_level=3
"""Reductions along a run of values shared by several kernel modules: the sum in double (reduce.pyx,
regularization.pyx) and the NaN-propagating maximum (activations.pyx, losses.pyx)."""
from graphnet._ext._buffers cimport real

cdef enum:
    SUM_LANES = 16             # independent partial sums along a run


cdef inline double run_sum(const real* x, Py_ssize_t n) noexcept nogil:
    """Σ x[0:n] in double, in SUM_LANES independent partial sums (one long chain of dependent additions would run
    at one addition per FP-add latency; independent lanes let the compiler use SIMD)."""
    cdef double lanes[SUM_LANES]
    cdef double total = 0
    cdef Py_ssize_t j, lane, whole = n - n % SUM_LANES
    for lane in range(SUM_LANES):
        lanes[lane] = 0
    for j in range(whole // SUM_LANES):
        for lane in range(SUM_LANES):
            lanes[lane] += x[j * SUM_LANES + lane]
    for lane in range(SUM_LANES):
        total += lanes[lane]
    for j in range(whole, n):
        total += x[j]
    return total


cdef inline real row_max(const real* x, Py_ssize_t length, Py_ssize_t stride) noexcept nogil:
    """max of x[j·stride] for j < length, NaN if any element is NaN (like np.max)."""
    cdef real m = x[0], v
    cdef Py_ssize_t j
    for j in range(1, length):
        v = x[j * stride]
        if v > m or v != v:
            m = v
    return m
