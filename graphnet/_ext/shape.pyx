# cython: language_level=3, boundscheck=False, cdivision=True, initializedcheck=False
"""Kernels of the cpu backend that move data without arithmetic: copies between two strided views of memory.

Every one of them is the same loop — for each index i of a shape, dst[dst_offset + i·dst_strides] =
src[src_offset + i·src_strides] (strides in elements, any sign) — over views the compile-time plan works out:

    reshape       (a copy only where the compiler could not make it a view)   dst and src contiguous
    assign        value → variable storage                                   dst and src contiguous
    transpose     dst contiguous; src strides = x's strides permuted by `axes`
    concat        input k → the slab out[..., start_k:stop_k, ...]; one walk per input
    concat_grad   the slab dy[..., start:stop, ...] → out
    getitem       x[index] → out: an int adds i·stride to the offset and drops the axis, a slice a:b:c keeps
                  the axis with len(range(a, b, c)) elements and stride c·stride, None adds a size-1 axis
    getitem_grad  out = 0, then dy → out[index] (the same view, written instead of read)

`CopyWalk` drops size-1 axes and merges neighbours k, k+1 that both sides step through evenly
(stride[k] = stride[k+1]·shape[k+1]), so a slab of whole rows becomes one memcpy per row, or one in all. The
loop then runs row by row along the last axis: memcpy when both sides are contiguous there, else an element
loop. A transpose whose source is contiguous along another axis copies 32×32 tiles of those two axes, so that
both the reads and the writes of a tile stay in cache.

The elements are moved as 1-, 2-, 4- or 8-byte words, so these kernels serve every dtype of those sizes
(float32/64, int64 labels, ...). Large copies are shared between OpenMP threads.
"""
from cython.parallel cimport prange
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t
from libc.string cimport memcpy, memmove, memset

cimport numpy as cnp
import numpy as np

from ._buffers cimport MAX_DIMS, PARALLEL_MIN, RELEASE_GIL_MIN, data, require_size, shape_of, size
from graphnet.ops.shape import Concat, ConcatGrad, GetItem, GetItemGrad, Reshape, ReshapeLike, Transpose
from graphnet.ops.state import Assign

cnp.import_array()

ctypedef fused word:
    uint8_t
    uint16_t
    uint32_t
    uint64_t

cdef enum:
    TILE_SIDE = 32             # transpose tiles are TILE_SIDE × TILE_SIDE elements
    BYTES_PER_CHUNK = 1 << 20  # a large contiguous copy is cut into chunks of this many bytes for the threads


# ----------------------------------------------------------------------------------------------------------------
# the compile-time plan

ctypedef struct Copy:
    int ndim
    Py_ssize_t shape[MAX_DIMS]
    Py_ssize_t dst_stride[MAX_DIMS]
    Py_ssize_t src_stride[MAX_DIMS]
    Py_ssize_t dst_offset
    Py_ssize_t src_offset
    Py_ssize_t size                 # elements copied
    Py_ssize_t rows                 # size / shape[ndim - 1]
    int tile_axis                   # the axis along which src is contiguous, tiled against the last; -1: no tiles


def contiguous_strides(shape):
    """Element strides of a C-contiguous array of `shape`."""
    strides, step = [0] * len(shape), 1
    for axis in range(len(shape) - 1, -1, -1):
        strides[axis] = step
        step *= shape[axis]
    return strides


def simplified_copy(shape, dst_strides, src_strides):
    """(shape, dst strides, src strides) with size-1 axes dropped and evenly strided neighbours merged."""
    out_shape, dst, src = [], [], []
    for extent, d, s in zip(shape, dst_strides, src_strides):
        if extent == 1:
            continue
        if out_shape and dst[len(dst) - 1] == d * extent and src[len(src) - 1] == s * extent:
            out_shape[len(out_shape) - 1] *= extent
            dst[len(dst) - 1], src[len(src) - 1] = d, s
        else:
            out_shape.append(extent)
            dst.append(d)
            src.append(s)
    if not out_shape:
        return [1], [1], [1]
    return out_shape, dst, src


