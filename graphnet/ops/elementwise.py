"""Elementwise arithmetic with NumPy broadcasting: add, sub, mul, div, neg, exp, log, sqrt, pow, maximum, minimum.

Result dtypes follow NumPy 2 (see dtypes.py): `labels * 0.5` is float64, `labels / 2` too, `x_float32 * 2` stays
float32. Gradients of broadcast inputs are summed back to the input's shape by `sum_to` (the adjoint of
broadcasting).
"""
import numpy as np

from ..errors import GraphError, ShapeError, ShapeRuleViolation, user_site
from ..op import Op, numel
from ._util import apply, broadcast_shapes, tensors
from .dtypes import as_dtype, float_result, promoted, require_not_bool, result_dtype


class Broadcasting(Op):
    """An op whose inputs broadcast against each other, like NumPy's."""

    def infer_shape(self, in_shapes, attrs, ref_shapes):
        out = broadcast_shapes(*in_shapes)
        static = attrs.get("static_shapes")
        if static is not None and all(d is not None for s in in_shapes for d in s):
            check_unknowns_equal(static, in_shapes, out)
        return out

    def infer_dtype(self, in_dtypes, attrs):
        return np.result_type(*in_dtypes)

    def kernel_params(self, in_shapes, out_shape, attrs, ref_shapes):
        return {k: v for k, v in attrs.items() if k != "static_shapes"}


def check_unknowns_equal(static_shapes, shapes, out):
    """Sizes declared None on both sides were assumed equal at build time; hold the feeds to that."""
    static_out = broadcast_shapes(*static_shapes)
    rank = len(out)
    for i, (static, shape) in enumerate(zip(static_shapes, shapes)):
        offset = rank - len(shape)
        for axis, (s, d) in enumerate(zip(static, shape)):
            if s is None and static_out[axis + offset] is None and d != out[axis + offset]:
                raise ShapeRuleViolation(
                    f"input {i + 1} has size {d} on axis {axis} where the result has {out[axis + offset]}; both "
                    "were declared None (any size), which graphnet takes to mean equal. Broadcasting over a size "
                    "unknown at build time is not supported: declare that size as 1")


def broadcasting(op, *values, name=None, dtype_rule=None):
    """The op applied to `values` brought to one dtype (NumPy's promotion, see dtypes.py)."""
    inputs = promoted(op.name, values, dtype_rule)
    return apply(op, inputs, {"static_shapes": [t.shape for t in inputs]}, name=name)


def sum_to(dy, like):
    """Sum `dy` over the axes along which `like` was broadcast, giving `like`'s shape (identity if none).

    Equal shapes need no sum even with None sizes: unknown sizes on both sides of a broadcast are held equal
    when the program runs (see `check_unknowns_equal`)."""
    if dy.shape == like.shape:
        return dy
    return apply(SumTo(), [dy], refs=[like], name="sum_to")


class SumTo(Op):
    name = "sum_to"

    def infer_shape(self, in_shapes, attrs, ref_shapes):
        return ref_shapes[0]

    def flops(self, in_shapes, out_shape, attrs):
        return numel(in_shapes[0])

    def view_of(self, in_shapes, out_shape):
        """Where the shapes agree (a broadcast that turned out to repeat nothing) the sum is the input itself."""
        return 0 if tuple(in_shapes[0]) == tuple(out_shape) else None

    def kernel_params(self, in_shapes, out_shape, attrs, ref_shapes):
        (shape,), target = in_shapes, ref_shapes[0]
        lead = len(shape) - len(target)
        axes = tuple(range(lead)) + tuple(lead + a for a, d in enumerate(target) if d == 1 and shape[lead + a] != 1)
        return {"axes": axes}

    def gradient(self, node, dy):
        from .reduce import broadcast_to
        return [broadcast_to(dy, node.inputs[0])]


class Add(Broadcasting):
    name = "add"

    def gradient(self, node, dy):
        a, b = node.inputs
        return [sum_to(dy, a), sum_to(dy, b)]


class Sub(Broadcasting):
    name = "sub"

    def gradient(self, node, dy):
        a, b = node.inputs
        return [sum_to(dy, a), sum_to(neg(dy), b)]


class Mul(Broadcasting):
    name = "mul"

    def gradient(self, node, dy):
        a, b = node.inputs
        return [sum_to(mul(dy, b), a), sum_to(mul(dy, a), b)]


class Div(Broadcasting):
    name = "div"

    def gradient(self, node, dy):
        a, b = node.inputs
        da = div(dy, b)                               # d(a/b)/da = 1/b
        db = neg(div(mul(dy, node), b))               # d(a/b)/db = -a/b² = -(a/b)/b
        return [sum_to(da, a), sum_to(db, b)]


class Maximum(Broadcasting):
    name = "maximum"

    def gradient(self, node, dy):
        a, b = node.inputs
        return [sum_to(apply(SelectGrad(), [dy, a, b], {"pick": "max_first"}), a),
                sum_to(apply(SelectGrad(), [dy, a, b], {"pick": "max_second"}), b)]


class Minimum(Broadcasting):
    name = "minimum"

    def gradient(self, node, dy):
        a, b = node.inputs
        return [sum_to(apply(SelectGrad(), [dy, a, b], {"pick": "min_first"}), a),
                sum_to(apply(SelectGrad(), [dy, a, b], {"pick": "min_second"}), b)]


