"""Kernels that move data: every one of them is a strided copy (layout.py).

    dst[dst_start + Σ_k c_k · dst_stride_k] = src[src_start + Σ_k c_k · src_stride_k]    for every position (c_k)

    reshape, assign        both contiguous: one axis, strides 1
    transpose              src strides permuted by the axes
    getitem x[index]       src starts at the index's offset; a slice a:b:s reads with stride s·stride
    getitem_grad           zeros, then dy copied to where x[index] was read
    concat                 one copy per input, into out starting at the input's place along the axis
    concat_grad            the part of dy that came from one input
"""
from numba import cuda, types

from ...errors import GraphError
from .launch import BLOCK, BoundLaunch, flat, grid_for, step_kernel, shape_of
from .layout import MAX_DIMS, basic_index_view, contiguous_strides, numel, strided_layout
from .reduce import offset_of
from .registry import register_generic
from ...ops.shape import Concat, ConcatGrad, GetItem, GetItemGrad, Reshape, ReshapeLike, Transpose
from ...ops.state import Assign


@cuda.jit
def strided_copy(dst, dst_start, src, src_start, count, sizes, dst_strides, src_strides):
    for i in range(cuda.grid(1), count, cuda.gridsize(1)):
        dst[dst_start + offset_of(i, sizes, dst_strides)] = src[src_start + offset_of(i, sizes, src_strides)]


@cuda.jit
def fill(out, value):
    for i in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        out[i] = value


_INDEX = types.UniTuple(types.int64, MAX_DIMS)
register_generic("strided_copy", strided_copy,
                 lambda f: (f[::1], types.int64, f[::1], types.int64, types.int64, _INDEX, _INDEX, _INDEX))
register_generic("fill", fill, lambda f: (f[::1], f))


def copy_launch(dst, dst_start, dst_strides, src, src_start, src_strides, shape, what):
    """One strided copy over `shape` (see the module's formula)."""
    count = numel(shape)
    if count == 0:
        return []
    sizes, (dst_s, src_s) = strided_layout(tuple(shape), [dst_strides, src_strides], what)
    return [BoundLaunch(strided_copy, grid_for(count), BLOCK,
                        [flat(dst), int(dst_start), flat(src), int(src_start), count, sizes, dst_s, src_s])]


def contiguous_copy(out, x, what):
    shape = (out.size,)
    return copy_launch(out, 0, (1,), x, 0, (1,), shape, what)


@step_kernel
def reshape(out, x):
    """The same elements in out's shape (a copy: the compiler makes most reshapes free views)."""
    return contiguous_copy(out, x, "reshape")


@step_kernel
def assign(out, variable, value):
    """out is the variable's own storage: copying the value into it updates the variable."""
    return contiguous_copy(out, value, "assign")


@step_kernel
def transpose(out, x, *, axes):
    """out[c_0, ..., c_n] = x[c at the positions given by axes]: x's strides, permuted."""
    x_strides = contiguous_strides(shape_of(x))
    return copy_launch(out, 0, contiguous_strides(shape_of(out)), x, 0, [x_strides[a] for a in axes],
                       shape_of(out), "transpose")


@step_kernel
def getitem(out, x, *, index):
    """out = x[index], basic indexing"""
    start, shape, strides = basic_index_view(shape_of(x), index)
    return copy_launch(out, 0, contiguous_strides(shape), x, start, strides, shape, "getitem")


@step_kernel
def getitem_grad(out, dy, *, index):
    """zeros of x's shape, with dy where x[index] was read"""
    start, shape, strides = basic_index_view(shape_of(out), index)
    zero = BoundLaunch(fill, grid_for(out.size), BLOCK, [flat(out), out.dtype.type(0)])
    return [zero] + copy_launch(out, start, strides, dy, 0, contiguous_strides(shape), shape, "getitem_grad")


def along_axis(shape, axis, start):
    """The offset of position `start` along `axis` of a contiguous array of `shape`."""
    return start * contiguous_strides(shape)[axis]


@step_kernel
def concat(out, *xs, axis):
    """Each input copied into out, after the inputs before it along `axis`."""
    out_shape = shape_of(out)
    out_strides = contiguous_strides(out_shape)
    launches, start = [], 0
    for x in xs:
        shape = shape_of(x)
        launches += copy_launch(out, along_axis(out_shape, axis, start), out_strides, x, 0,
                                contiguous_strides(shape), shape, "concat")
        start += shape[axis]
    return launches


@step_kernel
def concat_grad(out, dy, *, axis, start, stop):
    """out = dy[..., start:stop, ...] along `axis`"""
    dy_shape = shape_of(dy)
    if shape_of(out)[axis] != stop - start:
        raise GraphError(f"concat_grad: out has {shape_of(out)[axis]} entries along axis {axis}, expected {stop - start}")
    return copy_launch(out, 0, contiguous_strides(shape_of(out)), dy, along_axis(dy_shape, axis, start),
                       contiguous_strides(dy_shape), shape_of(out), "concat_grad")


KERNELS = {Reshape: reshape, ReshapeLike: reshape, Assign: assign, Transpose: transpose, GetItem: getitem,
           GetItemGrad: getitem_grad, Concat: concat, ConcatGrad: concat_grad}
