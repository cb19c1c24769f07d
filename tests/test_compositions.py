"""Whole-graph gradient checks on random small networks: an MLP block, a CNN block and an attention block.

Hypothesis draws the architecture (depth, widths, activations, conv stride / padding / dilation / groups, pooling,
batch norm, dropout, the loss); the values come from a NumPy generator seeded by Hypothesis, so they are generic
(no zeros or repeats by design). `gradcheck.check_gradients` then compares the gradient of the whole graph with
respect to every placeholder and every variable with central finite differences, in float64.

Kinks inside a network cannot be kept away by construction, since they depend on intermediate values. Each
builder therefore also returns the tensors that feed a kink (a relu's input, a max-pool's input, a maxout's
pieces) and a precondition on their values: an example where one lies within 1e-4 of a kink (rare with generic
values) is rejected instead of checked, since there a finite difference of step 1e-6 measures no derivative.

*Exact* zeros and ties are allowed: with generic values they only arise structurally — a convolution output whose
window reads nothing but padding is exactly 0 (or exactly its channel's bias) whatever the inputs — and such
values stay exactly 0, or move together, under every perturbation, so both sides of the check agree there.
"""
import functools
import os

import numpy as np
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import graphnet as gn
from gradcheck import Fixed, Variable
from gradcheck import check_gradients as check_on

DEVICE = os.environ.get("GRAPHNET_GRADCHECK_DEVICE", "reference")
check_gradients = functools.partial(check_on, device=DEVICE)

MARGIN = 1e-4        # how far a value feeding a kink must be from it (ε = 1e-6 moves values by ~1e-6)


def examples(n):
    """n examples under the default profile (30), scaled with GRAPHNET_HYPOTHESIS_PROFILE (e.g. 'thorough')."""
    return max(1, round(n * settings.default.max_examples / 30))


def checks(n):
    return settings(deadline=None, max_examples=examples(n))


# ----------------------------------------------------------------------------------------------------------------
# activations and the conditions that keep finite differences away from their kinks

ACTIVATIONS = {
    "relu": gn.relu,
    "leaky_relu": lambda t: gn.leaky_relu(t, slope=0.1),
    "elu": lambda t: gn.elu(t, alpha=0.7),              # α ≠ 1: the derivative jumps at 0
    "sigmoid": gn.sigmoid,
    "tanh": gn.tanh,
}
KINK_AT_ZERO = {"relu", "leaky_relu", "elu"}
MLP_ACTIVATIONS = sorted(ACTIVATIONS) + ["maxout", "softmax"]


def away_from_zero(z):
    """No value within MARGIN of 0, except exact (structural) zeros."""
    near = np.abs(z) <= MARGIN
    return not np.any(near & (z != 0))


def maxout_pieces_apart(z, pieces=2):
    """The two pieces of each maxout group differ by more than MARGIN (features are grouped consecutively)."""
    groups = z.reshape(z.shape[0], -1, pieces)
    return bool(np.all(np.abs(groups[..., 0] - groups[..., 1]) > MARGIN))


def windows(x, kernel, stride, padding):
    """Every max-pool window of x (N, C, H, W), padded with −inf: shape (N, C, OH, OW, KH·KW)."""
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    padded = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=-np.inf)
    view = np.lib.stride_tricks.sliding_window_view(padded, (kh, kw), axis=(2, 3))[:, :, ::sh, ::sw]
    return view.reshape(view.shape[:4] + (kh * kw,))


def pool_maxima_unique(x, kernel, stride, padding):
    """Each window's maximum beats the runner-up by more than MARGIN, or ties with it exactly. Exact ties are
    structural — relu's zeros (whose inputs are checked to be negative by more than MARGIN, so they pass no
    gradient), or equal outputs of padding-only windows (which move together) — and harmless."""
    w = windows(x, kernel, stride, padding)
    if w.shape[-1] < 2 or w.size == 0:
        return True
    top2 = np.sort(w, axis=-1)[..., -2:]
    gap = top2[..., 1] - top2[..., 0]
    return bool(np.all((gap > MARGIN) | (gap == 0)))


