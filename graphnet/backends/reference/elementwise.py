"""Elementwise kernels: NumPy ufuncs writing into `out`."""
import numpy as np

from ...ops.dtypes import Cast
from ...ops.elementwise import Add, Div, Exp, Log, Maximum, Minimum, Mul, Neg, Pow, SelectGrad, Sqrt, Sub


def add(out, a, b):
    np.add(a, b, out=out)


def sub(out, a, b):
    np.subtract(a, b, out=out)


def mul(out, a, b):
    np.multiply(a, b, out=out)


def div(out, a, b):
    np.divide(a, b, out=out)


def maximum(out, a, b):
    np.maximum(a, b, out=out)


def minimum(out, a, b):
    np.minimum(a, b, out=out)


def neg(out, x):
    np.negative(x, out=out)


def exp(out, x):
    np.exp(x, out=out)


def log(out, x):
    np.log(x, out=out)


def sqrt(out, x):
    np.sqrt(x, out=out)


def pow(out, x, *, exponent):
    """x ** p, the exponent in out's dtype (an integer power of integers stays integer); x ** 0.5 is √x in NumPy."""
    np.power(x, out.dtype.type(exponent), out=out)


def select_grad(out, dy, a, b, *, pick):
    """dy where the picked input is the one maximum (minimum) returned: the first where a >= b (a <= b) or a is
    NaN, else the second. Ties go to the first input; a NaN result's gradient goes to the NaN."""
    first_wins = (a >= b if pick.startswith("max") else a <= b) | np.isnan(a)
    np.multiply(dy, first_wins if pick.endswith("first") else ~first_wins, out=out)


def cast(out, x):
    """x converted to out's dtype, as x.astype(out.dtype)."""
    np.copyto(out, x, casting="unsafe")


KERNELS = {Add: add, Sub: sub, Mul: mul, Div: div, Maximum: maximum, Minimum: minimum, Neg: neg, Exp: exp, Log: log,
           Sqrt: sqrt, Pow: pow, SelectGrad: select_grad, Cast: cast}
