"""dropout and batch_norm: the two ops that behave differently in training and in inference.

    dropout, training:  y = x · m / (1 − rate),  m ~ Bernoulli(1 − rate), drawn anew on every run
    batch_norm, training:  y = γ · (x − μ_B) / √(σ²_B + ε) + β, with μ_B, σ²_B over every axis but channels,
        and the running statistics updated as r ← (1 − momentum)·r + momentum·(batch statistic)
        (unbiased variance for the running one, as PyTorch does)
    batch_norm, inference:  y = γ · (x − running_mean) / √(running_var + ε) + β
"""
import itertools

from ..errors import GraphError, ShapeRuleViolation, user_site
from ..graph import Tensor, format_shape
from ..op import Op, numel
from ._util import apply, require_float, tensors
from .elementwise import add, mul, sub
from .reduce import mean, sum as reduce_sum
from .shape import reshape
from .state import assign

_seeds = itertools.count(1)


class Dropout(Op):
    """Zero each element with probability `rate`; scale the rest by 1/(1 − rate). The mask comes from a
    counter-based generator keyed by (seed, run number), so every backend draws the same mask."""
    name = "dropout"
    uses_rng = True

    def infer_shape(self, in_shapes, attrs, ref_shapes):
        return in_shapes[0]

    def describe(self, attrs):
        return f"rate={attrs['rate']:g} seed={attrs['seed']}"

    def gradient(self, node, dy):
        return [apply(Dropout(), [dy], dict(node.attrs), name="dropout_grad")]   # the same mask, applied to dy


def dropout(x, rate, training=True, seed=None, name=None):
    """Inverted dropout. In inference (`training=False`) or with rate 0 it is the identity."""
    (x,) = tensors(x)
    require_float(x, "dropout")
    if not 0 <= rate < 1:
        raise GraphError(f"dropout '{x.name}': rate must be in [0, 1), got {rate!r}")
    if not training or rate == 0:
        return x
    seed = next(_seeds) if seed is None else int(seed)
    return apply(Dropout(), [x], {"rate": float(rate), "seed": seed}, name=name)


def channel_axes(shape):
    """Axes batch norm averages over: all but the channel axis 1 of (N, C) or (N, C, H, W)."""
    return (0,) if len(shape) == 2 else (0, 2, 3)


class BatchNorm(Op):
    name = "batch_norm"

    def infer_shape(self, in_shapes, attrs, ref_shapes):
        x, gamma, beta = in_shapes
        check_batch_norm_shapes(x, gamma, beta)
        return x

    def flops(self, in_shapes, out_shape, attrs):
        return 8 * numel(out_shape)

    def check_runnable(self, in_shapes, attrs):
        """The running variance is unbiased (divided by M − 1): one value per channel would make it 0/0."""
        x = in_shapes[0]
        per_channel = numel(x) // x[1] if x[1] else 0
        if per_channel <= 1:
            raise ShapeRuleViolation(f"expected more than 1 value per channel when training, got input "
                                     f"{format_shape(x)} ({per_channel} per channel): its variance would be 0/0 and "
                                     f"make the running variance NaN; train with batches of 2 samples or more")

    def describe(self, attrs):
        return f"eps={attrs['eps']:g} training"

    def gradient(self, node, dy):
        x, gamma, _ = node.inputs
        dx = apply(BatchNormGradInput(), [dy, x, gamma], dict(node.attrs), name="batch_norm_grad_input")
        dgamma = apply(BatchNormGradGamma(), [dy, x], dict(node.attrs), refs=[gamma], name="batch_norm_grad_gamma")
        dbeta = reduce_sum(dy, axis=channel_axes(x.shape))
        return [dx, dgamma, dbeta]


class BatchNormGradInput(Op):
    """dx = γ/(σ·M) · (M·dy − Σdy − x̂·Σ(dy·x̂)),  x̂ = (x − μ)/σ,  M = elements per channel"""
    name = "batch_norm_grad_input"
    differentiable = False

    def infer_shape(self, in_shapes, attrs, ref_shapes):
        return in_shapes[1]

    def flops(self, in_shapes, out_shape, attrs):
        return 10 * numel(out_shape)


class BatchNormGradGamma(Op):
    """dγ = Σ dy·x̂ over every axis but channels"""
    name = "batch_norm_grad_gamma"
    differentiable = False

    def infer_shape(self, in_shapes, attrs, ref_shapes):
        return ref_shapes[0]

    def flops(self, in_shapes, out_shape, attrs):
        return 4 * numel(in_shapes[1])


class Variance(Op):
    """Per-channel variance over `axes`, divided by M − ddof (ddof=1: unbiased)."""
    name = "variance"

    def infer_shape(self, in_shapes, attrs, ref_shapes):
        return tuple(d for a, d in enumerate(in_shapes[0]) if a not in attrs["axes"])

    def flops(self, in_shapes, out_shape, attrs):
        return 3 * numel(in_shapes[0])

    def gradient(self, node, dy):
        return [apply(VarianceGrad(), [dy, node.inputs[0]], dict(node.attrs), name="variance_grad")]


