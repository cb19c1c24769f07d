"""Ops that move data without arithmetic: reshape, flatten, transpose, concat and slicing."""
import math

import numpy as np

from ..errors import GraphError, ShapeRuleViolation, user_site
from ..graph import format_shape
from ..op import Op
from ._util import apply, checked, normalize_axes, tensors
from .dtypes import cast


class Reshape(Op):
    """The same elements in a new shape. Free: the output shares the input's buffer."""
    name = "reshape"
    view_of_input = 0

    def infer_shape(self, in_shapes, attrs, ref_shapes):
        (shape,), target = in_shapes, attrs["shape"]
        known_in = None if None in shape else math.prod(shape)
        free = [i for i, d in enumerate(target) if d == -1]
        fixed = math.prod(d for d in target if d != -1)
        if free:
            if known_in is None:
                return tuple(None if d == -1 else d for d in target)
            if fixed == 0 or known_in % fixed:
                raise ShapeRuleViolation(f"cannot reshape {format_shape(shape)} ({known_in} elements) to "
                                         f"{format_shape(target)}: {known_in} is not a multiple of {fixed}")
            return tuple(known_in // fixed if d == -1 else d for d in target)
        if known_in is not None and known_in != fixed:
            raise ShapeRuleViolation(f"cannot reshape {format_shape(shape)} ({known_in} elements) to "
                                     f"{format_shape(target)} ({fixed} elements)")
        known_part = math.prod(d for d in shape if d is not None)
        if known_in is None and (fixed % known_part if known_part else fixed):
            raise ShapeRuleViolation(f"cannot reshape {format_shape(shape)} to {format_shape(target)} "
                                     f"({fixed} elements) whatever its None sizes: {fixed} is not a multiple of "
                                     f"{known_part}, the product of its known sizes")
        return tuple(target)

    def flops(self, in_shapes, out_shape, attrs):
        return 0

    def describe(self, attrs):
        return f"to {format_shape(attrs['shape'])}"

    def kernel_params(self, in_shapes, out_shape, attrs, ref_shapes):
        return {}

    def gradient(self, node, dy):
        return [reshape_like(dy, node.inputs[0])]


class ReshapeLike(Op):
    """Reshape to the (run-time) shape of another tensor."""
    name = "reshape"
    view_of_input = 0

    def infer_shape(self, in_shapes, attrs, ref_shapes):
        return ref_shapes[0]

    def flops(self, in_shapes, out_shape, attrs):
        return 0

    def gradient(self, node, dy):
        return [reshape_like(dy, node.inputs[0])]


def reshape(x, shape, name=None):
    """Same elements, new shape; one size may be -1 (inferred). `None` in `shape` is read as -1."""
    (x,) = tensors(x)
    if isinstance(shape, (int, np.integer)):
        shape = (shape,)
    target = tuple(-1 if d is None else d for d in shape)
    if any(not isinstance(d, (int, np.integer)) or d < -1 for d in target) or target.count(-1) > 1:
        raise GraphError(f"reshape '{x.name}': shape {shape!r} must hold ints >= 0 and at most one -1 (or None)")
    return apply(Reshape(), [x], {"shape": tuple(int(d) for d in target)}, name=name)


def reshape_like(x, like):
    if x.shape == like.shape and None not in x.shape:
        return x
    return apply(ReshapeLike(), [x], refs=[like], name="reshape")


def flatten(x, start_dim=1, name=None):
    """Merge the axes from `start_dim` on into one: (N, C, H, W) -> (N, C*H*W)."""
    (x,) = tensors(x)
    start = checked("flatten", normalize_axes, start_dim, x.ndim, "start_dim")[0]
    tail = x.shape[start:]
    merged = -1 if None in tail else math.prod(tail)
    head = x.shape[:start]
    if merged == -1 and None in head:
        raise GraphError(f"flatten '{x.name}': shape {format_shape(x.shape)} has unknown sizes both before and "
                         f"after start_dim={start_dim}; give the sizes after it")
    return reshape(x, tuple(-1 if d is None else d for d in head) + (merged,), name=name or "flatten")


class Transpose(Op):
    name = "transpose"

    def infer_shape(self, in_shapes, attrs, ref_shapes):
        return tuple(in_shapes[0][a] for a in attrs["axes"])

    def flops(self, in_shapes, out_shape, attrs):
        return 0

    def describe(self, attrs):
        return f"axes={attrs['axes']}"

    def gradient(self, node, dy):
        inverse = tuple(int(a) for a in np.argsort(node.attrs["axes"]))
        return [transpose(dy, inverse)]


def transpose(x, axes=None, name=None):
    """Permute axes; the default reverses them (a matrix's transpose)."""
    (x,) = tensors(x)
    if axes is None:
        axes = tuple(reversed(range(x.ndim)))
    axes = tuple(axes)
    valid = [int(a) % x.ndim for a in axes if isinstance(a, (int, np.integer)) and -x.ndim <= a < x.ndim]
    if len(axes) != x.ndim or sorted(valid) != list(range(x.ndim)):
        raise GraphError(f"transpose '{x.name}': axes {axes} is not a permutation of the {x.ndim} axes of "
                         f"shape {format_shape(x.shape)}")
    return apply(Transpose(), [x], {"axes": tuple(int(a) % x.ndim for a in axes)}, name=name)


class Concat(Op):
    """Tensors joined along an axis; their dtypes promote as in `add` (NumPy's np.concatenate does the same)."""
    name = "concat"

    def infer_dtype(self, in_dtypes, attrs):
        return np.result_type(*in_dtypes)

    def infer_shape(self, in_shapes, attrs, ref_shapes):
        axis = attrs["axis"]
        first = in_shapes[0]
        for i, s in enumerate(in_shapes[1:], start=2):
            if len(s) != len(first):
                raise ShapeRuleViolation(f"input {i} has rank {len(s)}, input 1 has rank {len(first)}")
            for a, (d0, d) in enumerate(zip(first, s)):
                if a != axis and d0 is not None and d is not None and d0 != d:
                    raise ShapeRuleViolation(
                        f"inputs must agree on every axis but axis {axis}: input 1 {format_shape(first)} and "
                        f"input {i} {format_shape(s)} differ on axis {a}")
        sizes = [s[axis] for s in in_shapes]
        out = list(first)
        out[axis] = None if None in sizes else sum(sizes)
        return tuple(out)

    def flops(self, in_shapes, out_shape, attrs):
        return 0

    def describe(self, attrs):
        return f"axis={attrs['axis']}"

    def gradient(self, node, dy):
        return [apply(ConcatGrad(), [dy], {"axis": node.attrs["axis"], "part": i}, refs=node.inputs,
                      name="concat_grad") for i in range(len(node.inputs))]


class ConcatGrad(Op):
    """The part of dy that came from input `part` of a concat."""
    name = "concat_grad"

    def infer_shape(self, in_shapes, attrs, ref_shapes):
        return ref_shapes[attrs["part"]]

    def flops(self, in_shapes, out_shape, attrs):
        return 0

    def kernel_params(self, in_shapes, out_shape, attrs, ref_shapes):
        axis, part = attrs["axis"], attrs["part"]
        start = sum(s[axis] for s in ref_shapes[:part])
        return {"axis": axis, "start": start, "stop": start + ref_shapes[part][axis]}


def concat(values, axis=0, name=None):
    """Join tensors along an existing axis. Mixed dtypes promote as in `add`: float32 with float64 gives float64."""
    inputs = tensors(*values)
    if not inputs:
        raise GraphError(f"concat ({user_site()}): needs at least one tensor")
    (axis,) = checked("concat", normalize_axes, axis, inputs[0].ndim)
    dtype = np.result_type(*[t.dtype for t in inputs])
    return apply(Concat(), [cast(t, dtype) for t in inputs], {"axis": axis}, name=name)


class GetItem(Op):
    """Basic indexing x[i, a:b:c, ..., None] — ints, slices, Ellipsis and None (new axis)."""
    name = "getitem"

    def infer_shape(self, in_shapes, attrs, ref_shapes):
        return indexed_shape(in_shapes[0], attrs["index"])

    def flops(self, in_shapes, out_shape, attrs):
        return 0

    def describe(self, attrs):
        return "[" + ", ".join(_format_index(i) for i in attrs["index"]) + "]"

    def gradient(self, node, dy):
        return [apply(GetItemGrad(), [dy], dict(node.attrs), refs=[node.inputs[0]], name="getitem_grad")]


class GetItemGrad(Op):
    """Zeros of x's shape with dy written where x[index] was read."""
    name = "getitem_grad"

    def infer_shape(self, in_shapes, attrs, ref_shapes):
        return ref_shapes[0]

    def flops(self, in_shapes, out_shape, attrs):
        return 0


def _format_index(i):
    if isinstance(i, slice):
        return ":".join("" if v is None else str(v) for v in (i.start, i.stop, i.step)).rstrip(":") or ":"
    return "..." if i is Ellipsis else str(i)


def indexed_shape(shape, index):
    """The shape of x[index] for an index of ints, slices and None (Ellipsis already expanded)."""
    out, axis = [], 0
    for item in index:
        if item is None:
            out.append(1)
            continue
        size = shape[axis]
        if isinstance(item, slice):
            out.append(None if size is None else len(range(*item.indices(size))))
        elif size is not None and not -size <= item < size:
            raise ShapeRuleViolation(f"index {item} is out of bounds for axis {axis} with size {size}")
        axis += 1
    return tuple(out) + tuple(shape[axis:])


def getitem(x, index, name=None):
    """x[index] with basic indexing: ints, slices (with steps), Ellipsis and None."""
    (x,) = tensors(x)
    index = index if isinstance(index, tuple) else (index,)
    for item in index:
        if not (item is None or item is Ellipsis or isinstance(item, slice)
                or (isinstance(item, (int, np.integer)) and not isinstance(item, bool))):
            raise GraphError(f"indexing '{x.name}' with {item!r}: graphnet supports ints, slices, ... and None "
                             "(basic indexing); gather with arrays is not an op yet")
    if sum(i is Ellipsis for i in index) > 1:
        raise GraphError(f"indexing '{x.name}' ({user_site()}): an index can have only one ellipsis (...)")
    for item in index:
        if isinstance(item, slice) and not all(v is None or (isinstance(v, (int, np.integer))
                                                             and not isinstance(v, bool))
                                               for v in (item.start, item.stop, item.step)):
            written = ":".join("" if v is None else repr(v) for v in (item.start, item.stop, item.step))
            raise GraphError(f"indexing '{x.name}' ({user_site()}) with [{written}]: a slice's start, stop and step "
                             "must be ints or None")
        if isinstance(item, slice) and item.step == 0:
            raise GraphError(f"indexing '{x.name}' ({user_site()}) with [{_format_index(item)}]: a slice step "
                             "cannot be zero (as in NumPy); use step 1 for every element, or an int index for one")
    n_axes = sum(i is not None and i is not Ellipsis for i in index)
    if n_axes > x.ndim:
        raise GraphError(f"indexing '{x.name}' of shape {format_shape(x.shape)}: {n_axes} indices for "
                         f"{x.ndim} axes")
    if Ellipsis in index:
        at = index.index(Ellipsis)
        index = index[:at] + (slice(None),) * (x.ndim - n_axes) + index[at + 1:]
    index = tuple(int(i) if isinstance(i, (int, np.integer)) else i for i in index)
    return apply(GetItem(), [x], {"index": index}, name=name)