class SelectGrad(Broadcasting):
    """dy where the chosen input won the max/min, 0 elsewhere: the input maximum (minimum) returned. That is the
    first where a >= b (a <= b) or a is NaN, else the second — ties go to the first input, and a NaN result's
    gradient goes to the NaN it came from, as PyTorch routes it."""
    name = "select_grad"
    differentiable = False

    def infer_dtype(self, in_dtypes, attrs):
        return in_dtypes[0]

    def describe(self, attrs):
        return attrs["pick"]


class Unary(Op):
    def infer_shape(self, in_shapes, attrs, ref_shapes):
        return in_shapes[0]


class Neg(Unary):
    name = "neg"

    def gradient(self, node, dy):
        return [neg(dy)]


class Exp(Unary):
    name = "exp"

    def gradient(self, node, dy):
        return [mul(dy, node)]                         # (e^x)' = e^x


class Log(Unary):
    name = "log"

    def gradient(self, node, dy):
        return [div(dy, node.inputs[0])]               # (ln x)' = 1/x


class Sqrt(Unary):
    name = "sqrt"

    def gradient(self, node, dy):
        return [div(dy, mul(node, 2.0))]               # (√x)' = 1/(2√x)


class Pow(Unary):
    """x ** p for a constant exponent p. x ** 0.5 is √x, as NumPy computes it (so (−∞) ** 0.5 is NaN, not C's
    pow(−∞, 0.5) = +∞, and (−0) ** 0.5 is −0)."""
    name = "pow"

    def describe(self, attrs):
        return f"p={attrs['exponent']:g}"

    def gradient(self, node, dy):
        p = node.attrs["exponent"]                     # (x^p)' = p x^(p-1)
        x = node.inputs[0]
        if p == 0:                                     # x^0 = 1 is constant: 0, not 0 · x^-1 (NaN at x = 0)
            from .reduce import broadcast_to
            return [broadcast_to(as_dtype(0, x.dtype, "pow", like=x), x)]
        if p == 2:
            return [mul(dy, mul(x, 2.0))]
        return [mul(dy, mul(pow(x, p - 1), float(p)))]


def add(a, b, name=None):
    """a + b, broadcasting."""
    return broadcasting(Add(), a, b, name=name)


def sub(a, b, name=None):
    """a - b, broadcasting."""
    return broadcasting(Sub(), a, b, name=name, dtype_rule=_no_bool_subtraction)


def _no_bool_subtraction(dtype):
    """NumPy has no subtraction of booleans (is True - True False, or 0?); nor has graphnet."""
    if dtype == np.dtype(bool):
        raise ShapeError(f"sub ({user_site()}): both operands are bool, and NumPy has no subtraction of booleans; "
                         "cast them to integers first, e.g. gn.cast(a, 'int64')")
    return dtype


def mul(a, b, name=None):
    """a * b elementwise, broadcasting."""
    return broadcasting(Mul(), a, b, name=name)


def div(a, b, name=None):
    """a / b elementwise, broadcasting: true division, so integers divide to float64 (as in NumPy)."""
    return broadcasting(Div(), a, b, name=name, dtype_rule=float_result)


def maximum(a, b, name=None):
    """max(a, b) elementwise; the gradient goes to `a` where they tie."""
    return broadcasting(Maximum(), a, b, name=name)


def minimum(a, b, name=None):
    """min(a, b) elementwise; the gradient goes to `a` where they tie."""
    return broadcasting(Minimum(), a, b, name=name)


def neg(x, name=None):
    """-x"""
    (x,) = tensors(x)
    require_not_bool("neg", x, f"cast it to a number first, e.g. -gn.cast({x.name}, 'int64') (or "
                               f"1 - gn.cast({x.name}, 'int64') for a logical not)")
    return apply(Neg(), [x], name=name)


def _float_unary(op, x, name):
    """An op whose values are floats: integers and bools are cast to float64 first, as NumPy computes them."""
    (x,) = promoted(op.name, [x], float_result)
    return apply(op, [x], name=name)


def exp(x, name=None):
    """e ** x"""
    return _float_unary(Exp(), x, name)


def log(x, name=None):
    """Natural logarithm."""
    return _float_unary(Log(), x, name)


def sqrt(x, name=None):
    """√x"""
    return _float_unary(Sqrt(), x, name)


def pow(x, exponent, name=None):
    """x ** exponent for a constant (Python number) exponent; the result dtype is NumPy's (an integer tensor to a
    non-negative integer power stays integer, to a float power becomes float64)."""
    if not isinstance(exponent, (int, float, np.integer, np.floating)) or isinstance(exponent, (bool, np.bool_)):
        raise GraphError(f"pow ({user_site()}): the exponent must be a Python number, got "
                         f"{type(exponent).__name__}; for a tensor exponent write exp(b * log(a))")
    (x,) = tensors(x)
    dtype = result_dtype([x, exponent])
    if dtype.kind in "biu" and exponent < 0:
        raise ShapeError(f"pow ({user_site()}): '{x.name}' is {x.dtype}, and NumPy does not raise integers to "
                         f"negative integer powers ({exponent}); cast it to a float first: "
                         f"gn.cast({x.name}, 'float64') ** {exponent}")
    return apply(Pow(), [as_dtype(x, dtype, "pow")], {"exponent": float(exponent)}, name=name)
