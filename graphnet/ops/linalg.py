"""Matrix multiplication, 2-D and batched: C = op(A) @ op(B), where op transposes the last two axes on request."""
import numpy as np

from ..errors import ShapeRuleViolation
from ..graph import format_shape
from ..op import Op, numel
from ._util import apply, broadcast_shapes, tensors
from .elementwise import check_unknowns_equal, sum_to


def flatten_hint(a, rows, attrs):
    """'; flatten a first' when a's sizes after the batch multiply to b's rows: a conv output fed to a dense layer."""
    if len(a) > 2 and not attrs["transpose_a"] and None not in a[1:] and rows is not None:
        size = 1
        for d in a[1:]:
            size *= d
        if size == rows:
            return f"; a looks unflattened: gn.flatten(a) gives ({a[0]}, {size})"
    return ""


class MatMul(Op):
    name = "matmul"

    def infer_shape(self, in_shapes, attrs, ref_shapes):
        a, b = in_shapes
        for which, s in (("a", a), ("b", b)):
            if len(s) < 2:
                raise ShapeRuleViolation(f"{which} has shape {format_shape(s)}; matmul needs at least 2 axes "
                                         f"(reshape a vector v to (1, n) or (n, 1))")
        m, k = (a[-1], a[-2]) if attrs["transpose_a"] else (a[-2], a[-1])
        k2, n = (b[-1], b[-2]) if attrs["transpose_b"] else (b[-2], b[-1])
        if k is not None and k2 is not None and k != k2:
            raise ShapeRuleViolation(
                f"inner sizes differ: a {format_shape(a)}{'ᵀ' if attrs['transpose_a'] else ''} @ "
                f"b {format_shape(b)}{'ᵀ' if attrs['transpose_b'] else ''} needs a's columns ({k}) to equal "
                f"b's rows ({k2})" + flatten_hint(a, k2, attrs))
        try:
            batch = broadcast_shapes(a[:-2], b[:-2]) if len(a) > 2 or len(b) > 2 else ()
        except ShapeRuleViolation as violation:
            raise ShapeRuleViolation(f"batch axes: {violation}") from None
        static = attrs.get("static_shapes")
        if batch and static is not None and None not in a + b:
            check_unknowns_equal([s[:-2] for s in static], [a[:-2], b[:-2]], batch)
        return batch + (m, n)

    def infer_dtype(self, in_dtypes, attrs):
        if in_dtypes[0] != in_dtypes[1]:
            raise ShapeRuleViolation(f"dtypes differ: {in_dtypes[0]} @ {in_dtypes[1]}; cast one of them, e.g. "
                                     f"gn.cast(a, '{np.result_type(*in_dtypes)}')")
        return in_dtypes[0]

    def flops(self, in_shapes, out_shape, attrs):
        a = in_shapes[0]
        k = a[-2] if attrs["transpose_a"] else a[-1]
        return 2 * numel(out_shape) * k

    def kernel_params(self, in_shapes, out_shape, attrs, ref_shapes):
        return {"transpose_a": attrs["transpose_a"], "transpose_b": attrs["transpose_b"]}

    def describe(self, attrs):
        return " ".join(t for t, on in (("Aᵀ", attrs["transpose_a"]), ("Bᵀ", attrs["transpose_b"])) if on)

    def gradient(self, node, dy):
        a, b = node.inputs
        ta, tb = node.attrs["transpose_a"], node.attrs["transpose_b"]
        if ta:
            da = matmul(b, dy, transpose_a=tb, transpose_b=True)       # dA = op(B) @ dCᵀ
        else:
            da = matmul(dy, b, transpose_b=not tb)                     # dA = dC @ op(B)ᵀ
        if tb:
            db = matmul(dy, a, transpose_a=True, transpose_b=ta)       # dB = dCᵀ @ op(A)
        else:
            db = matmul(a, dy, transpose_a=not ta)                     # dB = op(A)ᵀ @ dC
        return [sum_to(da, a), sum_to(db, b)]


def matmul(a, b, transpose_a=False, transpose_b=False, name=None):
    """a @ b over the last two axes; leading (batch) axes broadcast. `transpose_a/b` use aᵀ or bᵀ without a copy.

    A 1-D operand follows NumPy's `@`: a vector a is the row (1, n), a vector b the column (n, 1), and that axis is
    removed from the result — vector @ matrix is a vector, vector @ vector a scalar (a vector's transpose is itself,
    so transpose_a/b change nothing for it)."""
    from .shape import getitem, reshape
    a, b = tensors(a, b)
    row, column = a.ndim == 1, b.ndim == 1
    if row:
        a, transpose_a = reshape(a, (1, -1)), False
    if column:
        b, transpose_b = reshape(b, (-1, 1)), False
    product = apply(MatMul(), [a, b], {"transpose_a": bool(transpose_a), "transpose_b": bool(transpose_b),
                                       "static_shapes": [a.shape, b.shape]}, name=None if row or column else name)
    if column:
        product = getitem(product, (Ellipsis, 0), name=None if row else name)
    if row:
        product = getitem(product, (Ellipsis, 0) if column else (Ellipsis, 0, slice(None)), name=name)
    return product
