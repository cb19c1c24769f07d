"""Loss kernels (see graphnet/ops/losses.py for the formulas)."""
import numpy as np

from ...errors import FeedError
from ...ops.losses import (BceGrad, BinaryCrossEntropyWithLogits, Mse, MseGrad, SoftmaxCrossEntropy,
                           SoftmaxCrossEntropyGrad)


def _check_labels(labels, classes):
    bad = labels[(labels < 0) | (labels >= classes)]
    if bad.size:
        raise FeedError(f"softmax_cross_entropy: labels must be class indices in [0, {classes}), got {bad[0]} "
                        f"({bad.size} out of range)")


def softmax_cross_entropy(out, logits, labels):
    _check_labels(labels, logits.shape[1])
    shifted = logits - np.max(logits, axis=1, keepdims=True)
    log_probs = shifted - np.log(np.sum(np.exp(shifted), axis=1, keepdims=True))
    out[...] = -np.mean(log_probs[np.arange(len(labels)), labels])


def softmax_cross_entropy_grad(out, dloss, logits, labels):
    _check_labels(labels, logits.shape[1])      # a program may fetch the gradient without the loss
    shifted = logits - np.max(logits, axis=1, keepdims=True)
    probs = np.exp(shifted)
    probs /= np.sum(probs, axis=1, keepdims=True)
    probs[np.arange(len(labels)), labels] -= 1
    out[...] = probs * (dloss / len(labels))


def mse(out, pred, target):
    out[...] = np.mean((pred - target) ** 2)


def mse_grad(out, dloss, pred, target):
    out[...] = 2 * (pred - target) * (dloss / pred.size)


def binary_cross_entropy_with_logits(out, z, t):
    """max(z, 0) − z·t + log(1 + e^−|z|), averaged: equal to −[t log σ(z) + (1−t) log(1−σ(z))] without overflow."""
    out[...] = np.mean(np.maximum(z, 0) - z * t + np.log1p(np.exp(-np.abs(z))))


def bce_grad(out, dloss, z, t, *, wrt):
    if wrt == "logits":
        e = np.exp(-np.abs(z))
        sigmoid = np.where(z >= 0, 1 / (1 + e), e / (1 + e))
        out[...] = (sigmoid - t) * (dloss / z.size)
    else:
        out[...] = -z * (dloss / z.size)


KERNELS = {SoftmaxCrossEntropy: softmax_cross_entropy, SoftmaxCrossEntropyGrad: softmax_cross_entropy_grad, Mse: mse,
           MseGrad: mse_grad, BinaryCrossEntropyWithLogits: binary_cross_entropy_with_logits, BceGrad: bce_grad}
