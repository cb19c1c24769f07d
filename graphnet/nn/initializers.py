"""Initializers: how a layer's variables get their first values. Seeded, so a model is reproducible.

An initializer is called as `init(shape, dtype, rng)` with a NumPy `Generator` and returns an array. Layers give
each variable its own generator, `numpy.random.default_rng([model_seed, crc32(variable name)])`, so a variable's
first value depends only on the model's seed and its name — not on the order layers were built in.

For a weight of shape (n_in, n_out) (dense) or (K, C, R, S) (conv):

    fan_in  = n_in,  or C·R·S        (the inputs that feed one output)
    fan_out = n_out, or K·R·S        (the outputs one input feeds)

    glorot_uniform   U(−a, a),   a = √(6 / (fan_in + fan_out))     Glorot & Bengio 2010 ("Xavier")
    glorot_normal    N(0, σ²),   σ² = 2 / (fan_in + fan_out)
    he_uniform       U(−a, a),   a = √(6 / fan_in)                  He et al. 2015 ("Kaiming"), for ReLU
    he_normal        N(0, σ²),   σ² = 2 / fan_in

Glorot keeps the variance of activations and of gradients equal across a layer for linear or tanh units; He
doubles it to make up for the half of a ReLU's inputs that it zeroes.
"""
import math

import numpy as np

from ..errors import GraphError


def fans(shape):
    """(fan_in, fan_out) of a weight: (n_in, n_out) for a matrix, (C·R·S, K·R·S) for a conv filter (K, C, R, S)."""
    shape = tuple(shape)
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    if len(shape) == 2:
        return shape[0], shape[1]
    receptive = math.prod(shape[2:])
    return shape[1] * receptive, shape[0] * receptive


class Initializer:
    """Base class: `__call__(shape, dtype, rng)` returns a new array."""

    def __call__(self, shape, dtype, rng):
        raise NotImplementedError

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({args})"


class Zeros(Initializer):
    def __call__(self, shape, dtype, rng):
        return np.zeros(shape, dtype)


class Ones(Initializer):
    def __call__(self, shape, dtype, rng):
        return np.ones(shape, dtype)


class Constant(Initializer):
    def __init__(self, value):
        self.value = float(value)

    def __call__(self, shape, dtype, rng):
        return np.full(shape, self.value, dtype)


class Uniform(Initializer):
    """U(low, high)"""

    def __init__(self, low=-0.05, high=0.05):
        self.low, self.high = float(low), float(high)

    def __call__(self, shape, dtype, rng):
        return rng.uniform(self.low, self.high, size=shape).astype(dtype)


class Normal(Initializer):
    """N(mean, std²)"""

    def __init__(self, mean=0.0, std=0.05):
        self.mean, self.std = float(mean), float(std)

    def __call__(self, shape, dtype, rng):
        return rng.normal(self.mean, self.std, size=shape).astype(dtype)


class GlorotUniform(Initializer):
    """U(−a, a) with a = √(6 / (fan_in + fan_out))"""

    def __call__(self, shape, dtype, rng):
        fan_in, fan_out = fans(shape)
        limit = math.sqrt(6.0 / (fan_in + fan_out))
        return rng.uniform(-limit, limit, size=shape).astype(dtype)


class GlorotNormal(Initializer):
    """N(0, 2 / (fan_in + fan_out))"""

    def __call__(self, shape, dtype, rng):
        fan_in, fan_out = fans(shape)
        return rng.normal(0.0, math.sqrt(2.0 / (fan_in + fan_out)), size=shape).astype(dtype)


class HeUniform(Initializer):
    """U(−a, a) with a = √(6 / fan_in)"""

    def __call__(self, shape, dtype, rng):
        fan_in, _ = fans(shape)
        limit = math.sqrt(6.0 / fan_in)
        return rng.uniform(-limit, limit, size=shape).astype(dtype)


class HeNormal(Initializer):
    """N(0, 2 / fan_in)"""

    def __call__(self, shape, dtype, rng):
        fan_in, _ = fans(shape)
        return rng.normal(0.0, math.sqrt(2.0 / fan_in), size=shape).astype(dtype)


zeros, ones = Zeros(), Ones()
glorot_uniform, glorot_normal = GlorotUniform(), GlorotNormal()
he_uniform, he_normal = HeUniform(), HeNormal()
xavier_uniform, xavier_normal = glorot_uniform, glorot_normal
kaiming_uniform, kaiming_normal = he_uniform, he_normal

BY_NAME = {
    "zeros": zeros, "ones": ones,
    "glorot_uniform": glorot_uniform, "glorot_normal": glorot_normal,
    "xavier_uniform": glorot_uniform, "xavier_normal": glorot_normal,
    "he_uniform": he_uniform, "he_normal": he_normal,
    "kaiming_uniform": he_uniform, "kaiming_normal": he_normal,
    "uniform": Uniform(), "normal": Normal(),
}


def get(initializer):
    """An initializer from a name ('he_normal'), a number (a constant) or a callable (returned as is)."""
    if isinstance(initializer, str):
        try:
            return BY_NAME[initializer]
        except KeyError:
            raise GraphError(f"unknown initializer {initializer!r}; choose one of {', '.join(sorted(BY_NAME))}, "
                             "a number, or a callable init(shape, dtype, rng)") from None
    if isinstance(initializer, (int, float)) and not isinstance(initializer, bool):
        return Constant(initializer)
    if callable(initializer):
        return initializer
    raise GraphError(f"an initializer must be a name, a number or a callable init(shape, dtype, rng); "
                     f"got {initializer!r}")
