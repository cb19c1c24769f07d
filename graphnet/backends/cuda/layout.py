"""Index arithmetic shared by the kernels: every tensor is a flat buffer, and an N-d position maps to it by strides.

A C-contiguous array of shape (d0, ..., d_{n-1}) keeps element (c0, ..., c_{n-1}) at

    offset = Σ_k c_k · stride_k,    stride_{n-1} = 1,  stride_k = stride_{k+1} · d_{k+1}

Broadcasting, transposition, slicing and reduction are all this formula with other strides: a broadcast axis has
stride 0, a transpose permutes the strides, a slice a:b:s starts at offset a·stride and steps by s·stride.

Kernels take at most MAX_DIMS axes (sizes and strides as tuples, padded in front with size 1, stride 0). Axes are
merged first where the formula allows — adjacent axes (k, k+1) merge when stride_k = stride_{k+1}·d_{k+1} for every
operand — so (N, C, H, W) + (1, C, 1, 1) becomes three axes (N, C, H·W), and equal shapes become one.
"""
import math

import numpy as np

from ...errors import GraphError

MAX_DIMS = 6


def contiguous_strides(shape):
    strides, step = [], 1
    for size in reversed(shape):
        strides.append(step)
        step *= size
    return tuple(reversed(strides))


def broadcast_strides(shape, out_shape):
    """Strides that read an input of `shape` at every position of `out_shape` (NumPy broadcasting)."""
    lead = len(out_shape) - len(shape)
    own = contiguous_strides(shape)
    strides = [0] * lead
    for size, stride, out_size in zip(shape, own, out_shape[lead:]):
        strides.append(0 if size == 1 and out_size != 1 else stride)
    return strides


def merge_axes(sizes, operand_strides):
    """Drop size-1 axes and merge adjacent axes where every operand's strides allow it."""
    axes = [(size, [s[k] for s in operand_strides]) for k, size in enumerate(sizes) if size != 1]
    merged = []
    for size, strides in axes:
        if merged:
            outer_size, outer_strides = merged[-1]
            if all(o == i * size for o, i in zip(outer_strides, strides)):
                merged[-1] = (outer_size * size, strides)
                continue
        merged.append((size, strides))
    return merged


def padded(merged, operands, what):
    """(sizes, strides of each operand), each a MAX_DIMS tuple padded in front with size 1 and stride 0."""
    if len(merged) > MAX_DIMS:
        raise GraphError(f"cuda: {what} needs {len(merged)} axes after merging; the CUDA kernels index at most "
                         f"{MAX_DIMS}")
    fill = MAX_DIMS - len(merged)
    sizes = (1,) * fill + tuple(int(size) for size, _ in merged)
    strides = [(0,) * fill + tuple(int(s[k]) for _, s in merged) for k in range(operands)]
    return sizes, strides


def broadcast_layout(out_shape, in_shapes):
    """(sizes, [strides of each input]) reading each input at every output position, axes merged and padded."""
    out_shape = tuple(out_shape)
    operand_strides = [contiguous_strides(out_shape)] + [broadcast_strides(s, out_shape) for s in in_shapes]
    sizes, strides = padded(merge_axes(out_shape, operand_strides), len(operand_strides), "broadcasting")
    return sizes, strides[1:]


def strided_layout(shape, operand_strides, what):
    """(sizes, [strides of each operand]) for a copy over `shape` with the given strides, merged and padded."""
    return padded(merge_axes(tuple(shape), operand_strides), len(operand_strides), what)


def reduction_layout(shape, axes):
    """How to read x of `shape` when reducing over `axes`:

        kept:    (sizes, strides) over the axes that remain, in order — output element j enumerates them
        reduced: (sizes, strides) over the reduced axes — each output sums/maxes over these
    Both padded to MAX_DIMS, with axes merged."""
    strides = contiguous_strides(shape)
    kept = [(shape[a], [strides[a]]) for a in range(len(shape)) if a not in axes]
    reduced = [(shape[a], [strides[a]]) for a in range(len(shape)) if a in axes]

    def merge(axes_list):
        sizes = [size for size, _ in axes_list]
        return merge_axes(sizes, [[s[0] for _, s in axes_list]])

    kept_sizes, (kept_strides,) = padded(merge(kept), 1, "a reduction")
    reduced_sizes, (reduced_strides,) = padded(merge(reduced), 1, "a reduction")
    return (kept_sizes, kept_strides), (reduced_sizes, reduced_strides)


def basic_index_view(shape, index):
    """x[index] for basic indexing as (start offset, shape, strides) into x's flat buffer.

    NumPy does the arithmetic: index a zero-cost view whose items are one byte and whose strides are x's element
    strides, then read back the view's shape, strides and where its data starts."""
    strides = contiguous_strides(shape)
    backing = np.zeros(1, dtype=np.uint8)        # never read: only the view's arithmetic is used
    view = np.lib.stride_tricks.as_strided(backing, shape=shape, strides=strides)[index]
    start = view.__array_interface__["data"][0] - backing.__array_interface__["data"][0]
    return int(start), tuple(view.shape), tuple(int(s) for s in view.strides)


def numel(shape):
    return math.prod(shape)
