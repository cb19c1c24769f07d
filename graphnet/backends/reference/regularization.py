"""dropout and batch norm kernels (see graphnet/ops/regularization.py for the formulas)."""
import numpy as np

from ...ops.regularization import (BatchNorm, BatchNormGradGamma, BatchNormGradInput, Dropout, Variance,
                                   VarianceGrad)
from ...random import stream_start, uniform


def dropout(out, x, *, rate, seed, rng):
    start = stream_start(x.shape, rng.first_sample)           # 0 unless x is a shard of the batch
    keep = uniform(seed, rng.counter, x.size, start).reshape(x.shape) >= rate
    np.multiply(x, keep * (1.0 / (1.0 - rate)), out=out, casting="unsafe")


def _per_channel(v, ndim):
    return v.reshape((1, -1) + (1,) * (ndim - 2))


def _normalized(x, axes, eps):
    mu = np.mean(x, axis=axes, keepdims=True)
    inv_std = 1.0 / np.sqrt(np.var(x, axis=axes, keepdims=True) + eps)
    return (x - mu) * inv_std, inv_std


def batch_norm(out, x, gamma, beta, *, eps, axes):
    x_hat, _ = _normalized(x, axes, eps)
    out[...] = x_hat * _per_channel(gamma, x.ndim) + _per_channel(beta, x.ndim)


def batch_norm_grad_input(out, dy, x, gamma, *, eps, axes):
    x_hat, inv_std = _normalized(x, axes, eps)
    m = x.size // gamma.size
    sum_dy = np.sum(dy, axis=axes, keepdims=True)
    sum_dy_xhat = np.sum(dy * x_hat, axis=axes, keepdims=True)
    out[...] = _per_channel(gamma, x.ndim) * inv_std / m * (m * dy - sum_dy - x_hat * sum_dy_xhat)


def batch_norm_grad_gamma(out, dy, x, *, eps, axes):
    x_hat, _ = _normalized(x, axes, eps)
    out[...] = np.sum(dy * x_hat, axis=axes)


def variance(out, x, *, axes, ddof):
    out[...] = np.var(x, axis=axes, ddof=ddof)


def variance_grad(out, dy, x, *, axes, ddof):
    m = np.prod([x.shape[a] for a in axes])
    mu = np.mean(x, axis=axes, keepdims=True)
    out[...] = np.expand_dims(dy, axes) * 2 * (x - mu) / (m - ddof)


KERNELS = {Dropout: dropout, BatchNorm: batch_norm, BatchNormGradInput: batch_norm_grad_input,
           BatchNormGradGamma: batch_norm_grad_gamma, Variance: variance, VarianceGrad: variance_grad}
