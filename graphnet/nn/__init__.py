"""graphnet.nn: layers, models and initializers for building networks on the static graph.

    from graphnet import nn
    model = nn.Sequential([
        nn.Conv2D(6, 5, padding=2, activation="relu"), nn.MaxPool2D(2),      # conv1, maxpool1
        nn.Conv2D(16, 5, activation="relu"), nn.MaxPool2D(2),                # conv2, maxpool2
        nn.Flatten(),
        nn.Dense(120, activation="relu"), nn.Dense(84, activation="relu"), nn.Dense(7),
    ], name="lenet5")
    model.build((1, 28, 28))         # variables conv1/weight, conv1/bias, ...
    model.summary()

Calling a model on a tensor with training=True or training=False builds the branch for that mode; every branch
uses the same variables, so a training program and an inference program compiled from them share the weights.
"""
from . import initializers
from .layers import (ELU, GELU, Activation, AvgPool2D, Conv2D, Dense, Dropout, Flatten, GlobalAvgPool2D, Hardsigmoid,
                     Hardswish, Layer, LeakyReLU, LogSoftmax, MaxPool2D, ReLU, ReLU6, Sigmoid, SiLU, Softmax, Softplus,
                     Tanh, output_size)
from .model import Model, Sequential
from .normalization import (BatchNorm, BatchNorm1D, BatchNorm2D, GroupNorm, InstanceNorm, LayerNorm,
                            LocalResponseNorm)
from . import zoo  # noqa: E402 — the classic architectures, built from the layers above

__all__ = ["initializers", "Layer", "Dense", "Conv2D", "MaxPool2D", "AvgPool2D", "GlobalAvgPool2D", "Flatten",
           "Dropout", "Activation", "ReLU", "LeakyReLU", "ELU", "Sigmoid", "Tanh", "Softmax", "LogSoftmax",
           "ReLU6", "GELU", "SiLU", "Softplus", "Hardsigmoid", "Hardswish",
           "BatchNorm", "BatchNorm1D", "BatchNorm2D", "LayerNorm", "GroupNorm", "InstanceNorm", "LocalResponseNorm",
           "Model", "Sequential", "output_size", "zoo"]
