"""Elementwise kernels: one thread per output element, in a grid-stride loop.

    map1:  out[i] = f(x[i], p)                       unary ops and activations (p: a constant such as the slope)
    map2:  out[i] = f(a[i], b[i], p)                 equal shapes: activation gradients, add/mul/... without broadcast
    map3:  out[i] = f(a[i], b[i], c[i], p)           equal shapes, three inputs (elu_grad)
    broadcast2 / broadcast3: the same with NumPy broadcasting — output position i = (c_0, ..., c_5) reads
           a[Σ c_k · sa_k] and b[Σ c_k · sb_k], where sa_k = 0 along the axes a is broadcast over (see layout.py)
    scaled_step: out[i] = u[i] − a·x[i]        the fused mul → sub → assign of a gradient-descent update

The constant p arrives in the output's dtype, so float32 kernels compute in float32 as NumPy does. A number
written in a kernel is a Python int or float, which Numba types as int64 or float64: `1 - y` or `dy * 0` with a
float32 y would compute in float64 (the PTX check refuses that), so kernels take their constants through p, or
multiply by a boolean (`dy * (a >= b)` keeps dy's type).
"""
import math

import numpy as np
from numba import cuda

from .launch import BLOCK, SIMULATED, BoundLaunch, flat, grid_for, step_kernel, shape_of
from .layout import MAX_DIMS, broadcast_layout
from .registry import register_generic
from ...ops.elementwise import Add, Div, Exp, Log, Maximum, Minimum, Mul, Neg, Pow, SelectGrad, Sqrt, Sub
from ...ops.fused import SgdUpdate
from ...ops.dtypes import Cast


# ---------------------------------------------------------------------------------------------------------------
# kernel factories

def map1_kernel(f):
    @cuda.jit
    def map1(out, x, p):
        for i in range(cuda.grid(1), out.size, cuda.gridsize(1)):
            out[i] = f(x[i], p)
    return map1


def map2_kernel(f):
    @cuda.jit
    def map2(out, a, b, p):
        for i in range(cuda.grid(1), out.size, cuda.gridsize(1)):
            out[i] = f(a[i], b[i], p)
    return map2


def map3_kernel(f):
    @cuda.jit
    def map3(out, a, b, c, p):
        for i in range(cuda.grid(1), out.size, cuda.gridsize(1)):
            out[i] = f(a[i], b[i], c[i], p)
    return map3


@cuda.jit(device=True)
def broadcast_offsets2(i, sizes, sa, sb):
    """The offsets into a and b of output position i (row-major over `sizes`)."""
    rest, oa, ob = i, 0, 0
    for k in range(MAX_DIMS - 1, -1, -1):
        if sizes[k] > 1:
            c = rest % sizes[k]
            rest //= sizes[k]
            oa += c * sa[k]
            ob += c * sb[k]
    return oa, ob


@cuda.jit(device=True)
def broadcast_offsets3(i, sizes, sa, sb, sc):
    rest, oa, ob, oc = i, 0, 0, 0
    for k in range(MAX_DIMS - 1, -1, -1):
        if sizes[k] > 1:
            c = rest % sizes[k]
            rest //= sizes[k]
            oa += c * sa[k]
            ob += c * sb[k]
            oc += c * sc[k]
    return oa, ob, oc


def broadcast2_kernel(f):
    @cuda.jit
    def broadcast2(out, a, b, p, sizes, sa, sb):
        for i in range(cuda.grid(1), out.size, cuda.gridsize(1)):
            oa, ob = broadcast_offsets2(i, sizes, sa, sb)
            out[i] = f(a[oa], b[ob], p)
    return broadcast2


def broadcast3_kernel(f):
    @cuda.jit
    def broadcast3(out, a, b, c, p, sizes, sa, sb, sc):
        for i in range(cuda.grid(1), out.size, cuda.gridsize(1)):
            oa, ob, oc = broadcast_offsets3(i, sizes, sa, sb, sc)
            out[i] = f(a[oa], b[ob], c[oc], p)
    return broadcast3


# ---------------------------------------------------------------------------------------------------------------
# the functions applied per element

@cuda.jit(device=True)
def f_add(a, b, p):
    return a + b


@cuda.jit(device=True)
def f_sub(a, b, p):
    return a - b


@cuda.jit(device=True)
def f_mul(a, b, p):
    return a * b


@cuda.jit(device=True)
def f_div(a, b, p):
    return a / b


@cuda.jit(device=True)
def f_maximum(a, b, p):
    """NumPy's maximum: NaN if either is NaN."""
    if a != a or a > b:
        return a
    return b


@cuda.jit(device=True)
def f_minimum(a, b, p):
    if a != a or a < b:
        return a
    return b


@cuda.jit(device=True)
def f_neg(x, p):
    return -x


# Python's math raises for sqrt(−1) and log(0), where the GPU (like NumPy) returns NaN and −∞; under the simulator
# the kernels run as Python, so there they call NumPy's functions.
sqrt, log = (np.sqrt, np.log) if SIMULATED else (math.sqrt, math.log)


@cuda.jit(device=True)
def f_exp(x, p):
    return math.exp(x)


@cuda.jit(device=True)
def f_log(x, p):
    return log(x)


@cuda.jit(device=True)
def f_sqrt(x, p):
    return sqrt(x)


@cuda.jit(device=True)
def f_pow(x, p):
    """x ** p; x·x exactly for p = 2 and √x for p = 0.5, as NumPy computes them (C's pow(−∞, 0.5) is +∞, √−∞ is
    NaN)."""
    if p == 2:
        return x * x
    if p == 0.5:
        return sqrt(x)
    return x ** p


@cuda.jit(device=True)
def f_identity(x, p):
    """x, stored in the output's dtype (cast)"""
    return x


