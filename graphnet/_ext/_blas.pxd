# cython: language_level=3
"""Row-major GEMM on top of the Fortran (column-major) BLAS that SciPy ships, and who owns the threads.

    C (m×n) = alpha · op(A) (m×k) · op(B) (k×n) + beta · C          op(X) = X or Xᵀ, all row-major

A row-major matrix read as column-major is its transpose, so the row-major product C = op(A)·op(B) is the
column-major product Cᵀ = op(B)ᵀ·op(A)ᵀ: call BLAS with the operands swapped (B first) and m, n swapped:

    sgemm(tb, ta, &n, &m, &k, &alpha, B, &ldb, A, &lda, &beta, C, &ldc)

where lda, ldb, ldc are the row strides (elements from one row to the next) of the row-major matrices.

Threads. Every parallel loop of the cpu backend is an OpenMP loop of ours, and BLAS runs single-threaded inside it
(one GEMM per thread, on that thread's images or rows). A multi-threaded BLAS called from several threads at
once is a disaster (measured on the 2-core EPYC: 64 small GEMMs from two OpenMP threads ran at 1.8 GFLOP/s
instead of 52 when OpenBLAS had 2 threads of its own), and two thread pools spinning on two cores fight even
when they take turns. So a kernel pins BLAS to one thread for its duration (`pin_blas_to_one_thread`) and puts
the count back afterwards (`restore_blas_threads`): other users of SciPy's BLAS in the process see no change.
The setter is found at import through ctypes in the library that scipy.linalg.cython_blas links (OpenBLAS:
`scipy_openblas_set_num_threads` in SciPy's wheels, `openblas_set_num_threads` in a system OpenBLAS); with any
other BLAS nothing can be pinned and `blas_threads_known` is False: kernels then run their BLAS loops on one
OpenMP thread and let BLAS use its own threads.
"""
from scipy.linalg.cython_blas cimport dgemm, sgemm

from graphnet._ext._buffers cimport real

ctypedef int (*get_threads_fn)() noexcept nogil
ctypedef void (*set_threads_fn)(int) noexcept nogil

cdef struct BlasThreads:
    get_threads_fn get            # NULL when the BLAS library offers no thread control we know
    set_threads_fn set


cdef inline void gemm(bint transpose_a, bint transpose_b, int m, int n, int k, real alpha,
                      const real* a, int lda, const real* b, int ldb, real beta, real* c, int ldc) noexcept nogil:
    """Row-major C = alpha·op(A)·op(B) + beta·C (see the module docstring for the operand swap)."""
    cdef char ta = b'T' if transpose_a else b'N'
    cdef char tb = b'T' if transpose_b else b'N'
    if m == 0 or n == 0:
        return
    if real is float:
        sgemm(&tb, &ta, &n, &m, &k, &alpha, <float*>b, &ldb, <float*>a, &lda, &beta, c, &ldc)
    else:
        dgemm(&tb, &ta, &n, &m, &k, &alpha, <double*>b, &ldb, <double*>a, &lda, &beta, c, &ldc)


cdef inline BlasThreads find_blas_threads():
    """The get/set thread-count functions of the BLAS behind scipy.linalg.cython_blas, or NULLs (called at import)."""
    cdef BlasThreads found
    found.get = NULL
    found.set = NULL
    import ctypes
    from scipy.linalg import cython_blas
    try:
        library = ctypes.CDLL(cython_blas.__file__)     # dlsym on it also searches the BLAS it links
    except OSError:
        return found
    for prefix in ("scipy_openblas", "openblas"):
        for suffix in ("", "64_"):
            getter = getattr(library, f"{prefix}_get_num_threads{suffix}", None)
            setter = getattr(library, f"{prefix}_set_num_threads{suffix}", None)
            if getter is not None and setter is not None:
                found.get = <get_threads_fn><size_t>ctypes.cast(getter, ctypes.c_void_p).value
                found.set = <set_threads_fn><size_t>ctypes.cast(setter, ctypes.c_void_p).value
                return found
    return found


cdef inline bint blas_threads_known(const BlasThreads* blas) noexcept nogil:
    return blas.get != NULL and blas.set != NULL


cdef inline int pin_blas_to_one_thread(const BlasThreads* blas) noexcept nogil:
    """Make BLAS compute in the calling thread only; returns the thread count to restore (0: nothing to restore)."""
    cdef int previous
    if not blas_threads_known(blas):
        return 0
    previous = blas.get()
    if previous == 1:
        return 0
    blas.set(1)
    return previous


cdef inline void restore_blas_threads(const BlasThreads* blas, int previous) noexcept nogil:
    if previous > 0:
        blas.set(previous)
