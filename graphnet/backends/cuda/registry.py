"""The list of every device kernel in graphnet/backends/cuda, with the argument types it is compiled for.

Kernels compile lazily, for the types of the arrays they are first launched with. The PTX build check
(tests/test_cuda_ptx.py) compiles each one ahead of time instead, with `numba.cuda.compile_ptx`, for float32 and
float64, and assembles the PTX with `ptxas`: that catches what Numba's simulator cannot (a shared array whose size
is not a compile-time constant, Python that does not compile for the GPU).

    register(name, kernel_for, signature, float64=None)
        kernel_for(dtype) -> the kernel (a @cuda.jit dispatcher) used for arrays of that NumPy dtype
        signature(f)      -> its argument types, given f, the Numba type of the float dtype (float32 or float64)
        float64           why the kernel computes in float64 even for float32 data (sums accumulated in float64,
                          a float64 workspace); None — the default — means it must not: the PTX check fails a
                          float32 build with float64 arithmetic in it, which a stray Python number causes
                          (`1 - y` is float64 in Numba when y is float32)
"""
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class DeviceKernel:
    name: str
    kernel_for: object
    signature: object
    float64: str = None


DEVICE_KERNELS = []


def register(name, kernel_for, signature, float64=None):
    DEVICE_KERNELS.append(DeviceKernel(name, kernel_for, signature, float64))


def register_generic(name, kernel, signature, float64=None):
    """A kernel that Numba specializes for every dtype by itself."""
    register(name, lambda dtype: kernel, signature, float64)


FLOAT_DTYPES = (np.dtype("float32"), np.dtype("float64"))
