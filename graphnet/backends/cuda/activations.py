"""Softmax along an axis and its gradient (formulas in graphnet/ops/activations.py), and the ReLU device functions
the fused kernels' epilogues apply (gemm.py, conv.py, pool.py). The pointwise ops themselves, relu included, are
made from their formulas in pointwise.py.

Softmax reads whole rows: the tensor is viewed as
(outer, L, inner) with L the softmax axis, element (o, l, i) at o·L·inner + l·inner + i, and one thread owns one
row (o, i):

    m = max_l x[o, l, i]
    softmax:      y = e^(x − m) / Σ_l e^(x − m)
    log_softmax:  y = x − m − log Σ_l e^(x − m)
    softmax_grad:      dx = y · (dy − Σ_l dy·y)
    log_softmax_grad:  dx = dy − e^y · Σ_l dy
Neighbouring threads own neighbouring i, so for softmax over channels the reads coalesce. Sums accumulate in
float64.
"""
import math

from numba import cuda

from .launch import BLOCK, BoundLaunch, flat, grid_for, step_kernel, shape_of
from .registry import register_generic
from ...ops.activations import LogSoftmax, LogSoftmaxGrad, Softmax, SoftmaxGrad

# ---------------------------------------------------------------------------------------------------------------
# the ReLU of fused epilogues


@cuda.jit(device=True)
def f_relu(x, zero):
    """max(x, 0), NaN staying NaN as with np.maximum; `zero` is 0 in x's type (the map kernels pass their constant,
    0 for relu), so a float32 kernel never computes in float64."""
    if x > 0 or x != x:
        return x
    return zero


@cuda.jit(device=True)
def f_relu_grad(dy, y, p):
    """dy · [y > 0], a multiplication as in the reference (NaN or ±inf times 0 is NaN, −1 times 0 is −0); a float
    times a boolean keeps the float's type"""
    return dy * (y > 0)


# ---------------------------------------------------------------------------------------------------------------
# softmax along an axis: one thread per row (o, i)

@cuda.jit(device=True)
def row_max(x, base, length, inner):
    m = x[base]
    for l in range(1, length):
        v = x[base + l * inner]
        if v > m or v != v:
            m = v
    return m


@cuda.jit
def softmax_rows(out, x, outer, length, inner):
    for row in range(cuda.grid(1), outer * inner, cuda.gridsize(1)):
        base = (row // inner) * length * inner + row % inner
        m = row_max(x, base, length, inner)
        total = 0.0
        for l in range(length):
            total += math.exp(x[base + l * inner] - m)
        for l in range(length):
            out[base + l * inner] = math.exp(x[base + l * inner] - m) / total


@cuda.jit
def log_softmax_rows(out, x, outer, length, inner):
    for row in range(cuda.grid(1), outer * inner, cuda.gridsize(1)):
        base = (row // inner) * length * inner + row % inner
        m = row_max(x, base, length, inner)
        total = 0.0
        for l in range(length):
            total += math.exp(x[base + l * inner] - m)
        shift = m + math.log(total)
        for l in range(length):
            out[base + l * inner] = x[base + l * inner] - shift


@cuda.jit
def softmax_grad_rows(out, dy, y, outer, length, inner):
    for row in range(cuda.grid(1), outer * inner, cuda.gridsize(1)):
        base = (row // inner) * length * inner + row % inner
        dot = 0.0
        for l in range(length):
            dot += dy[base + l * inner] * y[base + l * inner]
        for l in range(length):
            at = base + l * inner
            out[at] = y[at] * (dy[at] - dot)


@cuda.jit
def log_softmax_grad_rows(out, dy, y, outer, length, inner):
    for row in range(cuda.grid(1), outer * inner, cuda.gridsize(1)):
        base = (row // inner) * length * inner + row % inner
        total = 0.0
        for l in range(length):
            total += dy[base + l * inner]
        for l in range(length):
            at = base + l * inner
            out[at] = dy[at] - math.exp(y[at]) * total


def _rows_signature(arrays):
    from numba import types
    return lambda f: (f[::1],) * arrays + (types.int64,) * 3


ROW_SUMS = "the row's sum accumulates in float64 (see the module docstring)"
register_generic("softmax_rows", softmax_rows, _rows_signature(2), float64=ROW_SUMS)
register_generic("log_softmax_rows", log_softmax_rows, _rows_signature(2), float64=ROW_SUMS)
register_generic("softmax_grad_rows", softmax_grad_rows, _rows_signature(3), float64=ROW_SUMS)
register_generic("log_softmax_grad_rows", log_softmax_grad_rows, _rows_signature(3), float64=ROW_SUMS)


def split_axis(shape, axis):
    """(outer, L, inner): the sizes before, at and after `axis`."""
    outer = 1
    for size in shape[:axis]:
        outer *= size
    inner = 1
    for size in shape[axis + 1:]:
        inner *= size
    return outer, shape[axis], inner


def row_launch(kernel, out, arrays, axis):
    outer, length, inner = split_axis(shape_of(out), axis)
    return [BoundLaunch(kernel, grid_for(outer * inner), BLOCK,
                        [flat(out)] + [flat(a) for a in arrays] + [outer, length, inner])]


@step_kernel
def softmax(out, x, *, axis):
    return row_launch(softmax_rows, out, [x], axis)


@step_kernel
def log_softmax(out, x, *, axis):
    return row_launch(log_softmax_rows, out, [x], axis)


@step_kernel
def softmax_grad(out, dy, y, *, axis):
    return row_launch(softmax_grad_rows, out, [dy, y], axis)


@step_kernel
def log_softmax_grad(out, dy, y, *, axis):
    return row_launch(log_softmax_grad_rows, out, [dy, y], axis)


KERNELS = {Softmax: softmax, SoftmaxGrad: softmax_grad, LogSoftmax: log_softmax, LogSoftmaxGrad: log_softmax_grad}
