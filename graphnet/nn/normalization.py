"""Normalization layers: batch, layer, group and instance norm; local response norm.

They differ only in the axes the mean and variance are taken over, for an (N, C, H, W) input:

    BatchNorm     over (N, H, W), per channel    — batch statistics in training, running ones in inference
    LayerNorm     over (C, H, W), per sample     (or over the last `ndim` axes)
    GroupNorm     over (C/G, H, W) per sample and group of C/G channels
    InstanceNorm  over (H, W), per sample and channel   (GroupNorm with G = C)

    x̂ = (x − μ) / √(σ² + ε),    y = γ · x̂ + β      (γ, β learned; σ² the biased variance)

Batch norm is the `batch_norm` op (its training branch updates the running statistics as a side effect).
The other three are written with elementwise ops and reductions, so autodiff derives their gradients.

LocalResponseNorm (AlexNet, GoogLeNet) learns nothing: each value is divided by a power of its neighbours' squares
across channels, b_c = a_c / (k + α/n · Σ_{n channels around c} a²)^β (the `local_response_norm` op).
"""
from .. import ops
from ..errors import GraphError, ShapeError, user_site
from ..graph import format_shape
from ..messages import warn
from ..op import numel
from .layers import Layer, _require_known, _require_rank


def normalize(x, axes, eps):
    """(x − mean) / √(var + ε) over `axes` (a graph of mean, sub, mul, sqrt and div)."""
    centred = ops.sub(x, ops.mean(x, axis=axes, keepdims=True))
    variance = ops.mean(ops.mul(centred, centred), axis=axes, keepdims=True)
    return ops.div(centred, ops.sqrt(ops.add(variance, eps)))


class BatchNorm(Layer):
    """Batch normalization of (N, C) or (N, C, H, W) input, per channel.

    parameters: γ, β (trainable) and the running mean and variance (statistics, not trained) — 4·C in all.
    Training:  y = γ · (x − μ_B) / √(σ²_B + ε) + β, and r ← (1 − momentum)·r + momentum·(batch statistic)
    Inference: y = γ · (x − running_mean) / √(running_var + ε) + β

    momentum is the weight of the new batch, as in PyTorch (default 0.1). Keras's momentum is the weight of the
    old value (default 0.99): Keras's momentum=m is momentum=1 − m here, and a momentum above 0.5 is warned about.
    Training needs more than one value per channel (N·H·W ≥ 2): the variance of one value is 0/0.
    """
    kind = "batchnorm"
    ranks = (2, 4)

    def __init__(self, momentum=0.1, eps=1e-5, name=None):
        super().__init__(name)
        if not 0 <= momentum <= 1:
            raise GraphError(f"BatchNorm: momentum must be in [0, 1] (the weight of each new batch in the running "
                             f"statistics), got {momentum!r}")
        if momentum > 0.5:
            warn(f"BatchNorm: momentum={momentum:g} gives each new batch a weight of {momentum:g} in the running "
                 f"statistics (PyTorch's convention: running = (1 - momentum)·running + momentum·batch). If this is "
                 f"Keras's momentum (the weight of the old value), write momentum={1 - momentum:.3g}")
        self.momentum, self.eps = float(momentum), float(eps)

    def check_training_batch(self, batch_size, where):
        """Refuse, before anything runs, a training batch that gives some channel a single value (N·H·W = 1):
        its variance would be 0/0 and the running variance NaN from then on, as every later prediction."""
        if not self.built or self.input_shape is None:
            return
        shape = (batch_size,) + tuple(self.input_shape[1:])
        if None not in shape and numel(shape[2:]) * batch_size < 2:
            raise GraphError(f"{where}: {self.describe()} expected more than 1 value per channel when training, "
                             f"got input {format_shape(shape)}: the batch variance of a single value is undefined "
                             "and would make the running variance NaN. Train on batches of at least 2 samples")

    def create_variables(self, input_shape, dtype):
        layout = " or ".join({2: "(N, C)", 4: "(N, C, H, W)"}[r] for r in self.ranks)
        _require_rank(self, input_shape, self.ranks, layout)
        _require_known(self, input_shape, (1,), "number of channels")
        channels = (input_shape[1],)
        self.gamma = self.add_variable("gamma", channels, dtype, "ones")
        self.beta = self.add_variable("beta", channels, dtype, "zeros")
        self.running_mean = self.add_variable("running_mean", channels, dtype, "zeros", trainable=False)
        self.running_var = self.add_variable("running_var", channels, dtype, "ones", trainable=False)

    def call(self, x, training):
        return ops.batch_norm(x, self.gamma, self.beta, self.running_mean, self.running_var, training,
                              momentum=self.momentum, eps=self.eps, name="batch_norm")

    def param_formula(self):
        return f"4·{self.gamma.shape[0]}" if self.built else ""


