"""The cpu backend (Cython kernels in graphnet/_ext) against the reference backend (NumPy), op by op and on whole
training steps.

Every test builds a small graph once, compiles it for device "cpu" and for device "reference", runs both with the
same feeds and compares the results: the forward value, and the gradients of L = Σ out·R (R a fixed random
projection, so that every element of the output and every path of the backward pass matters). Shapes, axes,
broadcasting, slices and dtypes are drawn by Hypothesis. Values are compared with

    |cpu − reference| <= atol · max(1, max |reference|) + rtol · |reference|

since the two backends may add in different orders (the cpu kernels accumulate float32 sums in double); dropout
masks, copies and max/argmax routing must agree exactly.
"""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import graphnet as gn
from graphnet.backends import get_backend, unfused_ops

SETTINGS = settings(deadline=None)            # examples: the profile of conftest.py (30; "thorough": 300)
DTYPES = ["float32", "float64"]
TOL = {"float32": dict(rtol=1e-4, atol=1e-5), "float64": dict(rtol=1e-9, atol=1e-11)}
DEVICES = ("cpu", "reference")


# ----------------------------------------------------------------------------------------------------------------
# helpers


def assert_close(actual, expected, dtype, what="", scale=None):
    """Equal within the dtype's tolerance; `scale` (default max(1, max |expected|)) sizes the absolute part."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    assert actual.dtype == expected.dtype, f"{what}: dtype {actual.dtype} != {expected.dtype}"
    tol = TOL[str(np.dtype(dtype))]
    if scale is None:
        scale = max(1.0, float(np.max(np.abs(expected), initial=0.0)))
    np.testing.assert_allclose(actual, expected, rtol=tol["rtol"], atol=tol["atol"] * scale, err_msg=what)


def run_on_both(fetches, feeds=None, runs=1):
    """{device: [the fetched values of each run]} for a list of fetches compiled on both devices."""
    results = {}
    for device in DEVICES:
        program = gn.compile(fetches, device=device)
        results[device] = [program.run(dict(feeds or {})) for _ in range(runs)]
    return results


def check_op(build, values, dtype, differentiate=None, exact=False):
    """Compile out = build(*placeholders) and the gradients of Σ out·R with respect to the placeholders listed in
    `differentiate` (default: every float input) on both devices; assert they agree."""
    differentiate = [i for i, v in enumerate(values) if v.dtype.kind == "f"] if differentiate is None \
        else differentiate
    with gn.Graph():
        inputs = [gn.placeholder(v.shape, dtype=v.dtype, name=f"in{i}") for i, v in enumerate(values)]
        out = build(*inputs)
        fetches = [out]
        if differentiate and out.dtype.kind == "f":
            projection = np.random.default_rng(7).standard_normal(out.shape).astype(out.dtype)
            loss = gn.sum(out * gn.constant(projection), name="projected")
            fetches += gn.gradients(loss, [inputs[i] for i in differentiate])
    results = run_on_both(fetches, dict(zip(inputs, values)))
    names = ["value"] + [f"gradient of input {i}" for i in differentiate]
    for name, cpu, ref in zip(names, results["cpu"][0], results["reference"][0]):
        if exact:
            np.testing.assert_array_equal(cpu, ref, err_msg=name)
        else:
            assert_close(cpu, ref, dtype, name)
    return results["cpu"][0]


def normal(rng, shape, dtype, scale=1.0):
    return np.asarray(rng.standard_normal(shape) * scale, dtype=dtype)


def small_integers(rng, shape, dtype):
    """Values from {-2, ..., 2}: maxima and max/min of two inputs tie often."""
    return np.asarray(rng.integers(-2, 3, size=shape), dtype=dtype)


shapes = st.lists(st.integers(1, 5), min_size=0, max_size=4).map(tuple)
seeds = st.integers(0, 2 ** 16)


@st.composite
def broadcast_pairs(draw):
    """Two shapes that broadcast: each drops some leading axes of a common shape and sets others to 1."""
    out = draw(st.lists(st.integers(1, 4), max_size=4))

    def operand():
        dropped = draw(st.integers(0, len(out)))
        return tuple(1 if draw(st.booleans()) else d for d in out[dropped:])

    return operand(), operand()


@st.composite
def shape_and_axes(draw, min_rank=0):
    shape = draw(st.lists(st.integers(1, 5), min_size=min_rank, max_size=4).map(tuple))
    axes = draw(st.none() | st.lists(st.integers(-len(shape), len(shape) - 1), unique_by=lambda a: a % len(shape),
                                     max_size=len(shape)).map(tuple)) if shape else None
    return shape, axes


# ----------------------------------------------------------------------------------------------------------------
# elementwise


@SETTINGS
@given(broadcast_pairs(), st.sampled_from(["add", "sub", "mul", "div", "maximum", "minimum"]),
       st.sampled_from(DTYPES), seeds)
def test_binary_ops_with_broadcasting_and_their_gradients(shapes_, op, dtype, seed):
    rng = np.random.default_rng(seed)
    if op in ("maximum", "minimum"):
        a, b = small_integers(rng, shapes_[0], dtype), small_integers(rng, shapes_[1], dtype)
    else:
        a = normal(rng, shapes_[0], dtype)
        b = np.asarray(rng.uniform(0.5, 2.0, shapes_[1]) * rng.choice([-1, 1], shapes_[1]), dtype=dtype)
    check_op(getattr(gn, op), [a, b], dtype)


@SETTINGS
@given(shapes, st.sampled_from(["neg", "exp", "log", "sqrt", "pow"]), st.sampled_from([2, 3, 0.5, -1.5, 1]),
       st.sampled_from(DTYPES), seeds)
def test_unary_ops_and_their_gradients(shape, op, exponent, dtype, seed):
    rng = np.random.default_rng(seed)
    x = np.asarray(rng.uniform(0.2, 3.0, shape), dtype=dtype)
    build = (lambda t: gn.pow(t, exponent)) if op == "pow" else getattr(gn, op)
    check_op(build, [x], dtype)


def test_binary_ops_on_integer_and_mixed_dtypes_follow_numpy():
    """Integer tensors and float32·float64 mixes take NumPy's ufuncs on the cpu backend too."""
    a = np.arange(-3, 3, dtype=np.int64).reshape(2, 3)
    with gn.Graph():
        x = gn.placeholder((2, 3), dtype="int64", name="x")
        y = gn.placeholder((3,), dtype="float64", name="y")
        z = gn.placeholder((2, 3), dtype="float32", name="z")
        fetches = [x + x, -x, gn.maximum(x, x * 2), z * y, z - y]
    feeds = {x: a, y: np.array([0.5, 1.5, -2.0]), z: np.ones((2, 3), np.float32) / 3}
    results = run_on_both(fetches, feeds)
    for cpu, ref in zip(results["cpu"][0], results["reference"][0]):
        assert cpu.dtype == ref.dtype
        np.testing.assert_array_equal(cpu, ref)


