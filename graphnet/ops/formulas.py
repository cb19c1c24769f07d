"""Pointwise ops, declared once: each entry below becomes an op, its gradient op, a public function, and a kernel
on every backend (graphnet/ops/pointwise.py makes them).

A declaration gives the value y and the gradient dx = dy·∂y/∂x as expressions in a small language, Python's own
syntax over scalars:

    names      x (the input), y (the op's output), dy (the gradient arriving), and the op's parameters
    numbers    0.5, 3, …
    operators  + − * /,  comparisons (True is 1, False 0),  and / or
    functions  where(c, a, b)  maximum(a, b)  minimum(a, b)  (NaN wins, as in NumPy)   abs  square  sqrt  exp
               expm1  log1p  tanh  erf  sigmoid

From one expression come the reference kernel (NumPy), the cpu kernel (a Cython loop, generated when the package
is built) and the cuda kernel (a Numba device function). The gradient reads x, y or both, whichever its expression
names: reading y instead of x lets the compiler free x early, or fuse the op into the one before it.

This module is plain data with no imports of graphnet, so that setup.py can read it before anything is built.
"""
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Formula:
    name: str                 # the op's name (and its public function's): "softplus"
    y: str                    # the value, in x and the parameters
    dx: str                   # dy·∂y/∂x, in dy, x, y and the parameters
    doc: str                  # one line for the docstring and the nn documentation
    params: dict = field(default_factory=dict)   # parameter name -> default (None: the caller must give it)
    requires: str = None      # a rule the parameters must keep, checked when the op is built
    flops: int = 1            # per element, for the printed schedule
    activation: bool = True   # also an nn activation string: nn.Dense(10, activation="softplus")


SQRT_HALF = "0.7071067811865476"          # 1/√2
INV_SQRT_2PI = "0.3989422804014327"       # 1/√(2π)
SQRT_2_OVER_PI = "0.7978845608028654"     # √(2/π)
TWO_OVER_SQRT_PI = "1.1283791670955126"   # 2/√π

FORMULAS = [
    Formula("relu", y="maximum(x, 0)", dx="dy * (y > 0)",
            doc="max(x, 0)"),
    Formula("leaky_relu", y="where(x > 0, x, slope * x)", dx="where(x > 0, dy, slope * dy)",
            params={"slope": 0.01}, doc="x if x > 0 else slope·x"),
    Formula("elu", y="where(x > 0, x, alpha * expm1(minimum(x, 0)))", dx="where(x > 0, dy, dy * (y + alpha))",
            params={"alpha": 1.0}, doc="x if x > 0 else α(eˣ − 1)"),
    Formula("sigmoid", y="sigmoid(x)", dx="dy * y * (1 - y)", flops=4,
            doc="1 / (1 + e⁻ˣ), computed without overflow for large |x|"),
    Formula("tanh", y="tanh(x)", dx="dy * (1 - y * y)",
            doc="(eˣ − e⁻ˣ) / (eˣ + e⁻ˣ)"),
    Formula("softplus", y="maximum(x, 0) + log1p(exp(-abs(x)))", dx="dy * sigmoid(x)", flops=4,
            doc="log(1 + eˣ), a smooth ReLU, computed as max(x, 0) + log(1 + e^−|x|) so that it never overflows"),
    Formula("silu", y="x * sigmoid(x)", dx="dy * sigmoid(x) * (1 + x * (1 - sigmoid(x)))", flops=5,
            doc="x·σ(x), also called swish"),
    Formula("gelu", y=f"0.5 * x * (1 + erf(x * {SQRT_HALF}))",
            dx=f"dy * (0.5 * (1 + erf(x * {SQRT_HALF})) + x * {INV_SQRT_2PI} * exp(-0.5 * x * x))", flops=8,
            doc="x·Φ(x) = x/2·(1 + erf(x/√2)), Φ the normal distribution's CDF (PyTorch's gelu)"),
    Formula("gelu_tanh", y=f"0.5 * x * (1 + tanh({SQRT_2_OVER_PI} * (x + 0.044715 * x * x * x)))",
            dx=f"dy * (0.5 * (1 + tanh({SQRT_2_OVER_PI} * (x + 0.044715 * x * x * x))) + 0.5 * x * "
               f"(1 - square(tanh({SQRT_2_OVER_PI} * (x + 0.044715 * x * x * x)))) * {SQRT_2_OVER_PI} * "
               f"(1 + 3 * 0.044715 * x * x))", flops=10,
            doc="x/2·(1 + tanh(√(2/π)·(x + 0.044715·x³))), the tanh approximation of gelu "
                "(PyTorch's gelu(x, approximate='tanh'))"),
    Formula("relu6", y="minimum(maximum(x, 0), 6)", dx="dy * (x > 0 and x < 6)",
            doc="min(max(x, 0), 6), as in MobileNetV2"),
    Formula("hard_sigmoid", y="minimum(maximum(x + 3, 0), 6) / 6", dx="dy * (x > -3 and x < 3) / 6",
            doc="relu6(x + 3) / 6, a piecewise-linear sigmoid (PyTorch's hardsigmoid)"),
    Formula("hard_swish", y="x * minimum(maximum(x + 3, 0), 6) / 6",
            dx="where(x < -3, 0, where(x <= 3, dy * (x / 3 + 0.5), dy))", flops=4,
            doc="x·relu6(x + 3) / 6, as in MobileNetV3 (PyTorch's hardswish)"),
    Formula("erf", y="erf(x)", dx=f"dy * {TWO_OVER_SQRT_PI} * exp(-x * x)", flops=4, activation=False,
            doc="the error function 2/√π·∫₀ˣ e^(−t²) dt (gelu's Φ(x) = (1 + erf(x/√2))/2; ONNX's Erf)"),
    Formula("clip", y="minimum(maximum(x, min), max)", dx="dy * (x >= min and x <= max)",
            params={"min": None, "max": None}, requires="min <= max", activation=False,
            doc="x limited to [min, max]; its gradient passes where min ≤ x ≤ max (as PyTorch's clamp)"),
]
