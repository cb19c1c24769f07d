"""The fused ops (graphnet/ops/fused.py) as compositions of their chains' reference kernels: what a compiled
backend's fused kernel must compute. The reference backend itself does not fuse; these are the twins the fused
kernels are tested against."""
import numpy as np

from ...ops.activations import Relu, ReluGrad
from ...ops.fused import (AvgPool2dGradReluGrad, Conv2dGradInputReluGrad, Conv2dRelu, Dense, DenseRelu,
                          MatMulReluGrad, MatMulSgdUpdate, MaxPool2dGradReluGrad, SgdUpdate)
from .conv import conv2d, conv2d_grad_input
from .elementwise import add, mul, sub
from .linalg import matmul
from .pointwise import KERNELS as POINTWISE
from .pool import avg_pool2d_grad, max_pool2d_grad

relu, relu_grad = POINTWISE[Relu], POINTWISE[ReluGrad]


def conv2d_relu(out, x, w, b=None, **params):
    conv2d(out, x, w, b, **params)
    relu(out, out)


def dense(out, a, b, bias, **params):
    matmul(out, a, b, **params)
    add(out, out, bias)


def dense_relu(out, a, b, bias, **params):
    dense(out, a, b, bias, **params)
    relu(out, out)


def matmul_relu_grad(out, a, b, relu_y, **params):
    matmul(out, a, b, **params)
    relu_grad(out, out, relu_y)


def conv2d_grad_input_relu_grad(out, dy, w, relu_y, **params):
    conv2d_grad_input(out, dy, w, **params)
    relu_grad(out, out, relu_y)


def max_pool2d_grad_relu(out, dy, x, y, relu_y, **params):
    max_pool2d_grad(out, dy, x, y, **params)
    relu_grad(out, out, relu_y)


def avg_pool2d_grad_relu(out, dy, relu_y, **params):
    avg_pool2d_grad(out, dy, **params)
    relu_grad(out, out, relu_y)


def sgd_update(out, scale, x, u, variable):
    """variable ← u − scale·x, where out is the variable's storage"""
    step = np.empty_like(out)
    mul(step, scale, x)
    sub(out, u, step)


def matmul_sgd_update(out, a, b, scale, u, variable, **params):
    """variable ← u − scale·(a @ b), where out is the variable's storage"""
    gradient = np.empty_like(out)
    matmul(gradient, a, b, **params)
    sgd_update(out, scale, gradient, u, variable)


KERNELS = {Conv2dRelu: conv2d_relu, Dense: dense, DenseRelu: dense_relu, MatMulReluGrad: matmul_relu_grad,
           Conv2dGradInputReluGrad: conv2d_grad_input_relu_grad, MaxPool2dGradReluGrad: max_pool2d_grad_relu,
           AvgPool2dGradReluGrad: avg_pool2d_grad_relu, SgdUpdate: sgd_update,
           MatMulSgdUpdate: matmul_sgd_update}