def activate(name, z, probes):
    """The activation `name` of z; where it has a kink, (z, the condition that keeps z away from it) joins probes."""
    if name in KINK_AT_ZERO:
        probes.append((z, away_from_zero))
    if name == "maxout":
        probes.append((z, maxout_pieces_apart))
        return gn.maxout(z, 2, axis=1)
    if name == "softmax":
        return gn.softmax(z, axis=1)
    return ACTIVATIONS[name](z)


def loss_of(kind, prediction, target):
    return {"softmax_cross_entropy": gn.softmax_cross_entropy, "mse": gn.mse,
            "binary_cross_entropy_with_logits": gn.binary_cross_entropy_with_logits}[kind](prediction, target)


def target_input(kind, rng, n, outputs):
    """Labels are fed but have no gradient; regression and binary targets are placeholders differentiated too."""
    if kind == "softmax_cross_entropy":
        return Fixed(rng.integers(0, outputs, size=n).astype(np.int64))
    if kind == "mse":
        return rng.standard_normal((n, outputs))
    return rng.uniform(0.0, 1.0, (n, outputs))


def running_stats(channels):
    return (gn.variable(np.zeros(channels), trainable=False, name="running_mean"),
            gn.variable(np.ones(channels), trainable=False, name="running_var"))


SEEDS = st.integers(0, 2**32 - 1)
LOSSES = ["softmax_cross_entropy", "mse", "binary_cross_entropy_with_logits"]


# ----------------------------------------------------------------------------------------------------------------
# MLP: [dense → (batch norm) → activation → (dropout) (+ skip)] × depth → dense → loss


@st.composite
def mlp_case(draw):
    n = draw(st.integers(1, 4))
    depth = draw(st.integers(1, 3))
    widths = [draw(st.integers(1, 5)) for _ in range(depth + 1)]       # input features, then each hidden layer
    layers = [dict(activation=draw(st.sampled_from(MLP_ACTIVATIONS)),
                   batch_norm=n >= 2 and draw(st.booleans()),
                   skip=widths[i] == widths[i + 1] and draw(st.booleans())) for i in range(depth)]
    return dict(n=n, widths=widths, layers=layers, outputs=draw(st.integers(1, 4)),
                dropout=draw(st.sampled_from(["none", "inference", "training"])),
                loss=draw(st.sampled_from(LOSSES)), seed=draw(SEEDS))


def mlp_inputs(spec, rng):
    widths = spec["widths"]
    inputs = [rng.standard_normal((spec["n"], widths[0]))]
    for i, layer in enumerate(spec["layers"]):
        units = widths[i + 1] * (2 if layer["activation"] == "maxout" else 1)
        inputs += [Variable(rng.standard_normal((widths[i], units)) / np.sqrt(widths[i])),
                   Variable(rng.standard_normal(units) * 0.5)]
        if layer["batch_norm"]:
            inputs += [Variable(rng.uniform(0.5, 1.5, units)), Variable(rng.standard_normal(units) * 0.5)]
    inputs += [Variable(rng.standard_normal((widths[-1], spec["outputs"])) / np.sqrt(widths[-1])),
               Variable(rng.standard_normal(spec["outputs"]) * 0.5)]
    inputs.append(target_input(spec["loss"], rng, spec["n"], spec["outputs"]))
    return inputs


def build_mlp(spec, x, *rest):
    rest, probes = iter(rest), []
    h = x
    for i, layer in enumerate(spec["layers"]):
        z = h @ next(rest) + next(rest)
        if layer["batch_norm"]:
            z = gn.batch_norm(z, next(rest), next(rest), *running_stats(z.shape[1]), training=True)
        a = activate(layer["activation"], z, probes)
        if i == 0 and spec["dropout"] != "none":
            a = gn.dropout(a, 0.3, training=spec["dropout"] == "training", seed=spec["seed"] % 1000)
        h = a + h if layer["skip"] else a
    logits = h @ next(rest) + next(rest)
    return loss_of(spec["loss"], logits, next(rest)), probes


