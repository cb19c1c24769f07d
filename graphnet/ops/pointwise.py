"""The pointwise ops of graphnet/ops/formulas.py, made from their declarations: for each formula an op class
(Softplus), its gradient op class (SoftplusGrad), and a public function (gn.softplus(x)).

The gradient is an ordinary op of the graph: y = f(x) gets dx = f_grad(dy, x and/or y), whose kernel evaluates
the formula's dx on every backend.
"""
import inspect

from ..errors import GraphError, user_site
from ..op import Op, numel
from ._util import apply, require_float, tensors
from .formula_code import check, inputs_of_gradient
from .formulas import FORMULAS


class PointwiseOp(Op):
    """y = f(x), element by element, with the formula `formula`."""
    formula = None
    gradient_op = None

    def infer_shape(self, in_shapes, attrs, ref_shapes):
        return in_shapes[0]

    def flops(self, in_shapes, out_shape, attrs):
        return self.formula.flops * numel(out_shape)

    def describe(self, attrs):
        return " ".join(f"{name}={attrs[name]:g}" for name in self.formula.params)

    def gradient(self, node, dy):
        arrays = {"dy": dy, "x": node.inputs[0], "y": node}
        inputs = [arrays[name] for name in inputs_of_gradient(self.formula)]
        return [apply(self.gradient_op(), inputs, dict(node.attrs), name=f"{self.name}_grad")]


class PointwiseGrad(PointwiseOp):
    """dx = dy·f′(x), element by element, with the formula's `dx`."""
    differentiable = False
    gradient = Op.gradient          # no second derivatives

    def describe(self, attrs):
        return ""


def camel(name):
    return "".join(part.capitalize() for part in name.split("_"))


def declare(formula):
    """(op class, gradient op class, public function) for one formula (checked first: a mistake in it is named)."""
    check(formula)
    grad = type(camel(formula.name) + "Grad", (PointwiseGrad,),
                {"name": f"{formula.name}_grad", "formula": formula, "__module__": __name__,
                 "__doc__": f"dx = {formula.dx}"})
    op = type(camel(formula.name), (PointwiseOp,),
              {"name": formula.name, "formula": formula, "gradient_op": grad, "__module__": __name__,
               "__doc__": f"y = {formula.y}: {formula.doc}"})
    return op, grad, builder(formula, op)


def builder(formula, op_class):
    """The public function: f(x, *params, name=None), checking the parameters it is given."""
    parameters = [inspect.Parameter("x", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
    parameters += [inspect.Parameter(p, inspect.Parameter.POSITIONAL_OR_KEYWORD,
                                     default=inspect.Parameter.empty if d is None else d)
                   for p, d in formula.params.items()]
    parameters.append(inspect.Parameter("name", inspect.Parameter.POSITIONAL_OR_KEYWORD, default=None))
    signature = inspect.Signature(parameters)

    def build(*args, **kwargs):
        try:
            bound = signature.bind(*args, **kwargs)
        except TypeError as error:
            raise GraphError(f"{formula.name}{signature} ({user_site()}): {error}") from None
        bound.apply_defaults()
        (x,) = tensors(bound.arguments["x"])
        require_float(x, formula.name)
        attrs = {p: _number(formula.name, p, bound.arguments[p]) for p in formula.params}
        if formula.requires and not eval(formula.requires, {"__builtins__": {}}, dict(attrs)):
            given = ", ".join(f"{p}={v:g}" for p, v in attrs.items())
            raise GraphError(f"{formula.name} ({user_site()}): needs {formula.requires}, got {given}")
        return apply(op_class(), [x], attrs, name=bound.arguments["name"])

    build.__name__ = build.__qualname__ = formula.name
    build.__signature__ = signature
    build.__doc__ = f"{formula.doc}\n\n    y = {formula.y}\n    dx = {formula.dx}"
    build.__module__ = "graphnet"
    return build


def _number(op_name, parameter, value):
    if isinstance(value, bool) or not isinstance(value, (int, float)) and not hasattr(value, "__float__"):
        raise GraphError(f"{op_name}: {parameter} must be a number, got {value!r}")
    value = float(value)
    if value != value:
        raise GraphError(f"{op_name}: {parameter} is NaN; give a number")
    return value


OPS = {}            # formula name -> (op class, gradient op class)
FUNCTIONS = {}      # formula name -> public function
for _formula in FORMULAS:
    _op, _grad, _function = declare(_formula)
    OPS[_formula.name] = (_op, _grad)
    FUNCTIONS[_formula.name] = _function
    globals().update({_op.__name__: _op, _grad.__name__: _grad, _formula.name: _function})

__all__ = list(FUNCTIONS)