def test_nan_propagates_like_numpy():
    values = np.array([[np.nan, -1.0, 2.0, 0.0], [1.0, np.nan, -3.0, 5.0]])
    with gn.Graph():
        x = gn.placeholder((2, 4), dtype="float64", name="x")
        fetches = [gn.relu(x), gn.maximum(x, 0.5), gn.minimum(0.5, x), gn.max(x, axis=1), gn.max(x, axis=0),
                   gn.max(x), gn.softmax(x, axis=1), gn.sum(x, axis=0), gn.sigmoid(x), gn.tanh(x)]
    results = run_on_both(fetches, {x: values})
    for cpu, ref in zip(results["cpu"][0], results["reference"][0]):
        np.testing.assert_array_equal(cpu, ref)


# ----------------------------------------------------------------------------------------------------------------
# reductions


@SETTINGS
@given(shape_and_axes(), st.booleans(), st.sampled_from(["sum", "mean", "max"]), st.sampled_from(DTYPES), seeds)
def test_reductions_over_any_axes_and_their_gradients(case, keepdims, op, dtype, seed):
    shape, axes = case
    rng = np.random.default_rng(seed)
    x = small_integers(rng, shape, dtype) if op == "max" else normal(rng, shape, dtype)
    check_op(lambda t: getattr(gn, op)(t, axis=axes, keepdims=keepdims), [x], dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_large_tensors_take_the_parallel_paths(dtype):
    """Above the OpenMP thresholds the kernels cut the work into tiles, chunks and blocks differently."""
    rng = np.random.default_rng(3)
    x = normal(rng, (64, 8, 9, 16), dtype)
    bias = normal(rng, (16,), dtype)
    gamma, beta = normal(rng, (8,), dtype), normal(rng, (8,), dtype)
    dense_gamma = normal(rng, (256,), dtype)
    labels = rng.integers(0, 16, 64 * 8 * 9)
    with gn.Graph():
        t = gn.placeholder(x.shape, dtype=dtype, name="x")
        b = gn.placeholder(bias.shape, dtype=dtype, name="b")
        y = gn.placeholder(labels.shape, dtype="int64", name="y")
        logits = gn.reshape(t, (-1, 16))
        dense = gn.reshape(t, (-1, 256))                             # batch norm of a wide dense layer
        fetches = [t + b, t * t[:1], gn.relu(t), gn.exp(t), gn.sum(t), gn.max(t), gn.mean(t, axis=(0, 2)),
                   gn.sum(t, axis=3), gn.max(t, axis=0), gn.softmax(t, axis=1), gn.log_softmax(t, axis=3),
                   gn.transpose(t, (3, 1, 0, 2)), t[:, ::-2, 1:8:3], gn.concat([t, t * 2], axis=2),
                   gn.softmax_cross_entropy(logits, y), gn.mse(t, t * 0.5), gn.sigmoid(t),
                   gn.batch_norm(t, gn.constant(gamma), gn.constant(beta), *running_stats(8, dtype), training=True),
                   gn.batch_norm(dense, gn.constant(dense_gamma), gn.constant(dense_gamma), *running_stats(256, dtype),
                                 training=True),
                   gn.dropout(t, 0.5, seed=3)]
        loss = gn.sum(gn.concat([gn.reshape(f, (-1,)) for f in fetches[:3]], axis=0))
        fetches += gn.gradients(loss, [t, b])
    results = run_on_both(fetches, {t: x, b: bias, y: labels})
    for index, (cpu, ref) in enumerate(zip(results["cpu"][0], results["reference"][0])):
        assert_close(cpu, ref, dtype, f"fetch {index}")


# ----------------------------------------------------------------------------------------------------------------
# activations


@SETTINGS
@given(shapes, st.sampled_from(["relu", "leaky_relu", "elu", "sigmoid", "tanh"]), st.sampled_from(DTYPES), seeds)
def test_activations_and_their_gradients(shape, op, dtype, seed):
    rng = np.random.default_rng(seed)
    x = normal(rng, shape, dtype, scale=3.0)
    x.flat[::3] = 0                                   # relu's kink: both backends send no gradient through 0
    builds = {"relu": gn.relu, "leaky_relu": lambda t: gn.leaky_relu(t, slope=0.2),
              "elu": lambda t: gn.elu(t, alpha=1.5), "sigmoid": gn.sigmoid, "tanh": gn.tanh}
    check_op(builds[op], [x], dtype)


@SETTINGS
@given(shapes.filter(lambda s: len(s) > 0), st.data(), st.sampled_from(["softmax", "log_softmax"]),
       st.sampled_from(DTYPES), seeds)
def test_softmax_along_any_axis_and_its_gradient(shape, data, op, dtype, seed):
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    x = normal(np.random.default_rng(seed), shape, dtype, scale=20.0)      # large logits: stability matters
    check_op(lambda t: getattr(gn, op)(t, axis=axis), [x], dtype)


# ----------------------------------------------------------------------------------------------------------------
# losses


@SETTINGS
@given(st.integers(1, 6), st.integers(1, 7), st.sampled_from(DTYPES), seeds)
def test_softmax_cross_entropy_and_its_gradient(batch, classes, dtype, seed):
    rng = np.random.default_rng(seed)
    logits = normal(rng, (batch, classes), dtype, scale=30.0)
    labels = rng.integers(0, classes, batch)
    check_op(gn.softmax_cross_entropy, [logits, labels], dtype, differentiate=[0])


@SETTINGS
@given(shapes, st.sampled_from(["mse", "binary_cross_entropy_with_logits"]), st.sampled_from(DTYPES), seeds)
def test_elementwise_losses_and_their_gradients(shape, op, dtype, seed):
    rng = np.random.default_rng(seed)
    prediction = normal(rng, shape, dtype, scale=10.0)
    target = np.asarray(rng.uniform(0, 1, shape), dtype=dtype)
    check_op(getattr(gn, op), [prediction, target], dtype)


@pytest.mark.parametrize("labels, first_bad, count", [([0, 3, -1, 2], 3, 2), ([9, 0, 1, 2], 9, 1)])
def test_labels_out_of_range_raise_the_reference_feed_error(labels, first_bad, count):
    with gn.Graph():
        logits = gn.placeholder((4, 3), dtype="float64", name="logits")
        y = gn.placeholder((4,), dtype="int64", name="y")
        loss = gn.softmax_cross_entropy(logits, y)
        gradient = gn.gradients(loss, logits)
    feeds = {logits: np.zeros((4, 3)), y: np.array(labels)}
    messages = []
    for device in DEVICES:
        with pytest.raises(gn.FeedError) as error:
            gn.compile(loss, device=device).run(feeds)
        messages.append(str(error.value))
    assert messages[0] == messages[1]
    assert messages[0].startswith(f"softmax_cross_entropy: labels must be class indices in [0, 3), got {first_bad} "
                                  f"({count} out of range)")
    # The gradient step runs without the loss when only the gradient is fetched; the cpu kernel checks too
    # (it must never index outside a row), where the NumPy one would wrap a negative label around.
    with pytest.raises(gn.FeedError, match=r"labels must be class indices in \[0, 3\)"):
        gn.compile(gradient, device="cpu").run(feeds)


# ----------------------------------------------------------------------------------------------------------------
# data movement


@SETTINGS
@given(shapes.filter(lambda s: len(s) > 0), st.data(), st.sampled_from(DTYPES + ["int64"]), seeds)
def test_transpose_and_its_gradient(shape, data, dtype, seed):
    axes = data.draw(st.permutations(range(len(shape))))
    x = normal(np.random.default_rng(seed), shape, "float64", scale=100).astype(dtype)
    check_op(lambda t: gn.transpose(t, axes), [x], dtype, exact=True)


@st.composite
def concat_cases(draw):
    base = draw(st.lists(st.integers(1, 4), min_size=1, max_size=4))
    axis = draw(st.integers(0, len(base) - 1))
    sizes = draw(st.lists(st.integers(1, 4), min_size=1, max_size=3))
    return [tuple(base[:axis] + [s] + base[axis + 1:]) for s in sizes], axis


@SETTINGS
@given(concat_cases(), st.sampled_from(DTYPES), seeds)
def test_concat_and_its_gradient(case, dtype, seed):
    input_shapes, axis = case
    rng = np.random.default_rng(seed)
    values = [normal(rng, s, dtype) for s in input_shapes]
    check_op(lambda *ts: gn.concat(list(ts), axis=axis), values, dtype, exact=True)


@st.composite
def index_cases(draw):
    """A shape and a basic index into it: ints (negative too), slices with any step, None, and an Ellipsis between
    the items for the leading axes and those for the trailing ones."""
    shape = draw(st.lists(st.integers(1, 6), min_size=1, max_size=4).map(tuple))

    def items(extents):
        chosen = []
        for extent in extents:
            if draw(st.booleans()):
                chosen.append(draw(st.integers(-extent, extent - 1)))
            else:
                bound = st.none() | st.integers(-extent - 2, extent + 2)
                chosen.append(slice(draw(bound), draw(bound), draw(st.sampled_from([None, 1, 2, 3, -1, -2]))))
            if draw(st.integers(0, 4)) == 0:
                chosen.append(None)
        return chosen

    leading = draw(st.integers(0, len(shape)))
    if not draw(st.booleans()):
        return shape, tuple(items(shape[:leading]))
    trailing = draw(st.integers(0, len(shape) - leading))
    return shape, tuple(items(shape[:leading]) + [Ellipsis] + items(shape[len(shape) - trailing:]))


@SETTINGS
@given(index_cases(), st.sampled_from(DTYPES), seeds)
def test_getitem_with_steps_negatives_and_new_axes_and_its_gradient(case, dtype, seed):
    shape, index = case
    x = normal(np.random.default_rng(seed), shape, dtype)
    value = check_op(lambda t: t[index], [x], dtype, exact=True)[0]
    np.testing.assert_array_equal(value, x[index])


@pytest.mark.parametrize("dtype", DTYPES)
def test_reshape_of_a_variable_is_a_copy_kernel_and_matches(dtype):
    """A reshape of stored state cannot be a view (the state may change); the cpu backend copies it."""
    value = np.arange(24, dtype=dtype).reshape(2, 3, 4)
    with gn.Graph():
        w = gn.variable(value, name="w")
        out = gn.reshape(w, (4, 6)) * 2.0
        grad = gn.gradients(gn.sum(out * out), w)
    program = gn.compile([out, grad], device="cpu")
    assert any(step.label == "cpu.reshape" for step in program.plan().steps)
    results = run_on_both([out, grad])
    for cpu, ref in zip(results["cpu"][0], results["reference"][0]):
        np.testing.assert_array_equal(cpu, ref)


# ----------------------------------------------------------------------------------------------------------------
# dropout and batch norm


@SETTINGS
@given(shapes, st.sampled_from([0.1, 0.5, 0.9]), st.integers(1, 2 ** 32 - 1), st.sampled_from(DTYPES), seeds)
def test_dropout_draws_the_reference_mask_bit_for_bit(shape, rate, seed, dtype, value_seed):
    x = normal(np.random.default_rng(value_seed), shape, dtype)
    with gn.Graph():
        t = gn.placeholder(shape, dtype=dtype, name="x")
        y = gn.dropout(t, rate, seed=seed)
        fetches = [y, gn.gradients(gn.sum(y * y), t)]
    results = run_on_both(fetches, {t: x}, runs=3)                  # each run draws a new mask
    for run, (cpu, ref) in enumerate(zip(results["cpu"], results["reference"])):
        for a, b in zip(cpu, ref):
            np.testing.assert_array_equal(a, b, err_msg=f"run {run + 1}")
    if rate == 0.5 and x.size >= 40:                               # two runs: two masks (equal: p = 2⁻⁴⁰)
        assert not np.array_equal(results["cpu"][0][0] == 0, results["cpu"][1][0] == 0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_dropout_keeps_an_element_whose_draw_equals_the_rate(dtype):
    """Keep means u ≥ rate: with the rate set to one of the stream's own draws, that element must survive."""
    from graphnet.random import uniform
    seed, n = 12345, 64
    draws = uniform(seed, 1, n)                                     # run 1 draws stream 1
    k = int(np.argsort(draws)[n // 2])
    x = np.arange(1, n + 1, dtype=dtype)
    with gn.Graph():
        t = gn.placeholder((n,), dtype=dtype, name="x")
        y = gn.dropout(t, float(draws[k]), seed=seed)
    results = run_on_both([y], {t: x})
    cpu, ref = results["cpu"][0][0], results["reference"][0][0]
    np.testing.assert_array_equal(cpu, ref)
    np.testing.assert_array_equal(cpu != 0, draws >= draws[k])
    assert cpu[k] != 0


def running_stats(channels, dtype):
    return (gn.variable(np.zeros(channels, dtype=dtype), name="running_mean", trainable=False),
            gn.variable(np.ones(channels, dtype=dtype), name="running_var", trainable=False))


def batch_norm_gradient_scale(x, gamma, dy, eps=1e-5):
    """The largest term of dx = γ/σ · (dy − mean dy − x̂ · mean dy·x̂): dx is their difference, so its rounding
    error (in either backend) is a few ulps of this, however small dx itself is (tiny batches: σ ≈ |x − μ|)."""
    axes = (0,) if x.ndim == 2 else (0, 2, 3)
    x = x.astype(np.float64)
    inv_std = 1 / np.sqrt(x.var(axis=axes, keepdims=True) + eps)
    x_hat = (x - x.mean(axis=axes, keepdims=True)) * inv_std
    return float(np.max(np.abs(gamma)) * np.max(inv_std) * np.max(np.abs(dy)) * max(1.0, np.max(np.abs(x_hat))))


def batch_norm_gamma_gradient_scale(x, dy, eps=1e-5):
    """dγ = Σ dy·x̂, and x̂ = (x − μ)/σ carries the rounding error of x − μ amplified by 1/σ: a few ulps of
    max |x|/σ per term, so the sum's error is a few ulps of Σ|dy| · max |x|/σ (large when the batch is tiny)."""
    axes = (0,) if x.ndim == 2 else (0, 2, 3)
    x = x.astype(np.float64)
    inv_std = 1 / np.sqrt(x.var(axis=axes) + eps)
    return float(np.max(np.abs(x)) * np.max(inv_std) * np.max(np.abs(dy).sum(axis=axes)))


@SETTINGS
@given(st.sampled_from([(5, 3), (2, 4), (3, 2, 4, 5), (2, 3, 1, 1), (4, 1, 3, 3)]), st.booleans(),
       st.sampled_from(DTYPES), seeds)
def test_batch_norm_training_inference_and_running_statistics(shape, training, dtype, seed):
    rng = np.random.default_rng(seed)
    x = normal(rng, shape, dtype, scale=3.0) + 2
    gamma, beta = normal(rng, shape[1:2], dtype), normal(rng, shape[1:2], dtype)
    dy = normal(np.random.default_rng(1), shape, dtype)
    outcome = {}
    for device in DEVICES:                 # a graph each: the running statistics are state the runs update
        with gn.Graph():
            t = gn.placeholder(shape, dtype=dtype, name="x")
            g = gn.variable(gamma, name="gamma")
            b = gn.variable(beta, name="beta")
            mean, var = running_stats(shape[1], dtype)
            y = gn.batch_norm(t, g, b, mean, var, training=training, momentum=0.3)
            grads = gn.gradients(gn.sum(y * gn.constant(dy)), [t, g, b])
        program = gn.compile([y] + grads, device=device)
        runs = [program.run({t: x * (k + 1)}) for k in range(3)]
        outcome[device] = runs, mean.numpy(), var.numpy()
    (cpu_runs, cpu_mean, cpu_var), (ref_runs, ref_mean, ref_var) = outcome["cpu"], outcome["reference"]
    for k, (cpu, ref) in enumerate(zip(cpu_runs, ref_runs)):
        for name, a, b in zip(["y", "dx", "dgamma", "dbeta"], cpu, ref):
            scale = None
            if training and name == "dx":
                scale = batch_norm_gradient_scale(x * (k + 1), gamma, dy)
            elif training and name == "dgamma":
                scale = batch_norm_gamma_gradient_scale(x * (k + 1), dy)
            assert_close(a, b, dtype, f"run {k + 1}: {name}", scale=scale)
    assert_close(cpu_mean, ref_mean, dtype, "running mean")
    assert_close(cpu_var, ref_var, dtype, "running var")
    if training:
        assert not np.allclose(cpu_mean, 0)                       # the updates did run


# ----------------------------------------------------------------------------------------------------------------
# whole training steps


def dense_by_broadcasting(h, w, b):
    """h @ w + b written as Σ_k h[:, k, None]·w[k, :] (mul, sum and getitem kernels only)."""
    return gn.sum(h[:, :, None] * w, axis=1) + b


LAYERS = ["broadcast", "matmul"]


def train_mlp(device, layer, dtype, sizes, batches, normalize):
    """A few SGD steps of an MLP (relu, optional batch norm and dropout, softmax cross-entropy), written with
    gn.assign; returns the losses and the final parameters."""
    rng = np.random.default_rng(0)
    dense = dense_by_broadcasting if layer == "broadcast" else (lambda h, w, b: gn.matmul(h, w) + b)
    with gn.Graph():
        x = gn.placeholder((None, sizes[0]), dtype=dtype, name="x")
        y = gn.placeholder((None,), dtype="int64", name="y")
        params, h = [], x
        for i, (fan_in, fan_out) in enumerate(zip(sizes, sizes[1:])):
            w = gn.variable(normal(rng, (fan_in, fan_out), dtype, scale=np.sqrt(2 / fan_in)), name=f"w{i}")
            b = gn.variable(np.zeros(fan_out, dtype=dtype), name=f"b{i}")
            params += [w, b]
            h = dense(h, w, b)
            if i < len(sizes) - 2:
                if normalize:
                    gamma = gn.variable(np.ones(fan_out, dtype=dtype), name=f"gamma{i}")
                    beta = gn.variable(np.zeros(fan_out, dtype=dtype), name=f"beta{i}")
                    params += [gamma, beta]
                    h = gn.batch_norm(h, gamma, beta, *running_stats(fan_out, dtype), training=True)
                h = gn.relu(h)
                if normalize:
                    h = gn.dropout(h, 0.25, seed=11 + i)
        loss = gn.softmax_cross_entropy(h, y)
        grads = gn.gradients(loss, params)
        updates = [gn.assign(p, p - g * 0.1) for p, g in zip(params, grads)]
    program = gn.compile([loss] + updates, device=device)
    losses = [float(program.run({x: xb, y: yb})[0]) for xb, yb in batches]
    return losses, [p.numpy() for p in params]


@pytest.mark.parametrize("layer", LAYERS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("normalize", [False, True])
def test_mlp_training_steps_agree(layer, dtype, normalize):
    sizes = [12, 16, 16, 5]
    rng = np.random.default_rng(5)
    batches = [(normal(rng, (8, sizes[0]), dtype), rng.integers(0, sizes[-1], 8)) for _ in range(4)]
    cpu_losses, cpu_params = train_mlp("cpu", layer, dtype, sizes, batches, normalize)
    ref_losses, ref_params = train_mlp("reference", layer, dtype, sizes, batches, normalize)
    assert_close(np.array(cpu_losses), np.array(ref_losses), dtype, "losses")
    for k, (a, b) in enumerate(zip(cpu_params, ref_params)):
        assert_close(a, b, dtype, f"parameter {k}")
    assert cpu_losses[-1] < cpu_losses[0]                         # it trains


# ----------------------------------------------------------------------------------------------------------------
# local response norm; pooling with ceil_mode, asymmetric padding and count_include_pad


@SETTINGS
@given(st.lists(st.integers(1, 5), min_size=3, max_size=4).map(tuple), st.integers(1, 6), st.sampled_from(DTYPES),
       st.sampled_from([None, 0]), seeds)
def test_local_response_norm_and_its_gradient(shape, size, dtype, channels_before, seed):
    x = normal(np.random.default_rng(seed), shape, dtype, scale=2.0)
    check_op(lambda t: gn.local_response_norm(t, size, alpha=0.5, beta=0.75, k=2.0, channels_before=channels_before),
             [x], dtype)


def test_local_response_norm_over_many_positions_and_channels():
    """AlexNet's first LRN on a small image: 64 channels, 13×13 positions in tiles of 64 (the last one partial)."""
    x = normal(np.random.default_rng(3), (2, 64, 13, 13), "float32", scale=3.0)
    check_op(lambda t: gn.local_response_norm(t, 5, alpha=1e-4, beta=0.75, k=2.0), [x], "float32")


@st.composite
def ceil_pool_cases(draw):
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    padding = tuple((draw(st.integers(0, k // 2)), draw(st.integers(0, k // 2))) for k in (kh, kw))
    hw = tuple(draw(st.integers(max(1, k - lo - hi), 9)) for k, (lo, hi) in zip((kh, kw), padding))
    return dict(shape=(draw(st.integers(1, 3)), draw(st.integers(1, 3))) + hw, kernel=(kh, kw), stride=stride,
                padding=padding, ceil_mode=draw(st.booleans()), count_include_pad=draw(st.booleans()))


@SETTINGS
@given(ceil_pool_cases(), st.sampled_from(DTYPES), seeds)
def test_pooling_with_ceil_mode_asymmetric_padding_and_count_include_pad(case, dtype, seed):
    rng = np.random.default_rng(seed)
    kwargs = dict(stride=case["stride"], padding=case["padding"], ceil_mode=case["ceil_mode"])
    check_op(lambda t: gn.max_pool2d(t, case["kernel"], **kwargs), [small_integers(rng, case["shape"], dtype)],
             dtype)                                 # ties: a gradient routed elsewhere would be off by a whole dy
    check_op(lambda t: gn.avg_pool2d(t, case["kernel"], count_include_pad=case["count_include_pad"], **kwargs),
             [normal(rng, case["shape"], dtype)], dtype)


# ----------------------------------------------------------------------------------------------------------------
# the schedule names the chosen loop


def test_schedule_shows_the_loop_each_step_runs():
    with gn.Graph():
        x = gn.placeholder((None, 6), name="x")
        b = gn.variable(np.zeros(6, np.float32), name="b")
        fetches = [x + b, x * 2.0, x + x, gn.sum(x, axis=0), gn.sum(x, axis=1), gn.softmax(x, axis=0),
                   gn.transpose(x)]
    program = gn.compile(fetches, device="cpu")
    labels = [step.label for step in program.plan(batch_size=4).steps]
    for expected in ["cpu.add[bias-row]", "cpu.mul[scalar]", "cpu.add[same-shape]", "cpu.sum[leading]",
                     "cpu.sum[trailing]", "cpu.softmax[strided-axis]", "cpu.transpose[tiled]"]:
        assert expected in labels, (expected, labels)


def test_kernels_cover_every_reference_op_but_the_blas_and_window_ones():
    reference = set(get_backend("reference").kernels)
    mine = {op for op in reference if not op.name.startswith(("conv2d", "max_pool2d", "avg_pool2d", "matmul"))}
    assert mine <= set(get_backend("cpu").kernels)
    for module in ("elementwise", "activations", "reduce", "losses", "regularization", "shape", "lrn"):
        kernels = __import__(f"graphnet._ext.{module}", fromlist=["KERNELS"]).KERNELS
        assert all(type(fn).__name__ in ("cython_function_or_method", "fused_cython_function")
                   for fn in kernels.values()), module


# ----------------------------------------------------------------------------------------------------------------
# coverage and the default


def test_every_reference_kernel_has_a_compiled_cpu_twin():
    """Every op, fused ones aside (the cpu backend fuses only where it pays: graphnet/ops/fused.py) and the
    collectives, which hand host arrays to MPI on every backend (graphnet/ops/collective.py): there is no
    arithmetic of graphnet's to compile."""
    from graphnet.ops.collective import AllReduceSum
    reference, cpu = unfused_ops(get_backend("reference")), get_backend("cpu").kernels
    assert sorted(op.name for op in set(reference) - set(cpu)) == []
    for op in set(reference) - {AllReduceSum}:  # compiled in graphnet/_ext, not a NumPy function passed through
        assert type(cpu[op]).__name__ in ("cython_function_or_method", "fused_cython_function"), op.name


def test_cpu_is_the_default_device():
    with gn.Graph():
        x = gn.placeholder((2, 3), name="x")
        program = gn.compile(gn.relu(x))
    assert program.backend is get_backend("cpu")
    assert "cpu.relu" in str(program)


def test_missing_compiled_kernels_are_a_clear_error(monkeypatch):
    """graphnet/_ext/__init__.py records why its modules failed to load (or that none is built); the cpu backend
    says so and how to build them."""
    import graphnet._ext as compiled
    import graphnet.backends.cpu as cpu_backend

    monkeypatch.setattr(compiled, "LOAD_ERROR", ImportError("No module named 'graphnet._ext.conv'"))
    with pytest.raises(gn.GraphError, match=r"device 'cpu' needs graphnet's compiled kernels \(graphnet/_ext\), and one failed to "
                                            r"load: No module named 'graphnet._ext.conv'.*pip install -e \."):
        cpu_backend.CpuBackend()
    monkeypatch.setattr(compiled, "LOAD_ERROR", None)
    monkeypatch.setattr(compiled, "modules", [])
    with pytest.raises(gn.GraphError, match=r"compiled kernels \(graphnet/_ext\), and none is built"):
        cpu_backend.CpuBackend()