@checks(150)
@given(spec=mlp_case(), unknown_batch=st.booleans())
def test_mlp_block(spec, unknown_batch):
    rng = np.random.default_rng(spec["seed"])
    check_gradients(functools.partial(build_mlp, spec), mlp_inputs(spec, rng), unknown_batch=unknown_batch)


# ----------------------------------------------------------------------------------------------------------------
# CNN: conv → (batch norm) → activation → max or avg pool → flatten → dense → softmax cross-entropy


def conv_out(size, kernel, lo, hi, stride, dilation):
    return (size + lo + hi - dilation * (kernel - 1) - 1) // stride + 1


@st.composite
def cnn_case(draw):
    groups = draw(st.integers(1, 2))
    c_per_group, k_per_group = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    if groups > 1 and draw(st.booleans()):
        c_per_group = 1                                              # depthwise
    kernel = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    padding = draw(st.sampled_from(["same", "valid", "int", "pairs"]))
    stride = (1, 1) if padding == "same" else (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    if padding == "int":
        padding = draw(st.integers(0, 1))
        pads = ((padding, padding), (padding, padding))
    elif padding == "pairs":
        padding = pads = tuple((draw(st.integers(0, 1)), draw(st.integers(0, 1))) for _ in range(2))
    elif padding == "same":
        pads = tuple((d * (k - 1) // 2, d * (k - 1) - d * (k - 1) // 2) for k, d in zip(kernel, dilation))
    else:
        pads = ((0, 0), (0, 0))
    hw = []
    for k, d, (lo, hi) in zip(kernel, dilation, pads):
        smallest = max(1, d * (k - 1) + 1 - lo - hi)
        hw.append(draw(st.integers(smallest, smallest + 3)))
    n = draw(st.integers(1, 2))
    x_shape = (n, groups * c_per_group) + tuple(hw)
    w_shape = (groups * k_per_group, c_per_group) + kernel
    out_hw = [conv_out(s, k, lo, hi, st_, d) for s, k, (lo, hi), st_, d in zip(hw, kernel, pads, stride, dilation)]
    pool_kernel, pool_padding = [], []
    for size in out_hw:                          # a window may overhang the conv output by the padding only
        k = draw(st.integers(1, min(3, size + 1)))
        pool_kernel.append(k)
        pool_padding.append(draw(st.integers(max(0, k - size), k // 2)))
    pool = dict(kind=draw(st.sampled_from(["max", "avg"])), kernel=tuple(pool_kernel), padding=tuple(pool_padding),
                stride=draw(st.none() | st.tuples(st.integers(1, 2), st.integers(1, 2))))
    pool_stride = pool["stride"] or pool["kernel"]
    pooled = [conv_out(s, k, p, p, st_, 1)
              for s, k, p, st_ in zip(out_hw, pool["kernel"], pool["padding"], pool_stride)]
    features = w_shape[0] * pooled[0] * pooled[1]
    classes = draw(st.integers(2, 4))
    assume(np.prod(x_shape) <= 72 and np.prod(w_shape) <= 36 and features * classes <= 60)
    return dict(x_shape=x_shape, w_shape=w_shape, bias=draw(st.booleans()),
                conv=dict(stride=stride, padding=padding, dilation=dilation, groups=groups),
                batch_norm=n * out_hw[0] * out_hw[1] >= 2 and draw(st.booleans()),
                activation=draw(st.sampled_from(sorted(ACTIVATIONS))), pool=pool,
                features=features, classes=classes, seed=draw(SEEDS))


def cnn_inputs(spec, rng):
    k = spec["w_shape"][0]
    fan_in = int(np.prod(spec["w_shape"][1:]))
    inputs = [rng.standard_normal(spec["x_shape"]), Variable(rng.standard_normal(spec["w_shape"]) / np.sqrt(fan_in))]
    if spec["bias"]:
        inputs.append(Variable(rng.standard_normal(k) * 0.5))
    if spec["batch_norm"]:
        inputs += [Variable(rng.uniform(0.5, 1.5, k)), Variable(rng.standard_normal(k) * 0.5)]
    inputs += [Variable(rng.standard_normal((spec["features"], spec["classes"])) / np.sqrt(spec["features"])),
               Variable(rng.standard_normal(spec["classes"]) * 0.5),
               Fixed(rng.integers(0, spec["classes"], size=spec["x_shape"][0]).astype(np.int64))]
    return inputs


def build_cnn(spec, x, w, *rest):
    rest, probes = iter(rest), []
    bias = next(rest) if spec["bias"] else None
    z = gn.conv2d(x, w, bias, **spec["conv"])
    if spec["batch_norm"]:
        z = gn.batch_norm(z, next(rest), next(rest), *running_stats(z.shape[1]), training=True)
    a = activate(spec["activation"], z, probes)
    pool = spec["pool"]
    if pool["kind"] == "max":
        probes.append((a, functools.partial(pool_maxima_unique, kernel=pool["kernel"],
                                            stride=pool["stride"] or pool["kernel"], padding=pool["padding"])))
        p = gn.max_pool2d(a, pool["kernel"], stride=pool["stride"], padding=pool["padding"])
    else:
        p = gn.avg_pool2d(a, pool["kernel"], stride=pool["stride"], padding=pool["padding"])
    logits = gn.flatten(p) @ next(rest) + next(rest)
    return gn.softmax_cross_entropy(logits, next(rest)), probes


@checks(150)
@given(spec=cnn_case(), unknown_batch=st.booleans())
def test_cnn_block(spec, unknown_batch):
    rng = np.random.default_rng(spec["seed"])
    check_gradients(functools.partial(build_cnn, spec), cnn_inputs(spec, rng), unknown_batch=unknown_batch)


# ----------------------------------------------------------------------------------------------------------------
# attention: batched matmuls with transposes, softmax, a layer norm made of mean / sqrt, slicing, a dense head


@st.composite
def attention_case(draw):
    return dict(batch=draw(st.integers(1, 2)), tokens=draw(st.integers(1, 3)), dim=draw(st.integers(2, 4)),
                classes=draw(st.integers(2, 3)), loss=draw(st.sampled_from(LOSSES)), seed=draw(SEEDS))


def build_attention(spec, x, wq, wk, wv, wo, target):
    q, k, v = x @ wq, x @ wk, x @ wv                                  # (B, T, D) @ (D, D): broadcast batch
    scores = gn.matmul(q, k, transpose_b=True) / float(np.sqrt(spec["dim"]))
    mixed = gn.matmul(gn.softmax(scores, axis=-1), v) + x            # residual
    mu = gn.mean(mixed, axis=-1, keepdims=True)
    centered = mixed - mu
    normed = centered / gn.sqrt(gn.mean(centered * centered, axis=-1, keepdims=True) + 1e-5)
    last = normed[:, -1, :]                                          # the last token of each sequence
    return loss_of(spec["loss"], last @ wo, target)


@checks(60)
@given(spec=attention_case(), unknown_batch=st.booleans())
def test_attention_block(spec, unknown_batch):
    rng = np.random.default_rng(spec["seed"])
    b, t, d, c = spec["batch"], spec["tokens"], spec["dim"], spec["classes"]
    inputs = [rng.standard_normal((b, t, d))] + [Variable(rng.standard_normal((d, d)) / np.sqrt(d)) for _ in range(3)]
    inputs += [Variable(rng.standard_normal((d, c))), target_input(spec["loss"], rng, b, c)]
    check_gradients(functools.partial(build_attention, spec), inputs, unknown_batch=unknown_batch)