cdef class CopyWalk:
    """One strided copy (see the module docstring), made once per plan."""
    cdef Copy copy
    cdef readonly tuple shape
    cdef readonly str algorithm

    def __init__(self, shape, dst_strides, src_strides, Py_ssize_t dst_offset=0, Py_ssize_t src_offset=0):
        self.shape = tuple(shape)
        simple, dst, src = simplified_copy(self.shape, dst_strides, src_strides)
        if len(simple) > MAX_DIMS:
            raise ValueError(f"shape {self.shape} has more than {MAX_DIMS} axes")
        cdef Copy* c = &self.copy
        c.ndim = len(simple)
        for axis in range(c.ndim):
            c.shape[axis], c.dst_stride[axis], c.src_stride[axis] = simple[axis], dst[axis], src[axis]
        c.dst_offset, c.src_offset = dst_offset, src_offset
        c.size = int(np.prod(self.shape, dtype=np.int64))
        c.rows = c.size // simple[c.ndim - 1] if c.size else 0
        c.tile_axis = -1
        last = c.ndim - 1
        if src[last] != 1 and dst[last] == 1:
            for axis in range(last):
                if src[axis] == 1 and simple[axis] > 1:
                    c.tile_axis = axis
        if c.ndim == 1 and dst[0] == 1 and src[0] == 1:
            self.algorithm = "memcpy"
        elif c.tile_axis >= 0:
            self.algorithm = "tiled"
        elif dst[last] == 1 and src[last] == 1:
            self.algorithm = "rows"
        else:
            self.algorithm = "strided"

    @property
    def size(self):
        return self.copy.size

    def __repr__(self):
        return f"CopyWalk({self.shape}, {self.algorithm})"


# ----------------------------------------------------------------------------------------------------------------
# the C loops

cdef inline void _offsets(const Copy* c, Py_ssize_t index, int skip, Py_ssize_t* dst, Py_ssize_t* src) noexcept nogil:
    """Offsets of multi-index number `index` over every axis but the last (and but `skip`, if >= 0)."""
    cdef Py_ssize_t d = c.dst_offset, s = c.src_offset, i
    cdef int axis
    for axis in range(c.ndim - 2, -1, -1):
        if axis == skip:
            continue
        i = index % c.shape[axis]
        index = index // c.shape[axis]
        d += i * c.dst_stride[axis]
        s += i * c.src_stride[axis]
    dst[0], src[0] = d, s


cdef inline void _copy_row(word* dst, const word* src, Py_ssize_t n, Py_ssize_t dst_step,
                           Py_ssize_t src_step) noexcept nogil:
    cdef Py_ssize_t i
    if dst_step == 1 and src_step == 1:
        memcpy(dst, src, n * sizeof(word))
    elif dst_step == 1:
        for i in range(n):
            dst[i] = src[i * src_step]
    else:
        for i in range(n):
            dst[i * dst_step] = src[i * src_step]


cdef void _copy_rows(const Copy* c, word* dst, const word* src, Py_ssize_t row) noexcept nogil:
    cdef Py_ssize_t d = 0, s = 0
    cdef int last = c.ndim - 1
    _offsets(c, row, -1, &d, &s)
    _copy_row(dst + d, src + s, c.shape[last], c.dst_stride[last], c.src_stride[last])


