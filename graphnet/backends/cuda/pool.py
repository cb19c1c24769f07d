"""2-D max and average pooling, NCHW, forward and backward (formulas in graphnet/backends/reference/pool.py).

Window (KH, KW), stride (SH, SW), padding (PT, PL) on top and left. Output position (oh, ow) pools the input rows
h = oh·SH + r − PT (0 ≤ r < KH) and columns w = ow·SW + s − PL; positions outside the input are padding: −∞ for
max (never wins), 0 for average. The output size comes from `out` (ceil_mode only makes it larger: a last window
may reach past the padded input, and the positions there take part in nothing).

Average pooling divides window (oh, ow) by rows[oh] · cols[ow], two small tables in x's type made when the step is
bound: the window's rows and columns inside the padded input (count_include_pad — KH and KW except for a partial
ceil_mode window) or inside the input.

Forward kernels: one thread per output element. Backward kernels: one thread per *input* element, which gathers
from every window that contains it — no two threads write the same place, so no atomics. Input row h lies in the
windows oh with

    ceil((h + PT − KH + 1) / SH) ≤ oh ≤ floor((h + PT) / SH)        (clipped to 0 ≤ oh < OH; columns alike)

Max pooling's gradient goes, in each window, to the *first* position in row-major order whose x equals the
window's max y — or is NaN, where the max is NaN (as the reference does, and PyTorch).

Every constant reaches the kernels in x's type (−∞ for max, 0 and the divisor tables for average), so float32
kernels compute in float32, as the reference does.

The gradients fuse with the relu_grad after them (the backward pass of a relu → pool layer), as on the cpu:
max_pool2d_grad_relu and avg_pool2d_grad_relu pass each input's gradient through relu_grad's formula (f_relu_grad,
dy · [y > 0]) with the relu's output y before writing it; the unfused kernels get masked = 0.
"""
import math

import numpy as np
from numba import cuda, types

from .activations import f_relu_grad
from .launch import BLOCK, BoundLaunch, flat, grid_for, step_kernel, shape_of
from .reduce import is_max
from .registry import register_generic
from ...ops.pool import AvgPool2d, AvgPool2dGrad, MaxPool2d, MaxPool2dGrad
from ...ops.fused import AvgPool2dGradReluGrad, MaxPool2dGradReluGrad


