"""Launching Numba CUDA kernels: grid sizes, and launches bound once and replayed on every run.

A compiled program calls the same kernels on the same buffers run after run; only the numbers inside the buffers
change. So everything about a launch except the GPU's work can be done once, when a step first runs:

    kernel[grid, block](*args)      Numba's dispatcher, on every call: type each argument, find the compiled
                                    overload, pack the arguments into a parameter block, launch.
    BoundLaunch(kernel, grid, block, args)
                                    the first call goes through the dispatcher (compiling the kernel if needed);
                                    then the parameter block it packed is kept, and every later call is a single
                                    cuLaunchKernel with it: no typing, no packing.

Under Numba's CUDA simulator (NUMBA_ENABLE_CUDASIM=1), and wherever the driver binding is missing, a BoundLaunch
simply calls the dispatcher every time. `benchmarks/bench_cuda.py` measures the cost of both paths.

A step of the schedule is a *binder* `bind(out, *inputs, **params) -> [launch, ...]` wrapped by `step_kernel`:
the launches are bound on the first call and kept in the step's params (`params["bound"]`, put there by the
backend's `specialize`), so a later run only replays them.
"""
import ctypes
import math

import numba
import numpy as np

SIMULATED = bool(numba.config.ENABLE_CUDASIM)

# Small layers launch small grids on purpose; Numba would warn about each one.
numba.config.CUDA_LOW_OCCUPANCY_WARNINGS = False

# Threads per block of the one-dimensional kernels (elementwise, reductions). The simulator runs each thread as a
# Python thread, so there it uses fewer: the same code, a shallower reduction tree.
BLOCK = 64 if SIMULATED else 256
MAX_GRID = 65535 * 32      # a grid-stride loop covers whatever the grid does not


def grid_for(count, block=BLOCK):
    """Blocks for `count` threads of `block` each (at least one block, at most MAX_GRID)."""
    return max(1, min(MAX_GRID, math.ceil(count / block)))


def shape_of(array):
    """An array's shape as a tuple of ints (the simulator's arrays have their own shape type)."""
    return tuple(int(d) for d in array.shape)


def flat(array):
    """A contiguous array as one axis (a view: kernels index it with their own formulas)."""
    return array.reshape(int(np.prod(shape_of(array), dtype=np.int64)))


# ---------------------------------------------------------------------------------------------------------------
# the fast path: one cuLaunchKernel with a parameter block packed once

try:  # the driver binding numba-cuda itself uses; absent under the simulator is fine
    from cuda.bindings import driver as _driver
except ImportError:  # pragma: no cover - depends on the installation
    _driver = None

FAST_LAUNCH = (not SIMULATED) and _driver is not None
NO_FAST_LAUNCH = ("the simulator has no driver to launch with" if SIMULATED
                  else "cuda.bindings (the driver binding) is not importable")


def _as_ctype(value):
    """One kernel parameter as the ctypes object whose bytes the driver copies."""
    if isinstance(value, ctypes._SimpleCData):
        return value
    if isinstance(value, (bool, np.bool_)):
        return ctypes.c_bool(bool(value))
    if isinstance(value, (int, np.integer)):
        return ctypes.c_int64(int(value))      # pointers, sizes, shapes and strides: 64-bit (intptr_t)
    raise TypeError(f"cannot pack kernel parameter {value!r}")