cdef void _copy_tile(const Copy* c, word* dst, const word* src, Py_ssize_t item) noexcept nogil:
    """One TILE_SIDE-wide band along the tile axis, for one index of the other outer axes: tile by tile along the
    last axis, read along the tile axis (src contiguous) and written along the last axis (dst contiguous)."""
    cdef int last = c.ndim - 1, t = c.tile_axis
    cdef Py_ssize_t bands = (c.shape[t] + TILE_SIDE - 1) // TILE_SIDE
    cdef Py_ssize_t band = item % bands
    cdef Py_ssize_t d = 0, s = 0, i, j, j0, tile, i_stop, j_stop
    _offsets(c, item // bands, t, &d, &s)
    i_stop = min((band + 1) * TILE_SIDE, c.shape[t])
    for tile in range((c.shape[last] + TILE_SIDE - 1) // TILE_SIDE):
        j0 = tile * TILE_SIDE
        j_stop = min(j0 + TILE_SIDE, c.shape[last])
        for i in range(band * TILE_SIDE, i_stop):
            for j in range(j0, j_stop):
                dst[d + i * c.dst_stride[t] + j] = src[s + i + j * c.src_stride[last]]


cdef void _strided_copy(const Copy* c, word* dst, const word* src) noexcept nogil:
    cdef Py_ssize_t item, items
    cdef bint parallel = c.size >= PARALLEL_MIN
    if c.size == 0:
        return
    if c.tile_axis >= 0:
        items = c.rows // c.shape[c.tile_axis] * ((c.shape[c.tile_axis] + TILE_SIDE - 1) // TILE_SIDE)
        if parallel and items > 1:
            for item in prange(items, schedule="static"):
                _copy_tile(c, dst, src, item)
        else:
            for item in range(items):
                _copy_tile(c, dst, src, item)
    elif parallel and c.rows > 1:
        for item in prange(c.rows, schedule="static"):
            _copy_rows(c, dst, src, item)
    else:
        for item in range(c.rows):
            _copy_rows(c, dst, src, item)


cdef void _strided_copy_words(int itemsize, const Copy* c, void* dst, const void* src) noexcept nogil:
    if itemsize == 8:
        _strided_copy(c, <uint64_t*>dst, <const uint64_t*>src)
    elif itemsize == 4:
        _strided_copy(c, <uint32_t*>dst, <const uint32_t*>src)
    elif itemsize == 2:
        _strided_copy(c, <uint16_t*>dst, <const uint16_t*>src)
    else:
        _strided_copy(c, <uint8_t*>dst, <const uint8_t*>src)


cdef int _run_copy(str kernel, CopyWalk walk, cnp.ndarray dst, cnp.ndarray src) except -1:
    """dst ← src through the walk, moving words of the arrays' item size."""
    cdef Copy* c = &walk.copy
    cdef int itemsize = cnp.PyArray_ITEMSIZE(dst)
    if cnp.PyArray_TYPE(src) != cnp.PyArray_TYPE(dst):
        raise TypeError(f"cpu.{kernel}: source {src.dtype} and destination {dst.dtype} differ")
    if not (cnp.PyArray_IS_C_CONTIGUOUS(dst) and cnp.PyArray_IS_C_CONTIGUOUS(src)):
        raise TypeError(f"cpu.{kernel}: the arrays must be C-contiguous")
    if itemsize not in (1, 2, 4, 8):
        raise TypeError(f"cpu.{kernel}: elements of {itemsize} bytes ({dst.dtype}) are not supported")
    cdef void* pd = data(dst)
    cdef void* ps = data(src)
    if c.size >= RELEASE_GIL_MIN:
        with nogil:
            _strided_copy_words(itemsize, c, pd, ps)
    else:
        _strided_copy_words(itemsize, c, pd, ps)
    return 0


cdef void _copy_bytes(char* dst, const char* src, Py_ssize_t nbytes) noexcept nogil:
    """memmove, in chunks shared between threads when large (dst and src may be the same buffer)."""
    cdef Py_ssize_t chunk, chunks = (nbytes + BYTES_PER_CHUNK - 1) // BYTES_PER_CHUNK
    if dst == src:
        return
    if chunks > 1 and nbytes >= 4 * BYTES_PER_CHUNK and (dst + nbytes <= src or src + nbytes <= dst):
        for chunk in prange(chunks, schedule="static"):
            memcpy(dst + chunk * BYTES_PER_CHUNK, src + chunk * BYTES_PER_CHUNK,
                   min(<Py_ssize_t>BYTES_PER_CHUNK, nbytes - chunk * BYTES_PER_CHUNK))
    else:
        memmove(dst, src, nbytes)


cdef void _zero_bytes(char* dst, Py_ssize_t nbytes) noexcept nogil:
    cdef Py_ssize_t chunk, chunks = (nbytes + BYTES_PER_CHUNK - 1) // BYTES_PER_CHUNK
    if chunks > 1 and nbytes >= 4 * BYTES_PER_CHUNK:
        for chunk in prange(chunks, schedule="static"):
            memset(dst + chunk * BYTES_PER_CHUNK, 0, min(<Py_ssize_t>BYTES_PER_CHUNK, nbytes - chunk * BYTES_PER_CHUNK))
    else:
        memset(dst, 0, nbytes)


cdef int _run_contiguous_copy(str kernel, cnp.ndarray dst, cnp.ndarray src) except -1:
    if cnp.PyArray_TYPE(src) != cnp.PyArray_TYPE(dst):
        raise TypeError(f"cpu.{kernel}: source {src.dtype} and destination {dst.dtype} differ")
    if not (cnp.PyArray_IS_C_CONTIGUOUS(dst) and cnp.PyArray_IS_C_CONTIGUOUS(src)):
        raise TypeError(f"cpu.{kernel}: the arrays must be C-contiguous")
    require_size(kernel, "the source", src, size(dst))
    cdef char* pd = <char*>data(dst)
    cdef const char* ps = <const char*>data(src)
    cdef Py_ssize_t nbytes = cnp.PyArray_NBYTES(dst)
    if nbytes >= 4 * RELEASE_GIL_MIN:
        with nogil:
            _copy_bytes(pd, ps, nbytes)
    else:
        _copy_bytes(pd, ps, nbytes)
    return 0


# ----------------------------------------------------------------------------------------------------------------
# kernels

def reshape(cnp.ndarray out, cnp.ndarray x):
    """out = x with out's shape (the same elements in the same order)"""
    _run_contiguous_copy("reshape", out, x)


def assign(cnp.ndarray out, cnp.ndarray variable, cnp.ndarray value):
    """The variable's storage (out) ← value"""
    _run_contiguous_copy("assign", out, value)


def transpose_walk(in_shape, axes):
    """out[i] = x[i permuted back]: dst contiguous over the permuted shape, src strides permuted by `axes`."""
    x_strides = contiguous_strides(in_shape)
    out_shape = [in_shape[a] for a in axes]
    return CopyWalk(out_shape, contiguous_strides(out_shape), [x_strides[a] for a in axes])


def transpose(cnp.ndarray out, cnp.ndarray x, *, tuple axes, CopyWalk walk=None, algorithm=None):
    """out = x with its axes permuted: out.shape[k] = x.shape[axes[k]]"""
    if walk is None:
        walk = transpose_walk(shape_of(x), axes)
    require_size("transpose", "the input", x, walk.copy.size)
    require_size("transpose", "the output", out, walk.copy.size)
    _run_copy("transpose", walk, out, x)


def slab_walk(part_shape, whole_shape, axis, start, into_whole):
    """The copy between a contiguous part and the slab whole[..., start:start + part, ...] along `axis`."""
    whole_strides = contiguous_strides(whole_shape)
    offset = start * whole_strides[axis]
    if into_whole:
        return CopyWalk(part_shape, whole_strides, contiguous_strides(part_shape), dst_offset=offset)
    return CopyWalk(part_shape, contiguous_strides(part_shape), whole_strides, src_offset=offset)


def concat(cnp.ndarray out, *xs, int axis, tuple walks=None, algorithm=None):
    """out = the inputs joined along `axis`"""
    cdef cnp.ndarray x
    cdef CopyWalk walk
    if walks is None:
        walks = tuple(_plan_concat({"axis": axis}, [shape_of(x) for x in xs], shape_of(out), None)["walks"])
    if len(walks) != len(xs):
        raise ValueError(f"cpu.concat: planned for {len(walks)} inputs, got {len(xs)}")
    for x, walk in zip(xs, walks):
        require_size("concat", "an input", x, walk.copy.size)
        _run_copy("concat", walk, out, x)


def concat_grad(cnp.ndarray out, cnp.ndarray dy, *, int axis, Py_ssize_t start, Py_ssize_t stop,
                CopyWalk walk=None, algorithm=None):
    """out = dy[..., start:stop, ...] along `axis`"""
    if walk is None:
        walk = slab_walk(shape_of(out), shape_of(dy), axis, start, False)
    require_size("concat_grad", "the output", out, walk.copy.size)
    _run_copy("concat_grad", walk, out, dy)


def index_view(in_shape, index):
    """(shape, element strides, offset) of the view x[index] of a C-contiguous x, for basic indexing."""
    strides = contiguous_strides(in_shape)
    shape, view_strides, offset, axis = [], [], 0, 0
    for item in index:
        if item is None:
            shape.append(1)
            view_strides.append(0)
            continue
        extent = in_shape[axis]
        if isinstance(item, slice):
            start, stop, step = item.indices(extent)
            length = len(range(start, stop, step))
            shape.append(length)
            view_strides.append(step * strides[axis])
            if length:
                offset += start * strides[axis]
        else:
            if not -extent <= item < extent:
                raise IndexError(f"index {item} is out of bounds for axis {axis} with size {extent}")
            offset += (item % extent) * strides[axis]
        axis += 1
    shape += list(in_shape[axis:])
    view_strides += strides[axis:]
    return shape, view_strides, offset


def getitem_walk(in_shape, index):
    shape, strides, offset = index_view(in_shape, index)
    return CopyWalk(shape, contiguous_strides(shape), strides, src_offset=offset)


def getitem_grad_walk(x_shape, index):
    shape, strides, offset = index_view(x_shape, index)
    return CopyWalk(shape, strides, contiguous_strides(shape), dst_offset=offset)


def getitem(cnp.ndarray out, cnp.ndarray x, *, tuple index, CopyWalk walk=None, algorithm=None):
    """out = x[index] (ints, slices with any step, None)"""
    if walk is None:
        walk = getitem_walk(shape_of(x), index)
    require_size("getitem", "the output", out, walk.copy.size)
    _run_copy("getitem", walk, out, x)


def getitem_grad(cnp.ndarray out, cnp.ndarray dy, *, tuple index, CopyWalk walk=None, algorithm=None):
    """out = zeros with dy written at out[index]"""
    if walk is None:
        walk = getitem_grad_walk(shape_of(out), index)
    require_size("getitem_grad", "dy", dy, walk.copy.size)
    cdef char* po = <char*>data(out)
    cdef Py_ssize_t nbytes = cnp.PyArray_NBYTES(out)
    if nbytes >= 4 * RELEASE_GIL_MIN:
        with nogil:
            _zero_bytes(po, nbytes)
    else:
        _zero_bytes(po, nbytes)
    _run_copy("getitem_grad", walk, out, dy)


# ----------------------------------------------------------------------------------------------------------------
# compile-time rules

def _plan_transpose(params, in_shapes, out_shape, dtype):
    walk = transpose_walk(tuple(in_shapes[0]), params["axes"])
    return dict(params, axes=tuple(params["axes"]), walk=walk, algorithm=walk.algorithm)


def _plan_concat(params, in_shapes, out_shape, dtype):
    walks, start = [], 0
    for shape in in_shapes:
        walks.append(slab_walk(tuple(shape), tuple(out_shape), params["axis"], start, True))
        start += shape[params["axis"]]
    return dict(params, walks=tuple(walks))


def _plan_concat_grad(params, in_shapes, out_shape, dtype):
    walk = slab_walk(tuple(out_shape), tuple(in_shapes[0]), params["axis"], params["start"], False)
    return dict(params, walk=walk, algorithm=walk.algorithm)


def _plan_getitem(params, in_shapes, out_shape, dtype):
    walk = getitem_walk(tuple(in_shapes[0]), params["index"])
    return dict(params, index=tuple(params["index"]), walk=walk, algorithm=walk.algorithm)


def _plan_getitem_grad(params, in_shapes, out_shape, dtype):
    walk = getitem_grad_walk(tuple(out_shape), params["index"])
    return dict(params, index=tuple(params["index"]), walk=walk, algorithm=walk.algorithm)


KERNELS = {Reshape: reshape, ReshapeLike: reshape, Assign: assign, Transpose: transpose, Concat: concat,
           ConcatGrad: concat_grad, GetItem: getitem, GetItemGrad: getitem_grad}

SPECIALIZE = {Transpose: _plan_transpose, Concat: _plan_concat, ConcatGrad: _plan_concat_grad,
              GetItem: _plan_getitem, GetItemGrad: _plan_getitem_grad}
