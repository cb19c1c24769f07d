"""The pointwise ops (graphnet/ops/formulas.py) in NumPy: each kernel evaluates its formula over whole arrays.

    softplus:       out = maximum(x, 0) + log1p(exp(-abs(x)))
    softplus_grad:  out = dy * sigmoid(x)

`where` becomes np.where, `and` &, a comparison a boolean array (True is 1); sigmoid is the overflow-free form
below, erf SciPy's.
"""
import numpy as np
from scipy.special import erf

from ...ops.formula_code import NumpyWriter, expression, kernel_inputs
from ...ops.pointwise import OPS


def sigmoid(x):
    """1/(1 + e^−x) for x ≥ 0 and e^x/(1 + e^x) for x < 0: e^−|x| never overflows."""
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e))


def numpy_kernel(formula, which):
    """fn(out, *arrays, **params) writing the formula's value (which="y") or gradient (which="dx") into out."""
    arrays = kernel_inputs(formula, which)
    params = f", *, {', '.join(formula.params)}" if formula.params else ""
    source = expression(formula, which, NumpyWriter())
    kernel = eval(f"lambda out, {', '.join(arrays)}{params}: np.copyto(out, {source}, casting='unsafe')",
                  {"np": np, "erf": erf, "sigmoid": sigmoid})
    kernel.__name__ = formula.name if which == "y" else f"{formula.name}_grad"
    kernel.__doc__ = f"out = {formula.y if which == 'y' else formula.dx}"
    return kernel


KERNELS = {op: numpy_kernel(op.formula, "y" if grad_op is None else "dx")
           for pair in OPS.values() for op, grad_op in ((pair[0], None), (pair[1], pair[0]))}