# select_grad: dy where the picked input is the one maximum (minimum) returned — the first where a >= b (a <= b) or
# a is NaN (a != a), else the second. Ties go to the first input; a NaN result's gradient goes to the NaN. A product
# with a boolean, as in the reference: NaN or ±inf times 0 is NaN.
@cuda.jit(device=True)
def f_pick_max_first(dy, a, b, p):
    return dy * (a >= b or a != a)


@cuda.jit(device=True)
def f_pick_max_second(dy, a, b, p):
    return dy * (not (a >= b or a != a))


@cuda.jit(device=True)
def f_pick_min_first(dy, a, b, p):
    return dy * (a <= b or a != a)


@cuda.jit(device=True)
def f_pick_min_second(dy, a, b, p):
    return dy * (not (a <= b or a != a))


# ---------------------------------------------------------------------------------------------------------------
# binders: the launches of one step

def launch_map(kernel, out, inputs, p):
    n = out.size
    return BoundLaunch(kernel, grid_for(n), BLOCK, [flat(out)] + [flat(x) for x in inputs] + [p])


def constant_like(out, value):
    """A Python number as a scalar of out's dtype, so float32 kernels stay float32."""
    return out.dtype.type(value)


class Pointwise:
    """An op over equal shapes or broadcast shapes: `map` kernel when shapes agree, else `broadcast`."""

    def __init__(self, name, f, arity):
        self.name = name
        self.map = {1: map1_kernel, 2: map2_kernel, 3: map3_kernel}[arity](f)
        self.broadcast = {2: broadcast2_kernel, 3: broadcast3_kernel}[arity](f) if arity > 1 else None
        register_generic(f"{name}.map", self.map, _map_signature(arity))
        if self.broadcast is not None:
            register_generic(f"{name}.broadcast", self.broadcast, _broadcast_signature(arity))

    def launches(self, out, inputs, p=0.0):
        p = constant_like(out, p)
        if all(shape_of(x) == shape_of(out) for x in inputs) or self.broadcast is None:
            return [launch_map(self.map, out, inputs, p)]
        sizes, strides = broadcast_layout(shape_of(out), [shape_of(x) for x in inputs])
        args = [flat(out)] + [flat(x) for x in inputs] + [p, sizes] + strides
        return [BoundLaunch(self.broadcast, grid_for(out.size), BLOCK, args)]


def _map_signature(arity):
    return lambda f: (f[::1],) * (arity + 1) + (f,)


def _broadcast_signature(arity):
    from numba import types
    index = types.UniTuple(types.int64, MAX_DIMS)
    return lambda f: (f[::1],) * (arity + 1) + (f, index) + (index,) * arity


ADD = Pointwise("add", f_add, 2)
SUB = Pointwise("sub", f_sub, 2)
MUL = Pointwise("mul", f_mul, 2)
DIV = Pointwise("div", f_div, 2)
MAXIMUM = Pointwise("maximum", f_maximum, 2)
MINIMUM = Pointwise("minimum", f_minimum, 2)
NEG = Pointwise("neg", f_neg, 1)
EXP = Pointwise("exp", f_exp, 1)
LOG = Pointwise("log", f_log, 1)
SQRT = Pointwise("sqrt", f_sqrt, 1)
POW = Pointwise("pow", f_pow, 1)
CAST = Pointwise("cast", f_identity, 1)
PICKS = {
    "max_first": Pointwise("select_grad[max_first]", f_pick_max_first, 3),
    "max_second": Pointwise("select_grad[max_second]", f_pick_max_second, 3),
    "min_first": Pointwise("select_grad[min_first]", f_pick_min_first, 3),
    "min_second": Pointwise("select_grad[min_second]", f_pick_min_second, 3),
}


def binary(op):
    def bind(out, a, b):
        return op.launches(out, [a, b])
    bind.__name__ = op.name
    bind.__doc__ = f"out = {op.name}(a, b), broadcasting"
    return step_kernel(bind)


def unary(op):
    def bind(out, x):
        return op.launches(out, [x])
    bind.__name__ = op.name
    bind.__doc__ = f"out = {op.name}(x)"
    return step_kernel(bind)


@step_kernel
def pow(out, x, *, exponent):
    """out = x ** exponent"""
    return POW.launches(out, [x], exponent)


@step_kernel
def select_grad(out, dy, a, b, *, pick):
    """dy where the picked input is the max (or min) of the two; ties go to the first input."""
    return PICKS[pick].launches(out, [dy, a, b])


@cuda.jit
def scaled_step(out, scale, x, u):
    a = scale[0]
    for i in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        out[i] = u[i] - a * x[i]


register_generic("scaled_step", scaled_step, lambda f: (f[::1],) * 4)


@step_kernel
def sgd_update(out, scale, x, u, variable):
    """variable ← u − scale·x, with out the variable's storage: the fused mul(scale, x) → sub(u, ·) →
    assign(variable, ·) of w ← w − η·g; scale is one number (a learning rate that may change between runs),
    first whichever side of the mul it was on (SgdUpdate.kernel_inputs). The GPU computes u − scale·x as one fused
    multiply-add, rounding once where the separate mul and sub round twice: the last bit may differ from theirs."""
    return [BoundLaunch(scaled_step, grid_for(out.size), BLOCK, [flat(out), flat(scale), flat(x), flat(u)])]


KERNELS = {
    Add: binary(ADD), Sub: binary(SUB), Mul: binary(MUL), Div: binary(DIV), Maximum: binary(MAXIMUM),
    Minimum: binary(MINIMUM), Neg: unary(NEG), Exp: unary(EXP), Log: unary(LOG), Sqrt: unary(SQRT),
    Pow: pow, SelectGrad: select_grad, SgdUpdate: sgd_update, Cast: unary(CAST),
}
