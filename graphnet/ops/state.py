"""assign: the one op with a side effect. It writes a new value into a variable's storage, in place.

The compiler orders every read of the variable before its assignment (write-after-read), so a step that
updates a weight never runs before the gradient that still needs the old weight.
"""
from ..errors import GraphError, ShapeRuleViolation, user_site
from ..graph import format_shape
from ..op import Op
from ._util import apply, tensors


class Assign(Op):
    name = "assign"
    differentiable = False
    writes_variable = True

    def infer_shape(self, in_shapes, attrs, ref_shapes):
        var, value = in_shapes
        if len(var) != len(value) or any(v is not None and d is not None and v != d for v, d in zip(var, value)):
            raise ShapeRuleViolation(f"value {format_shape(value)} does not fit variable {format_shape(var)}")
        return var

    def flops(self, in_shapes, out_shape, attrs):
        return 0


def assign(variable, value, name=None):
    """Write `value` into `variable` when the program runs; the node's value is the new one."""
    variable, value = tensors(variable, value)
    site = user_site()
    if not variable.op.is_variable:
        raise GraphError(f"assign ({site}): '{variable.name}' is a {variable.op.name}, not a variable; only "
                         "variables have storage to write")
    if value.dtype != variable.dtype:
        raise GraphError(f"assign ({site}): value '{value.name}' is {value.dtype} but variable '{variable.name}' "
                         f"is {variable.dtype}")
    return apply(Assign(), [variable, value], name=name or f"assign_{variable.name}")
