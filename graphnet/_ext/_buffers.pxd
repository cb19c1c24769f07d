# cython: language_level=3
"""What every kernel module of the cpu backend shares: reading NumPy buffers as C pointers, when to go parallel,
and when to let go of the GIL.

Pointers, not typed memoryviews, at the kernel boundary. A graph tensor can have any rank, and a typed memoryview
has a fixed one; acquiring one also costs about 0.1 µs per argument (measured on the 2-core EPYC: a 3-array call
took 0.29 µs with `float[::1]` arguments, 0.40 µs with fused-type ones, 0.07 µs with data pointers), and on a
small network that is most of a kernel's time. Every buffer a compiled program hands a kernel is a C-contiguous
view of its arena or of a variable's storage, so a data pointer plus the shape the plan was made for is all the
C loops need; `is_float_buffer` and `matches` check that promise on every call (a few nanoseconds). Behind the
boundary the loops are `nogil` cdef functions over the fused type `real` (float or double), compiled once per type.

A kernel runs its loop without the GIL (so other Python threads may run) only above RELEASE_GIL_MIN elements, and
shares it between OpenMP threads only above PARALLEL_MIN (fewer for costly elements): below those sizes waking
threads or swapping the GIL costs more than the loop.
"""
cimport numpy as cnp

ctypedef fused real:                   # the element type of every C loop: each is compiled once per type
    float
    double

cdef enum:
    MAX_DIMS = 64                      # NumPy's own limit on the number of axes (NPY_MAXDIMS)
    PARALLEL_MIN = 32768               # elements a cheap loop (add, copy, relu) needs before OpenMP pays off
    PARALLEL_MIN_COSTLY = 4096         # ... a loop that calls exp/log/tanh per element
    RELEASE_GIL_MIN = 16384            # elements below which a kernel keeps the GIL: releasing and taking it
                                       # back costs ~0.08 µs, more than a small loop could lend another thread


cdef inline bint is_float_buffer(cnp.ndarray array) noexcept:
    """A C-contiguous float32 or float64 array: what the C loops read and write."""
    cdef int kind = cnp.PyArray_TYPE(array)
    return (kind == cnp.NPY_FLOAT32 or kind == cnp.NPY_FLOAT64) and cnp.PyArray_IS_C_CONTIGUOUS(array)


cdef inline bint matches(cnp.ndarray out, cnp.ndarray other) noexcept:
    """`other` is C-contiguous and holds the same element type as `out`."""
    return cnp.PyArray_TYPE(other) == cnp.PyArray_TYPE(out) and cnp.PyArray_IS_C_CONTIGUOUS(other)


cdef inline bint same_floats(cnp.ndarray out, cnp.ndarray a, cnp.ndarray b=None, cnp.ndarray c=None) noexcept:
    """`out` is a float buffer and every given input matches it (the fast check; `require_floats` explains)."""
    return (is_float_buffer(out) and matches(out, a) and (b is None or matches(out, b))
            and (c is None or matches(out, c)))


cdef inline bint is_single(cnp.ndarray array) noexcept:
    return cnp.PyArray_TYPE(array) == cnp.NPY_FLOAT32


cdef inline void* data(cnp.ndarray array) noexcept:
    return cnp.PyArray_DATA(array)


cdef inline Py_ssize_t size(cnp.ndarray array) noexcept:
    return cnp.PyArray_SIZE(array)


cdef inline tuple shape_of(cnp.ndarray array):
    """The shape as a Python tuple (on a typed ndarray, `.shape` is the C array of sizes)."""
    return (<object>array).shape


cdef inline int require_floats(str kernel, cnp.ndarray out, tuple inputs) except -1:
    """Raise unless `out` and every input are C-contiguous arrays of one float type (float32 or float64)."""
    cdef cnp.ndarray x
    if not is_float_buffer(out):
        raise TypeError(f"cpu.{kernel}: the output must be a C-contiguous float32 or float64 array, got "
                        f"{out.dtype} (contiguous: {out.flags.c_contiguous})")
    for x in inputs:
        if not matches(out, x):
            raise TypeError(f"cpu.{kernel}: every input must be a C-contiguous {out.dtype} array like the output, "
                            f"got {x.dtype} (contiguous: {x.flags.c_contiguous})")
    return 0


cdef inline int require_size(str kernel, str what, cnp.ndarray array, Py_ssize_t expected) except -1:
    """Raise unless `array` has the number of elements the kernel's plan was made for."""
    if cnp.PyArray_SIZE(array) != expected:
        raise ValueError(f"cpu.{kernel}: {what} has shape {shape_of(array)} ({cnp.PyArray_SIZE(array)} elements) but "
                         f"this step was planned for {expected} elements")
    return 0
