"""Activation kernels and their derivatives (see graphnet/ops/activations.py for the formulas)."""
import numpy as np
from ...ops.activations import (Elu, EluGrad, LeakyRelu, LeakyReluGrad, LogSoftmax, LogSoftmaxGrad, Relu,
                                ReluGrad, Sigmoid, SigmoidGrad, Softmax, SoftmaxGrad, Tanh, TanhGrad)


def relu(out, x):
    np.maximum(x, 0, out=out)


def relu_grad(out, dy, y):
    np.multiply(dy, y > 0, out=out)


def leaky_relu(out, x, *, slope):
    out[...] = np.where(x > 0, x, slope * x)


def leaky_relu_grad(out, dy, x, *, slope):
    out[...] = np.where(x > 0, dy, slope * dy)


def elu(out, x, *, alpha):
    out[...] = np.where(x > 0, x, alpha * np.expm1(np.minimum(x, 0)))


def elu_grad(out, dy, x, y, *, alpha):
    out[...] = np.where(x > 0, dy, dy * (y + alpha))


def sigmoid(out, x):
    """1/(1 + e^−x) for x ≥ 0 and e^x/(1 + e^x) for x < 0: neither form overflows where it is used."""
    e = np.exp(-np.abs(x))
    out[...] = np.where(x >= 0, 1 / (1 + e), e / (1 + e))


def sigmoid_grad(out, dy, y):
    out[...] = dy * y * (1 - y)


def tanh(out, x):
    np.tanh(x, out=out)


def tanh_grad(out, dy, y):
    out[...] = dy * (1 - y * y)


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


KERNELS = {Relu: relu, ReluGrad: relu_grad, LeakyRelu: leaky_relu, LeakyReluGrad: leaky_relu_grad, Elu: elu,
           EluGrad: elu_grad, Sigmoid: sigmoid, SigmoidGrad: sigmoid_grad, Tanh: tanh, TanhGrad: tanh_grad,
           Softmax: softmax, SoftmaxGrad: softmax_grad, LogSoftmax: log_softmax, LogSoftmaxGrad: log_softmax_grad}
