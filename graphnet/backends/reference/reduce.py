"""Reduction kernels and their adjoints, and sum_to: the sum over the axes a broadcast repeated."""
import numpy as np

from ...ops.elementwise import SumTo
from ...ops.reduce import BroadcastTo, Max, MaxGrad, Mean, Sum


def sum(out, x, *, axes, keepdims):
    np.sum(x, axis=axes, keepdims=keepdims, out=out)


def mean(out, x, *, axes, keepdims):
    np.mean(x, axis=axes, keepdims=keepdims, out=out)


def max(out, x, *, axes, keepdims):
    np.max(x, axis=axes, keepdims=keepdims, out=out)


def max_grad(out, dy, x, y, *, axes, keepdims):
    """dy shared equally among the positions of x that equal the max — or that are NaN, where the max is NaN
    (torch.max's rule: the gradient goes to where the result came from)."""
    y_kept = y if keepdims else np.expand_dims(y, axes)
    dy_kept = dy if keepdims else np.expand_dims(dy, axes)
    winners = (x == y_kept) | (np.isnan(x) & np.isnan(y_kept))
    out[...] = winners * (dy_kept / np.sum(winners, axis=axes, keepdims=True))


def broadcast_to(out, dy, *, keep_shape, scale):
    out[...] = np.reshape(dy, keep_shape) * scale


def sum_to(out, dy, *, axes):
    """Sum over the broadcast axes, then drop the leading ones: the adjoint of NumPy broadcasting."""
    out[...] = np.sum(dy, axis=axes, keepdims=True).reshape(out.shape)


KERNELS = {SumTo: sum_to, Sum: sum, Mean: mean, Max: max, MaxGrad: max_grad, BroadcastTo: broadcast_to}