class BatchNorm1D(BatchNorm):
    """Batch norm of (N, C) input (after a dense layer)."""
    ranks = (2,)


class BatchNorm2D(BatchNorm):
    """Batch norm of (N, C, H, W) input (after a convolution)."""
    ranks = (4,)


class LayerNorm(Layer):
    """Normalize each sample over its last `ndim` axes; γ and β have the shape of those axes.

    parameters = 2 · (size of the normalized axes)
    """
    kind = "layernorm"

    def __init__(self, ndim=1, eps=1e-5, name=None):
        super().__init__(name)
        self.ndim, self.eps = int(ndim), float(eps)

    def create_variables(self, input_shape, dtype):
        if not 1 <= self.ndim < len(input_shape):
            raise ShapeError(f"{self.describe()} ({user_site()}): ndim={self.ndim} axes cannot be normalized in "
                             f"an input of rank {len(input_shape)}; the batch axis must stay")
        axes = tuple(range(len(input_shape) - self.ndim, len(input_shape)))
        _require_known(self, input_shape, axes, "normalized size")
        shape = tuple(input_shape[a] for a in axes)
        self.axes = axes
        self.gamma = self.add_variable("gamma", shape, dtype, "ones")
        self.beta = self.add_variable("beta", shape, dtype, "zeros")

    def call(self, x, training):
        return ops.add(ops.mul(normalize(x, self.axes, self.eps), self.gamma), self.beta)

    def param_formula(self):
        return f"2·{numel(self.gamma.shape)}" if self.built else ""


class GroupNorm(Layer):
    """Split the C channels into `groups` groups of C/G and normalize each sample's group over its channels and
    positions: (N, C, *S) -> (N, G, C/G, *S) -> normalize over (C/G, *S) -> back; γ, β per channel.

    parameters = 2·C
    """
    kind = "groupnorm"

    def __init__(self, groups, eps=1e-5, name=None):
        super().__init__(name)
        self.groups, self.eps = groups, float(eps)

    def create_variables(self, input_shape, dtype):
        _require_rank(self, input_shape, (2, 3, 4), "(N, C), (N, C, L) or (N, C, H, W)")
        _require_known(self, input_shape, range(1, len(input_shape)), "channel and spatial size")
        channels = input_shape[1]
        groups = self.groups_for(channels)
        if channels % groups:
            raise ShapeError(f"{self.describe()} ({user_site()}): groups={groups} does not divide the {channels} "
                             f"channels of {input_shape}")
        self.grouped_shape = (-1, groups, channels // groups) + tuple(input_shape[2:])
        self.flat_shape = (-1,) + tuple(input_shape[1:])
        self.affine_shape = (channels,) + (1,) * (len(input_shape) - 2)
        self.gamma = self.add_variable("gamma", (channels,), dtype, "ones")
        self.beta = self.add_variable("beta", (channels,), dtype, "zeros")

    def groups_for(self, channels):
        return self.groups

    def call(self, x, training):
        grouped = ops.reshape(x, self.grouped_shape)
        axes = tuple(range(2, len(self.grouped_shape)))
        x_hat = ops.reshape(normalize(grouped, axes, self.eps), self.flat_shape)
        gamma = ops.reshape(self.gamma, self.affine_shape)
        beta = ops.reshape(self.beta, self.affine_shape)
        return ops.add(ops.mul(x_hat, gamma), beta)

    def param_formula(self):
        return f"2·{self.gamma.shape[0]}" if self.built else ""


class InstanceNorm(GroupNorm):
    """Normalize each sample's channel over its positions (GroupNorm with one channel per group)."""
    kind = "instancenorm"

    def __init__(self, eps=1e-5, name=None):
        super().__init__(groups=None, eps=eps, name=name)

    def groups_for(self, channels):
        return channels


class LocalResponseNorm(Layer):
    """b_c = a_c / (k + α/n · Σ_{c' in the n = size channels around c} a_{c'}²)^β over (N, C, ...) input, the
    channels beyond the edges counted as zeros: PyTorch's nn.LocalResponseNorm, with its arguments and defaults.
    No parameters; the same in training and inference."""
    kind = "lrn"

    def __init__(self, size, alpha=1e-4, beta=0.75, k=1.0, name=None):
        super().__init__(name)
        self.size, self.alpha, self.beta, self.k = size, alpha, beta, k

    def call(self, x, training):
        return ops.local_response_norm(x, self.size, self.alpha, self.beta, self.k, name="local_response_norm")
