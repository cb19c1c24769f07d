"""Softmax and log-softmax along an axis, and their gradients (formulas in graphnet/ops/activations.py); the
pointwise activations are in pointwise.py."""
import numpy as np

from ...ops.activations import LogSoftmax, LogSoftmaxGrad, Softmax, SoftmaxGrad


def softmax(out, x, *, axis):
    shifted = x - np.max(x, axis=axis, keepdims=True)
    e = np.exp(shifted)
    out[...] = e / np.sum(e, axis=axis, keepdims=True)


def softmax_grad(out, dy, y, *, axis):
    out[...] = y * (dy - np.sum(dy * y, axis=axis, keepdims=True))


def log_softmax(out, x, *, axis):
    shifted = x - np.max(x, axis=axis, keepdims=True)
    out[...] = shifted - np.log(np.sum(np.exp(shifted), axis=axis, keepdims=True))


def log_softmax_grad(out, dy, y, *, axis):
    out[...] = dy - np.exp(y) * np.sum(dy, axis=axis, keepdims=True)


KERNELS = {Softmax: softmax, SoftmaxGrad: softmax_grad, LogSoftmax: log_softmax, LogSoftmaxGrad: log_softmax_grad}