class _PackedLaunch:
    """A compiled kernel, its launch geometry and its parameters, as cuLaunchKernel takes them."""

    def __init__(self, compiled, grid, block, args):
        self.function = _driver.CUfunction(int(compiled._codelibrary.get_cufunc().handle))
        self.grid, self.block = grid, block
        self.per_arg = []                      # the ctypes objects of each argument, so a scalar can change
        for ty, value in zip(compiled.argument_types, args):
            packed, writebacks = [], []
            compiled._prepare_args(ty, value, 0, writebacks, packed)
            if writebacks:
                raise TypeError("an argument needs copying to the device")
            self.per_arg.append([_as_ctype(v) for v in packed])
        self.values = [v for values in self.per_arg for v in values]
        self.pointers = (ctypes.c_void_p * len(self.values))(*[ctypes.addressof(v) for v in self.values])
        self.address = ctypes.addressof(self.pointers)

    def set_scalar(self, index, value):
        (cvalue,) = self.per_arg[index]
        cvalue.value = value

    def __call__(self):
        (gx, gy, gz), (bx, by, bz) = self.grid, self.block
        (error,) = _driver.cuLaunchKernel(self.function, gx, gy, gz, bx, by, bz, 0, 0, self.address, 0)
        if error != _driver.CUresult.CUDA_SUCCESS:
            raise RuntimeError(f"cuLaunchKernel failed: {error!r}")


def _dim3(dims):
    dims = (dims,) if isinstance(dims, int) else tuple(dims)
    return tuple(int(d) for d in dims) + (1,) * (3 - len(dims))


class BoundLaunch:
    """kernel[grid, block](*args), bound once; call it to launch. `set_scalar` changes a scalar argument."""

    def __init__(self, kernel, grid, block, args):
        self.kernel = kernel
        self.grid, self.block = _dim3(grid), _dim3(block)
        self.args = list(args)
        self.configured = kernel[self.grid, self.block]
        self.packed = None
        self.why_not_packed = "not launched yet"

    def set_scalar(self, index, value):
        self.args[index] = value
        if self.packed is not None:
            self.packed.set_scalar(index, value)

    def __call__(self):
        if self.packed is not None:
            self.packed()
            return
        self.configured(*self.args)
        if FAST_LAUNCH:
            self.packed = self._pack()
        else:
            self.why_not_packed = NO_FAST_LAUNCH

    def _pack(self):
        """The parameter block of the overload the dispatcher just ran, or None to keep using the dispatcher
        (the reason is kept in `why_not_packed`)."""
        if any(isinstance(a, np.ndarray) for a in self.args):
            self.why_not_packed = "a host array among the arguments: the dispatcher copies it each time"
            return None
        argtypes = tuple(self.kernel.typeof_pyval(a) for a in self.args)
        compiled = self.kernel.overloads.get(argtypes)
        if compiled is None or getattr(compiled, "debug", False) or getattr(compiled, "cooperative", False):
            self.why_not_packed = "no plain compiled overload for these argument types"
            return None
        try:
            packed = _PackedLaunch(compiled, self.grid, self.block, self.args)
        except (TypeError, AttributeError, NotImplementedError) as error:
            self.why_not_packed = f"{type(error).__name__}: {error}"
            return None
        self.why_not_packed = None
        return packed


class PerRun:
    """A launch whose scalar argument `index` is recomputed by `value()` before every launch (dropout's key)."""

    def __init__(self, launch, index, value):
        self.launch, self.index, self.value = launch, index, value

    def __call__(self):
        self.launch.set_scalar(self.index, self.value())
        self.launch()


# ---------------------------------------------------------------------------------------------------------------
# schedule steps

class Bound:
    """The launches of one step of the schedule, bound to the step's buffers on its first run."""

    def __init__(self):
        self.buffers = None
        self.launches = []

    def matches(self, buffers):
        return self.buffers is not None and len(buffers) == len(self.buffers) and all(
            a is b for a, b in zip(buffers, self.buffers))


def step_kernel(bind):
    """A kernel `fn(out, *inputs, **params)` for the schedule from `bind(out, *inputs, **params) -> [launch]`.

    The launches are bound on the first call with these buffers and replayed on later calls."""

    def kernel(out, *inputs, bound=None, **params):
        buffers = (out,) + inputs
        if bound is None:                      # called outside a compiled program: bind for this call only
            bound = Bound()
        if not bound.matches(buffers):
            bound.launches = bind(out, *inputs, **params)
            bound.buffers = buffers
        for launch in bound.launches:
            launch()

    kernel.__name__ = bind.__name__
    kernel.__qualname__ = bind.__qualname__
    kernel.__doc__ = bind.__doc__
    kernel.bind = bind
    return kernel
