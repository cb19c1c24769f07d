# cython: language_level=3
"""Scalar math over the fused type `real`: each calls libm's float version for float and its double version for
double, so a float kernel never computes in double. Shared by activations.pyx, losses.pyx and the generated
pointwise.pyx (whose formulas call them by the formula language's names: exp → _exp, maximum → _maximum)."""
from libc cimport math as cm

from graphnet._ext._buffers cimport real


cdef inline real _exp(real x) noexcept nogil:
    return cm.expf(x) if real is float else cm.exp(x)

cdef inline real _expm1(real x) noexcept nogil:
    return cm.expm1f(x) if real is float else cm.expm1(x)

cdef inline real _log1p(real x) noexcept nogil:
    return cm.log1pf(x) if real is float else cm.log1p(x)

cdef inline real _tanh(real x) noexcept nogil:
    return cm.tanhf(x) if real is float else cm.tanh(x)

cdef inline real _erf(real x) noexcept nogil:
    return cm.erff(x) if real is float else cm.erf(x)

cdef inline real _sqrt(real x) noexcept nogil:
    return cm.sqrtf(x) if real is float else cm.sqrt(x)

cdef inline real _abs(real x) noexcept nogil:
    return cm.fabs(x)

cdef inline real _square(real x) noexcept nogil:
    return x * x

cdef inline real _maximum(real a, real b) noexcept nogil:
    """NumPy's maximum: NaN if either is NaN (| rather than or: no branch, so loops vectorize)."""
    return a if ((a != a) | (a > b)) else b

cdef inline real _minimum(real a, real b) noexcept nogil:
    return a if ((a != a) | (a < b)) else b

cdef inline real _sigmoid(real x) noexcept nogil:
    """1/(1 + e^−x) for x ≥ 0 and e^x/(1 + e^x) for x < 0: e^−|x| never overflows."""
    cdef real e = _exp(-cm.fabs(x))
    return <real>1 / (<real>1 + e) if x >= 0 else e / (<real>1 + e)