@cuda.jit(device=True)
def window_range(h, pad, kernel, stride, out_size):
    """The first and one-past-last window index along one axis that contain input index h."""
    lowest = h + pad - kernel + 1
    first = 0 if lowest <= 0 else (lowest + stride - 1) // stride
    last = min(out_size - 1, (h + pad) // stride)
    return first, last + 1


@cuda.jit
def max_pool_forward(out, x, lowest, geometry):
    """out = max over the window (`lowest` is −∞ in x's type); NaN wins, as in np.maximum."""
    height, width, out_h, out_w, kh, kw, sh, sw, pt, pl = geometry
    for o in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        ow = o % out_w
        oh = (o // out_w) % out_h
        plane = o // (out_w * out_h)
        m = lowest
        for r in range(kh):
            h = oh * sh + r - pt
            if 0 <= h < height:
                for s in range(kw):
                    w = ow * sw + s - pl
                    if 0 <= w < width:
                        v = x[(plane * height + h) * width + w]
                        if v > m or v != v:
                            m = v
        out[o] = m


@cuda.jit(device=True)
def first_max_position(x, plane, oh, ow, target, geometry):
    """(h, w) of the first real position of window (oh, ow), row-major, where the max `target` came from (x equals
    it, or is NaN like it); (-1, -1) if none."""
    height, width, out_h, out_w, kh, kw, sh, sw, pt, pl = geometry
    for r in range(kh):
        h = oh * sh + r - pt
        if 0 <= h < height:
            for s in range(kw):
                w = ow * sw + s - pl
                if 0 <= w < width and is_max(x[(plane * height + h) * width + w], target):
                    return h, w
    return -1, -1


@cuda.jit
def max_pool_backward(dx, dy, x, y, relu_y, zero, geometry, masked):
    """dx[i] = Σ dy over the windows whose first max sits at i (`zero` is 0 in x's type)."""
    height, width, out_h, out_w, kh, kw, sh, sw, pt, pl = geometry
    for i in range(cuda.grid(1), dx.size, cuda.gridsize(1)):
        w = i % width
        h = (i // width) % height
        plane = i // (width * height)
        oh_first, oh_stop = window_range(h, pt, kh, sh, out_h)
        ow_first, ow_stop = window_range(w, pl, kw, sw, out_w)
        acc = zero
        for oh in range(oh_first, oh_stop):
            for ow in range(ow_first, ow_stop):
                o = (plane * out_h + oh) * out_w + ow
                wh, ww = first_max_position(x, plane, oh, ow, y[o], geometry)
                if wh == h and ww == w:
                    acc += dy[o]
        dx[i] = f_relu_grad(acc, relu_y[i], 0) if masked else acc


@cuda.jit
def avg_pool_forward(out, x, zero, rows, cols, geometry):
    """out = (Σ over the window) / (rows[oh] · cols[ow]) (padding counts as 0)."""
    height, width, out_h, out_w, kh, kw, sh, sw, pt, pl = geometry
    for o in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        ow = o % out_w
        oh = (o // out_w) % out_h
        plane = o // (out_w * out_h)
        total = zero
        for r in range(kh):
            h = oh * sh + r - pt
            if 0 <= h < height:
                for s in range(kw):
                    w = ow * sw + s - pl
                    if 0 <= w < width:
                        total += x[(plane * height + h) * width + w]
        out[o] = total / (rows[oh] * cols[ow])


@cuda.jit
def avg_pool_backward(dx, dy, relu_y, zero, rows, cols, geometry, masked):
    """dx[i] = Σ dy / (rows[oh] · cols[ow]) over the windows (oh, ow) containing i, each share divided first, as
    the reference does."""
    height, width, out_h, out_w, kh, kw, sh, sw, pt, pl = geometry
    for i in range(cuda.grid(1), dx.size, cuda.gridsize(1)):
        w = i % width
        h = (i // width) % height
        plane = i // (width * height)
        oh_first, oh_stop = window_range(h, pt, kh, sh, out_h)
        ow_first, ow_stop = window_range(w, pl, kw, sw, out_w)
        total = zero
        for oh in range(oh_first, oh_stop):
            for ow in range(ow_first, ow_stop):
                total += dy[(plane * out_h + oh) * out_w + ow] / (rows[oh] * cols[ow])
        dx[i] = f_relu_grad(total, relu_y[i], 0) if masked else total


_GEOMETRY = types.UniTuple(types.int64, 10)
register_generic("max_pool_forward", max_pool_forward, lambda f: (f[::1], f[::1], f, _GEOMETRY))
register_generic("max_pool_backward", max_pool_backward,
                 lambda f: (f[::1], f[::1], f[::1], f[::1], f[::1], f, _GEOMETRY, types.boolean))
register_generic("avg_pool_forward", avg_pool_forward, lambda f: (f[::1], f[::1], f, f[::1], f[::1], _GEOMETRY))
register_generic("avg_pool_backward", avg_pool_backward,
                 lambda f: (f[::1], f[::1], f[::1], f, f[::1], f[::1], _GEOMETRY, types.boolean))


def pool_geometry(x_shape, y_shape, kernel_size, stride, padding):
    """(H, W, OH, OW, KH, KW, SH, SW, PT, PL) as the kernels unpack it."""
    (kh, kw), (sh, sw), ((pt, _), (pl, _)) = kernel_size, stride, padding
    return tuple(int(v) for v in (x_shape[2], x_shape[3], y_shape[2], y_shape[3], kh, kw, sh, sw, pt, pl))


def window_sizes(x_shape, y_shape, kernel_size, stride, padding, count_include_pad, dtype):
    """The divisor tables (rows per output row, columns per output column) on the device, in `dtype`: the window's
    positions inside the padded input (count_include_pad) or inside the input, along each axis."""
    tables = []
    for size, out, taps, step, (lo, hi) in zip(x_shape[2:], y_shape[2:], kernel_size, stride, padding):
        first = np.arange(out) * step - lo
        stop = np.minimum(first + taps, size + hi if count_include_pad else size)
        tables.append(cuda.to_device((stop - (first if count_include_pad else np.maximum(first, 0))).astype(dtype)))
    return tables


@step_kernel
def max_pool2d(out, x, *, kernel_size, stride, padding, ceil_mode=False):
    geometry = pool_geometry(shape_of(x), shape_of(out), kernel_size, stride, padding)
    return [BoundLaunch(max_pool_forward, grid_for(out.size), BLOCK,
                        [flat(out), flat(x), out.dtype.type(-math.inf), geometry])]


def max_pool_backward_launch(out, dy, x, y, relu_y, kernel_size, stride, padding):
    geometry = pool_geometry(shape_of(x), shape_of(y), kernel_size, stride, padding)
    mask = x if relu_y is None else relu_y
    return BoundLaunch(max_pool_backward, grid_for(out.size), BLOCK,
                       [flat(out), flat(dy), flat(x), flat(y), flat(mask), out.dtype.type(0), geometry,
                        relu_y is not None])


@step_kernel
def max_pool2d_grad(out, dy, x, y, *, kernel_size, stride, padding, ceil_mode=False):
    return [max_pool_backward_launch(out, dy, x, y, None, kernel_size, stride, padding)]


@step_kernel
def max_pool2d_grad_relu(out, dy, x, y, relu_y, *, kernel_size, stride, padding, ceil_mode=False):
    """max_pool2d_grad(dy, x, y) · [relu_y > 0]: the fused max_pool2d_grad → relu_grad"""
    return [max_pool_backward_launch(out, dy, x, y, relu_y, kernel_size, stride, padding)]


@step_kernel
def avg_pool2d(out, x, *, kernel_size, stride, padding, ceil_mode=False, count_include_pad=True):
    geometry = pool_geometry(shape_of(x), shape_of(out), kernel_size, stride, padding)
    rows, cols = window_sizes(shape_of(x), shape_of(out), kernel_size, stride, padding, count_include_pad,
                              out.dtype)
    return [BoundLaunch(avg_pool_forward, grid_for(out.size), BLOCK,
                        [flat(out), flat(x), out.dtype.type(0), rows, cols, geometry])]


def avg_pool_backward_launch(out, dy, relu_y, kernel_size, stride, padding, count_include_pad):
    geometry = pool_geometry(shape_of(out), shape_of(dy), kernel_size, stride, padding)
    rows, cols = window_sizes(shape_of(out), shape_of(dy), kernel_size, stride, padding, count_include_pad,
                              out.dtype)
    mask = out if relu_y is None else relu_y
    return BoundLaunch(avg_pool_backward, grid_for(out.size), BLOCK,
                       [flat(out), flat(dy), flat(mask), out.dtype.type(0), rows, cols, geometry,
                        relu_y is not None])


@step_kernel
def avg_pool2d_grad(out, dy, *, kernel_size, stride, padding, ceil_mode=False, count_include_pad=True):
    return [avg_pool_backward_launch(out, dy, None, kernel_size, stride, padding, count_include_pad)]


@step_kernel
def avg_pool2d_grad_relu(out, dy, relu_y, *, kernel_size, stride, padding, ceil_mode=False, count_include_pad=True):
    """avg_pool2d_grad(dy) · [relu_y > 0]: the fused avg_pool2d_grad → relu_grad"""
    return [avg_pool_backward_launch(out, dy, relu_y, kernel_size, stride, padding, count_include_pad)]


KERNELS = {MaxPool2d: max_pool2d, MaxPool2dGrad: max_pool2d_grad, MaxPool2dGradReluGrad: max_pool2d_grad_relu,
           AvgPool2d: avg_pool2d, AvgPool2dGrad: avg_pool2d_grad, AvgPool2dGradReluGrad: avg_pool2d_grad_relu}