class VarianceGrad(Op):
    """dx = dy · 2(x − μ)/(M − ddof)"""
    name = "variance_grad"
    differentiable = False

    def infer_shape(self, in_shapes, attrs, ref_shapes):
        return in_shapes[1]


def _is_variable(t):
    return isinstance(t, Tensor) and t.op.is_variable


def _swapped_order(running_mean, gamma):
    return (f"running_mean is '{running_mean.name}', a trainable variable, and gamma is '{gamma.name}', a "
            "non-trainable one: this looks like PyTorch's order F.batch_norm(x, running_mean, running_var, weight, "
            "bias). graphnet's is batch_norm(x, gamma, beta, running_mean, running_var, training): pass them in "
            "that order, or by keyword")


def _require_running_statistic(role, stat, gamma, site):
    """In training a running statistic is written in place: it must be a variable that is never trained."""
    where = f"batch_norm ({site}): in training the running statistics are updated in place"
    if not _is_variable(stat):
        raise GraphError(f"{where}, so {role} must be a non-trainable variable, e.g. gn.variable(np.zeros(C), "
                         f"trainable=False); got {stat!r}")
    if stat.attrs["trainable"]:
        if _is_variable(gamma) and not gamma.attrs["trainable"]:
            raise GraphError(f"batch_norm ({site}): {_swapped_order(stat, gamma)}")
        raise GraphError(f"{where}, so {role} must be a non-trainable variable, but '{stat.name}' is trainable: "
                         f"the optimizer and the statistics would both write it. If it is γ or β, the order is "
                         f"batch_norm(x, gamma, beta, running_mean, running_var, training) (PyTorch's is "
                         f"(x, running_mean, running_var, weight, bias)); else create it with trainable=False")


def check_batch_norm_shapes(x, gamma, beta):
    if len(x) not in (2, 4):
        raise ShapeRuleViolation(f"input must be (N, C) or (N, C, H, W), got {format_shape(x)}")
    for what, s in (("gamma", gamma), ("beta", beta)):
        if tuple(s) != (x[1],):
            raise ShapeRuleViolation(f"{what} must have shape ({x[1]},) — one per channel of {format_shape(x)} "
                                     f"— got {format_shape(s)}")


def batch_norm(x, gamma, beta, running_mean, running_var, training, momentum=0.1, eps=1e-5, name=None):
    """Batch normalization of (N, C) or (N, C, H, W) input per channel. In training the batch statistics are
    used and the running ones updated every time the program runs; in inference the running ones are used.

    The order is batch_norm(x, gamma, beta, running_mean, running_var, training) — not PyTorch's
    F.batch_norm(x, running_mean, running_var, weight, bias); keywords make either reading unambiguous. In
    training the running statistics are written, so they must be non-trainable variables (a trainable one, or
    γ in their place, is refused); in inference they are only read: any tensors (constants, placeholders,
    variables). Training needs more than one value per channel (N·H·W ≥ 2): the variance of one value is 0/0."""
    site = user_site()
    x, gamma, beta = tensors(x, gamma, beta)
    require_float(x, "batch_norm")
    if training:
        for role, stat in (("running_mean", running_mean), ("running_var", running_var)):
            _require_running_statistic(role, stat, gamma, site)
    else:
        running_mean, running_var = tensors(running_mean, running_var)
        if all(_is_variable(t) and t.attrs["trainable"] for t in (running_mean, running_var)) and \
                all(_is_variable(t) and not t.attrs["trainable"] for t in (gamma, beta)):
            raise GraphError(f"batch_norm ({site}): {_swapped_order(running_mean, gamma)}")
    from ._util import checked
    checked("batch_norm", check_batch_norm_shapes, x.shape, gamma.shape, beta.shape)
    checked("batch_norm", check_batch_norm_shapes, x.shape, running_mean.shape, running_var.shape)
    if training and None not in x.shape and numel(x.shape) // x.shape[1] < 2:
        raise GraphError(f"batch_norm ({site}): expected more than 1 value per channel when training, got input "
                         f"{format_shape(x.shape)}: the batch variance of a single value is undefined and would "
                         "make the running variance NaN")
    axes = channel_axes(x.shape)
    if not training:
        stat_shape = (1, -1) + (1,) * (x.ndim - 2)
        scale = gamma / ((running_var + eps) ** 0.5)
        return add(mul(sub(x, reshape(running_mean, stat_shape)), reshape(scale, stat_shape)),
                   reshape(beta, stat_shape), name=name or "batch_norm")
    y = apply(BatchNorm(), [x, gamma, beta], {"eps": float(eps), "axes": axes}, name=name)
    with x.graph.phase("update"):
        batch_mean = mean(x, axis=axes)
        batch_var = apply(Variance(), [x], {"axes": axes, "ddof": 1}, name="variance")
        y.side_effects = [
            assign(running_mean, running_mean * (1 - momentum) + batch_mean * momentum),
            assign(running_var, running_var * (1 - momentum) + batch_var * momentum),
        ]
    return y
