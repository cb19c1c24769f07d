"""Small helpers shared by the op families."""
import numpy as np

from ..errors import GraphError, ShapeRuleViolation
from ..graph import Tensor, as_tensor, get_default_graph


def graph_of(*values):
    """The graph of the first tensor among `values` (numbers carry none), else the default graph."""
    for v in values:
        if isinstance(v, Tensor):
            return v.graph
    return get_default_graph()


def tensors(*values):
    """Turn numbers and arrays into constants, using the first tensor's dtype for Python scalars."""
    like = next((v for v in values if isinstance(v, Tensor)), None)
    return [as_tensor(v, like) for v in values]


def apply(op, inputs, attrs=None, name=None, refs=()):
    return graph_of(*inputs, *refs).apply(op, inputs, attrs, name=name, refs=refs)


def normalize_axes(axis, ndim, what="axis"):
    """`axis` (None, int or sequence, negatives allowed) as a sorted tuple of non-negative axes."""
    if axis is None:
        return tuple(range(ndim))
    if isinstance(axis, (int, np.integer)) and not isinstance(axis, (bool, np.bool_)):
        axes = (axis,)
    elif isinstance(axis, (tuple, list, range, np.ndarray)):
        axes = tuple(axis)
    else:
        raise ShapeRuleViolation(f"{what} {axis!r} is not an axis: give an int or a tuple of ints, e.g. "
                                 f"{what}=1 or {what}=(0, 2)")
    result = []
    for a in axes:
        if not isinstance(a, (int, np.integer)) or isinstance(a, (bool, np.bool_)):
            raise ShapeRuleViolation(f"{what} {axis!r} holds {a!r}, which is not an int; axes are ints, e.g. "
                                     f"{what}=1 or {what}=(0, 2)")
        if not -ndim <= a < ndim:
            raise ShapeRuleViolation(f"{what} {a!r} is out of range for a tensor of rank {ndim} "
                                     f"(valid: {-ndim}..{ndim - 1})")
        result.append(int(a) % ndim)
    if len(set(result)) != len(result):
        raise ShapeRuleViolation(f"{what} {axis!r} repeats an axis")
    return tuple(sorted(result))


def require_float(t, what):
    if t.dtype.kind != "f":
        raise GraphError(f"{what} ({t.site}): '{t.name}' has dtype {t.dtype}; this needs float32 or float64")


def broadcast_shapes(*shapes):
    """NumPy broadcasting with None for unknown sizes. None against None is taken to mean equal sizes."""
    rank = max(len(s) for s in shapes)
    padded = [(1,) * (rank - len(s)) + tuple(s) for s in shapes]
    out = []
    for axis, dims in enumerate(zip(*padded)):
        known = {d for d in dims if d is not None and d != 1}
        if len(known) > 1:
            listed = " and ".join(str(tuple(s)) for s in shapes)
            raise ShapeRuleViolation(f"shapes {listed} do not broadcast: axis {axis - rank} has sizes "
                                     f"{sorted(known)}; sizes must be equal or 1")
        if known:
            out.append(known.pop())
        elif any(d is None for d in dims):
            out.append(None)
        else:
            out.append(1)
    return tuple(out)


def checked(opname, rule, *args):
    """Run a build-time check outside an op's shape rule, reporting a violation as a ShapeError at the user's line."""
    from ..errors import ShapeError, user_site
    try:
        return rule(*args)
    except ShapeRuleViolation as violation:
        raise ShapeError(f"{opname} ({user_site()}): {violation}") from None
