"""The pointwise ops (graphnet/ops/formulas.py) on the GPU: each formula becomes a Numba device function, once
for float32 and once for float64, and a map kernel runs it with one thread per element (grid-stride).

The device function's source is the formula written out by graphnet/ops/formula_code.py, e.g. for softplus
(float32):

    def softplus(a, b, c, p0, p1):
        return (_maximum(a, T(0.0)) + math.log1p(math.exp((-abs(a)))))

with T = numba.float32: every number is a float32 constant, so a float32 kernel never computes in float64 (the PTX
check enforces it). Inputs beyond the formula's (b, c) and parameters beyond its own (p0, p1) are passed but
unused, so that one map kernel per arity serves every formula.
"""
import math

import numba
import numpy as np
from numba import cuda

from ...ops.formula_code import NumbaWriter, expression, kernel_inputs, kernels_of, renaming
from ...ops.formulas import FORMULAS
from ...ops.pointwise import OPS
from .launch import BLOCK, BoundLaunch, flat, grid_for, step_kernel
from .registry import FLOAT_DTYPES, register

TYPES = {np.dtype("float32"): numba.float32, np.dtype("float64"): numba.float64}


def helpers(T):
    """The device functions the formulas call, for the float type T."""

    @cuda.jit(device=True)
    def _maximum(a, b):
        """NumPy's maximum: NaN if either is NaN."""
        return a if (a != a or a > b) else b

    @cuda.jit(device=True)
    def _minimum(a, b):
        return a if (a != a or a < b) else b

    @cuda.jit(device=True)
    def _square(a):
        return a * a

    @cuda.jit(device=True)
    def _sigmoid(x):
        """1/(1 + e^−x) for x ≥ 0 and e^x/(1 + e^x) for x < 0: e^−|x| never overflows."""
        e = math.exp(-abs(x))
        return T(1.0) / (T(1.0) + e) if x >= T(0.0) else e / (T(1.0) + e)

    return {"_maximum": _maximum, "_minimum": _minimum, "_square": _square, "_sigmoid": _sigmoid}


def device_function(formula, which, T, namespace):
    """The formula's value or gradient as a device function f(a, b, c, p0, p1) over scalars of type T."""
    name = formula.name if which == "y" else f"{formula.name}_grad"
    body = expression(formula, which, NumbaWriter(renaming(formula, which, ["a", "b", "c"], ["p0", "p1"])))
    scope = dict(namespace, T=T, math=math)
    exec(f"def {name}(a, b, c, p0, p1):\n    return {body}\n", scope)
    return cuda.jit(device=True)(scope[name])


def map_kernel(f, arity):
    """out[i] = f(a[i], b[i], c[i], p0, p1) for the formula's `arity` inputs."""
    if arity == 1:
        @cuda.jit
        def map1(out, a, p0, p1):
            for i in range(cuda.grid(1), out.size, cuda.gridsize(1)):
                out[i] = f(a[i], a[i], a[i], p0, p1)
        return map1
    if arity == 2:
        @cuda.jit
        def map2(out, a, b, p0, p1):
            for i in range(cuda.grid(1), out.size, cuda.gridsize(1)):
                out[i] = f(a[i], b[i], b[i], p0, p1)
        return map2

    @cuda.jit
    def map3(out, a, b, c, p0, p1):
        for i in range(cuda.grid(1), out.size, cuda.gridsize(1)):
            out[i] = f(a[i], b[i], c[i], p0, p1)
    return map3


def step(formula, which, name):
    """The schedule's kernel fn(out, *arrays, **params) for one formula, its map kernels made per float type."""
    arity = len(kernel_inputs(formula, which))
    kernels = {dtype: map_kernel(device_function(formula, which, T, helpers(T)), arity)
               for dtype, T in TYPES.items()}
    register(f"{name}.map", kernels.__getitem__, lambda f: (f[::1],) * (arity + 1) + (f, f))

    def bind(out, *arrays, **params):
        constants = [out.dtype.type(params[p]) for p in formula.params]
        constants += [out.dtype.type(0)] * (2 - len(constants))
        return [BoundLaunch(kernels[np.dtype(out.dtype)], grid_for(out.size), BLOCK,
                            [flat(out)] + [flat(a) for a in arrays] + constants)]

    bind.__name__ = name
    bind.__doc__ = f"out = {formula.y if which == 'y' else formula.dx}"
    return step_kernel(bind)


assert set(TYPES) == set(FLOAT_DTYPES)
KERNELS = {OPS[f.name][0 if which == "y" else 1]: step(f, which, name) for f, which, name in kernels_of(FORMULAS)}
