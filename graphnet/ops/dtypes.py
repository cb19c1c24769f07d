"""Which dtype an op computes in: NumPy 2's promotion rules (NEP 50), written down in one place.

    two tensors                     np.result_type: int64 + float32 -> float64, float32 + float64 -> float64
    a tensor and a Python number    the number is "weak" (NEP 50): it takes the tensor's dtype where it is of the
                                    same kind or a lower one (x_float32 * 2.5 stays float32, labels + 1 stays
                                    int64); a float with an integer or bool tensor gives float64, NumPy's default
                                    float, which holds every integer up to 2**53 exactly; an integer that does not
                                    fit the tensor's integer dtype is an error, as in NumPy 2
    true division, exp, log, sqrt   integers and bools compute in float64, as NumPy does for int32 and int64 (for
                                    int8/int16 NumPy picks float16/float32; graphnet has no float16)
    sum / mean                      bools and small integers sum in int64 (NumPy's default int); the mean of
                                    integers is float64

NumPy scalars (np.float64(0.5), np.int64(3)) count as Python numbers here — NEP 50 makes them "strong", but then
`x * np.sqrt(d)` would turn a float32 network into float64.

An input whose dtype differs from the one its op computes in is cast by a `cast` node first (the schedule shows
it), so every kernel reads operands of one dtype; `gn.cast(x, "float64")` is the same op, written by the user.
"""
import numpy as np

from ..errors import ShapeError, user_site
from ..graph import Tensor, _as_dtype, _graph_context, constant, format_shape, get_default_graph
from ..op import Op
from ._util import apply, tensors

NUMBER_TYPES = (bool, int, float, np.bool_, np.integer, np.floating)


def is_number(value):
    """A Python or NumPy scalar: promoted as a "weak" value (see the module docstring)."""
    return isinstance(value, NUMBER_TYPES)


def result_dtype(values):
    """The dtype NumPy 2 gives `values` combined: tensors by their dtype, numbers as weak scalars."""
    strong = [v.dtype for v in values if isinstance(v, Tensor)]
    weak = [v.item() if isinstance(v, np.generic) else v for v in values if is_number(v)]
    return np.result_type(*strong, *weak)


def float_result(dtype):
    """The dtype of a float-valued op (true division, exp, ...) on `dtype`: floats stay, integers become float64."""
    return dtype if dtype.kind == "f" else np.dtype("float64")


class Cast(Op):
    """x converted to another dtype, as x.astype(dtype): floats to integers truncate toward zero."""
    name = "cast"

    def infer_shape(self, in_shapes, attrs, ref_shapes):
        return in_shapes[0]

    def infer_dtype(self, in_dtypes, attrs):
        return attrs["dtype"]

    def describe(self, attrs):
        return f"to {attrs['dtype']}"

    def kernel_params(self, in_shapes, out_shape, attrs, ref_shapes):
        return {}                                      # the output buffer has the new dtype

    def gradient(self, node, dy):
        x = node.inputs[0]
        return [cast(dy, x.dtype) if x.dtype.kind == "f" else None]


def cast(x, dtype, name=None):
    """x as `dtype` (like NumPy's x.astype(dtype)); a tensor already of that dtype is returned as it is."""
    (x,) = tensors(x)
    dtype = _as_dtype(dtype, f"cast '{x.name}'", user_site())
    if x.dtype == dtype:
        return x
    return apply(Cast(), [x], {"dtype": dtype}, name=name)


def as_dtype(value, dtype, opname, like=None):
    """A tensor or a number as a tensor of `dtype`: a tensor of another dtype gets a cast node; a number becomes a
    constant of that dtype in `like`'s graph — an error if it does not fit, as in NumPy 2."""
    if isinstance(value, Tensor):
        return cast(value, dtype)
    try:
        array = np.asarray(value.item() if isinstance(value, np.generic) else value, dtype=dtype)
    except OverflowError:
        tensor = like.name if like is not None else "x"
        raise ShapeError(f"{opname} ({user_site()}): the Python integer {value} does not fit {dtype}, the dtype of "
                         f"'{tensor}' (NumPy 2 raises here too); cast '{tensor}' to a wider integer first, e.g. "
                         f"gn.cast({tensor}, 'int64')") from None
    with _graph_context(like.graph if like is not None else get_default_graph()):
        return constant(array)


def promoted(opname, values, dtype_rule=None):
    """`values` (tensors, numbers, arrays) as tensors of one dtype: NumPy's result dtype, changed by `dtype_rule`
    where the op needs (true division gives floats). Numbers become constants; tensors of another dtype are cast."""
    values = [v if isinstance(v, Tensor) or is_number(v) else tensors(v)[0] for v in values]
    like = next((v for v in values if isinstance(v, Tensor)), None)
    dtype = result_dtype(values)
    if dtype_rule is not None:
        dtype = dtype_rule(dtype)
    return [as_dtype(v, dtype, opname, like) for v in values]


def require_not_bool(opname, x, hint):
    """NumPy refuses `-` and unary minus on booleans; so does graphnet, at the line that wrote them."""
    if x.dtype == np.dtype(bool):
        raise ShapeError(f"{opname} ({user_site()}): '{x.name}' {format_shape(x.shape)} is bool, and NumPy has "
                         f"no {opname} of booleans; {hint}")
