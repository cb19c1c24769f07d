"""Optimizers against their textbook formulas, written here again in NumPy, independently of graphnet/optim.py.

The trick: with loss = Σ w·G for a fed G, ∂loss/∂w = G exactly, so each run applies one update with a gradient
the test chooses. Frozen variables, penalties, clipping and schedules are checked the same way.
"""
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import graphnet as gn
from graphnet import nn, optim
from kernels_by_name import op_named  # noqa: E402

# ---------------------------------------------------------------------------------------------------------------
# The textbook, in NumPy: each function applies the updates for the gradients `grads` to w0 and returns w.


def sgd_reference(w, grads, lr):
    for g in grads:
        w = w - lr * g
    return w


def momentum_reference(w, grads, lr, momentum, nesterov):
    v = np.zeros_like(w)
    for g in grads:
        v = momentum * v + g
        w = w - lr * (g + momentum * v if nesterov else v)
    return w


def adagrad_reference(w, grads, lr, eps):
    total = np.zeros_like(w)
    for g in grads:
        total = total + g ** 2
        w = w - lr * g / (np.sqrt(total) + eps)
    return w


def rmsprop_reference(w, grads, lr, rho, eps):
    mean_square = np.zeros_like(w)
    for g in grads:
        mean_square = rho * mean_square + (1 - rho) * g ** 2
        w = w - lr * g / (np.sqrt(mean_square) + eps)
    return w


def adam_reference(w, grads, lr, beta1, beta2, eps, weight_decay=0.0):
    m, v = np.zeros_like(w), np.zeros_like(w)
    for t, g in enumerate(grads, start=1):
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g ** 2
        m_hat = m / (1 - beta1 ** t)
        v_hat = v / (1 - beta2 ** t)
        w = w - lr * (m_hat / (np.sqrt(v_hat) + eps) + weight_decay * w)
    return w


# ---------------------------------------------------------------------------------------------------------------
# Running an optimizer on chosen gradients

def run_optimizer(optimizer, w0, grads, extra_loss=None):
    """Apply `optimizer` to a variable w (start w0) for the gradients `grads` (plus extra_loss(w)'s gradient);
    return w's final value."""
    dtype = w0.dtype
    with gn.Graph():
        w = gn.variable(w0, name="w")
        g = gn.placeholder(w0.shape, dtype, name="g")
        loss = gn.sum(w * g)
        if extra_loss is not None:
            loss = loss + extra_loss(w)
        train_op = optimizer.minimize(loss)
    program = gn.compile(train_op)
    for step, gradient in enumerate(grads, start=1):
        assert program.run({g: gradient}).item() == step          # the train op's value: the step count
    return w.numpy()


shapes = st.lists(st.integers(1, 4), min_size=1, max_size=3).map(tuple)


@st.composite
def problems(draw, dtype="float64"):
    """A start value and 1-4 gradients of one random shape."""
    shape = draw(shapes)
    steps = draw(st.integers(1, 4))
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1)))
    w0 = rng.normal(size=shape).astype(dtype)
    grads = [rng.normal(scale=draw(st.sampled_from([0.01, 1.0, 10.0])), size=shape).astype(dtype)
             for _ in range(steps)]
    return w0, grads


learning_rates = st.floats(1e-4, 1.0)
betas = st.floats(0.5, 0.9999)


def assert_close(actual, expected, dtype="float64"):
    tolerance = dict(rtol=1e-9, atol=1e-12) if dtype == "float64" else dict(rtol=2e-5, atol=1e-6)
    np.testing.assert_allclose(actual, expected, **tolerance)


@given(problems(), learning_rates)
def test_sgd_is_w_minus_lr_g(problem, lr):
    w0, grads = problem
    assert_close(run_optimizer(optim.SGD(lr), w0, grads), sgd_reference(w0, grads, lr))


@given(problems(), learning_rates, st.floats(0.01, 0.99), st.booleans())
def test_momentum_and_nesterov_match_the_textbook(problem, lr, momentum, nesterov):
    w0, grads = problem
    got = run_optimizer(optim.SGD(lr, momentum=momentum, nesterov=nesterov), w0, grads)
    assert_close(got, momentum_reference(w0, grads, lr, momentum, nesterov))


@given(problems(), learning_rates, st.sampled_from([1e-10, 1e-6, 1e-2]))
def test_adagrad_matches_the_textbook(problem, lr, eps):
    w0, grads = problem
    assert_close(run_optimizer(optim.Adagrad(lr, eps=eps), w0, grads), adagrad_reference(w0, grads, lr, eps))


@given(problems(), learning_rates, betas, st.sampled_from([1e-8, 1e-4]))
def test_rmsprop_matches_the_textbook(problem, lr, rho, eps):
    w0, grads = problem
    got = run_optimizer(optim.RMSprop(lr, rho=rho, eps=eps), w0, grads)
    assert_close(got, rmsprop_reference(w0, grads, lr, rho, eps))


@given(problems(), learning_rates, betas, betas, st.sampled_from([1e-8, 1e-3]))
def test_adam_matches_the_textbook_with_bias_correction(problem, lr, beta1, beta2, eps):
    w0, grads = problem
    got = run_optimizer(optim.Adam(lr, beta1, beta2, eps), w0, grads)
    assert_close(got, adam_reference(w0, grads, lr, beta1, beta2, eps))


@given(problems(), learning_rates, betas, betas, st.floats(0.0, 0.5))
def test_adamw_decays_the_weights_outside_the_adaptive_step(problem, lr, beta1, beta2, weight_decay):
    w0, grads = problem
    got = run_optimizer(optim.AdamW(lr, beta1, beta2, 1e-8, weight_decay=weight_decay), w0, grads)
    assert_close(got, adam_reference(w0, grads, lr, beta1, beta2, 1e-8, weight_decay))


@given(problems(dtype="float32"), st.sampled_from(["sgd", "nesterov", "adagrad", "rmsprop", "adam", "adamw"]))
def test_float32_updates_match_the_textbook(problem, name):
    w0, grads = problem
    lr = 0.05
    optimizer = optim.get(name, learning_rate=lr)
    w64, g64 = w0.astype("float64"), [g.astype("float64") for g in grads]
    expected = {"sgd": lambda: sgd_reference(w64, g64, lr),
                "nesterov": lambda: momentum_reference(w64, g64, lr, 0.9, True),
                "adagrad": lambda: adagrad_reference(w64, g64, lr, 1e-10),
                "rmsprop": lambda: rmsprop_reference(w64, g64, lr, 0.9, 1e-8),
                "adam": lambda: adam_reference(w64, g64, lr, 0.9, 0.999, 1e-8),
                "adamw": lambda: adam_reference(w64, g64, lr, 0.9, 0.999, 1e-8, 0.01)}[name]()
    got = run_optimizer(optimizer, w0, grads)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)


# ---------------------------------------------------------------------------------------------------------------
# Penalties and clipping


@given(problems(), learning_rates, st.floats(0.0, 2.0))
def test_l2_penalty_adds_lambda_w_to_the_gradient(problem, lr, strength):
    w0, grads = problem
    got = run_optimizer(optim.SGD(lr), w0, grads, extra_loss=lambda w: optim.l2_penalty([w], strength))
    expected = w0
    for g in grads:
        expected = expected - lr * (g + strength * expected)
    assert_close(got, expected)


@given(problems(), st.floats(1e-3, 0.1), st.floats(0.0, 2.0))
def test_l1_penalty_adds_lambda_sign_w_to_the_gradient(problem, lr, strength):
    w0, grads = problem
    w0 = np.where(np.abs(w0) < 0.5, 0.5, w0)        # away from 0, where |w| has a kink
    grads = [g * 0.01 for g in grads[:1]]           # one small step: w keeps its sign
    got = run_optimizer(optim.SGD(lr), w0, grads, extra_loss=lambda w: optim.l1_penalty([w], strength))
    assert_close(got, w0 - lr * (grads[0] + strength * np.sign(w0)))


@given(st.integers(0, 2 ** 32 - 1), st.floats(0.01, 10.0), st.floats(0.1, 5.0))
def test_clipping_by_global_norm_caps_the_length_of_all_gradients_together(seed, scale, max_norm):
    rng = np.random.default_rng(seed)
    a0, b0 = rng.normal(size=(3, 2)), rng.normal(size=(4,))
    ga, gb = rng.normal(scale=scale, size=(3, 2)), rng.normal(scale=scale, size=(4,))
    with gn.Graph():
        a, b = gn.variable(a0, name="a"), gn.variable(b0, name="b")
        pa, pb = gn.placeholder((3, 2), "float64"), gn.placeholder((4,), "float64")
        optimizer = optim.SGD(1.0, clip_norm=max_norm)
        train_op = optimizer.minimize(gn.sum(a * pa) + gn.sum(b * pb))
    norm_value, _ = gn.compile([optimizer.global_norm, train_op]).run({pa: ga, pb: gb})
    norm = math.sqrt((ga ** 2).sum() + (gb ** 2).sum())
    factor = max_norm / max(norm, max_norm)
    np.testing.assert_allclose(norm_value, norm, rtol=1e-12)
    assert_close(a.numpy(), a0 - ga * factor)
    assert_close(b.numpy(), b0 - gb * factor)


# ---------------------------------------------------------------------------------------------------------------
# Frozen variables


@settings(max_examples=8)
@given(st.sampled_from(sorted(optim.OPTIMIZERS)), st.sampled_from(["dense1", "dense2"]), st.integers(0, 1000))
def test_a_frozen_variable_never_changes_and_gets_no_gradient(name, frozen, seed):
    model = nn.Sequential([nn.Dense(5, activation="tanh"), nn.Dense(3)], seed=seed)
    model.build((4,), "float64")
    model.freeze(frozen)
    with model.graph:
        labels = gn.placeholder((None,), "int64")
        loss = gn.softmax_cross_entropy(model(model.input, training=True), labels)
        train_op = optim.get(name, learning_rate=0.1).minimize(loss)
    program = gn.compile([loss, train_op])
    before = model.get_weights()
    rng = np.random.default_rng(seed)
    for _ in range(3):
        program.run({model.input: rng.normal(size=(8, 4)), labels: rng.integers(0, 3, size=8)})
    after = model.get_weights()
    for var_name, value in before.items():
        if var_name.startswith(frozen + "/"):
            assert np.array_equal(after[var_name], value), var_name
        else:
            assert not np.array_equal(after[var_name], value), var_name
    names = {node.name for node in program.nodes}
    assert f"grad/{frozen}/weight" not in names and f"grad/{frozen}/bias" not in names
    assert not any(n.op.name == "assign" and n.inputs[0].name.startswith(frozen + "/") for n in program.nodes)


def test_minimize_refuses_a_frozen_variable_in_var_list_and_a_second_loss():
    with gn.Graph():
        w = gn.variable(np.ones(3), name="w", trainable=False)
        v = gn.variable(np.ones(3), name="v")
        loss = gn.sum(w * v)
        with pytest.raises(gn.GraphError, match="'w' is frozen"):
            optim.SGD(0.1).minimize(loss, var_list=[w, v])
        optimizer = optim.SGD(0.1)
        assert optimizer.minimize(loss).side_effects[-1].inputs[0] is v       # var_list=None: trainable only
        with pytest.raises(gn.GraphError, match="already minimizes"):
            optimizer.minimize(loss)
        with pytest.raises(gn.GraphError, match="no trainable variable"):
            optim.Adam().minimize(gn.sum(w * w))


# ---------------------------------------------------------------------------------------------------------------
# The learning rate: a variable, changed without recompiling


def test_the_learning_rate_changes_between_runs_without_recompiling():
    w0, g0 = np.array([1.0, -2.0]), np.array([0.5, 0.25])
    with gn.Graph():
        w = gn.variable(w0, name="w")
        g = gn.placeholder((2,), "float64")
        optimizer = optim.SGD(0.1)
        program = gn.compile(optimizer.minimize(gn.sum(w * g)))
    program.run({g: g0})
    optimizer.set_learning_rate(0.5)
    program.run({g: g0})
    np.testing.assert_allclose(w.numpy(), w0 - 0.1 * g0 - 0.5 * g0, rtol=1e-12)
    assert optimizer.current_learning_rate() == 0.5 and optimizer.steps_done() == 2


def test_a_schedule_sets_the_rate_of_each_step():
    schedule = optim.StepDecay(0.4, step_size=2, gamma=0.5)
    w0, g0 = np.array([3.0]), np.array([1.0])
    with gn.Graph():
        w = gn.variable(w0, name="w")
        g = gn.placeholder((1,), "float64")
        optimizer = optim.SGD(schedule)
        program = gn.compile(optimizer.minimize(gn.sum(w * g)))
    rates = []
    for step in range(5):
        rates.append(optimizer.update_learning_rate(step))
        program.run({g: g0})
    assert rates == [0.4, 0.4, 0.2, 0.2, 0.1]
    np.testing.assert_allclose(w.numpy(), w0 - sum(rates) * g0, rtol=1e-12)


def test_schedule_formulas():
    step = optim.StepDecay(1.0, step_size=10, gamma=0.5)
    assert [step(t) for t in (0, 9, 10, 25)] == [1.0, 1.0, 0.5, 0.25]
    exponential = optim.ExponentialDecay(2.0, decay_rate=0.5, decay_steps=10)
    assert exponential(0) == 2.0 and math.isclose(exponential(10), 1.0) and math.isclose(exponential(5), 2 ** 0.5)
    cosine = optim.CosineDecay(1.0, total_steps=100, final=0.1)
    assert cosine(0) == 1.0 and math.isclose(cosine(50), 0.55) and math.isclose(cosine(100), 0.1)
    assert cosine(1000) == cosine(100)
    warm = optim.WarmUp(cosine, warmup_steps=4)
    assert [warm(t) for t in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert warm(4) == cosine(0) and warm(54) == cosine(50)
    assert optim.WarmUp(0.3, 3)(10) == 0.3


@given(st.floats(1e-4, 1.0), st.integers(1, 500), st.integers(0, 2000))
def test_cosine_decay_stays_between_its_ends_and_never_rises(initial, total, t):
    cosine = optim.CosineDecay(initial, total, final=initial / 10)
    assert initial / 10 - 1e-12 <= cosine(t) <= initial + 1e-12
    assert cosine(t + 1) <= cosine(t) + 1e-12


def test_optimizer_arguments_are_checked():
    with pytest.raises(gn.GraphError, match="beta1"):
        optim.Adam(beta1=1.0)
    with pytest.raises(gn.GraphError, match="nesterov"):
        optim.SGD(nesterov=True)
    with pytest.raises(gn.GraphError, match="unknown optimizer"):
        optim.get("adamax")
    with pytest.raises(gn.GraphError, match="learning rate"):
        optim.SGD(-1.0)


# ---------------------------------------------------------------------------------------------------------------
# The fused update: mul → sub → assign as one step (cpu; the cuda twin is in test_cuda_simulator.py)

def test_a_plain_sgd_update_runs_as_one_fused_step_with_the_textbook_values():
    w0, grads = np.array([[1.0, -2.0], [0.5, 3.0]], "float32"), [np.full((2, 2), 0.25, "float32")] * 3
    with gn.Graph():
        w = gn.variable(w0, name="w")
        g = gn.placeholder((2, 2), "float32")
        optimizer = optim.SGD(0.1)
        program = gn.compile(optimizer.minimize(gn.sum(w * g)), device="cpu")
    assert "cpu.sgd_update" in str(program.describe())
    for step, gradient in enumerate(grads):
        if step == 2:
            optimizer.set_learning_rate(0.5)      # the rate is a variable the fused step reads on every run
        program.run({g: gradient})
    np.testing.assert_allclose(w.numpy(), w0 - (0.1 + 0.1 + 0.5) * 0.25, rtol=1e-6)


@pytest.mark.parametrize("device", ["cpu", "reference"])
def test_a_hand_written_update_fuses_with_the_rate_on_either_side(device):
    w0, g0 = np.array([1.0, -2.0, 0.5], "float32"), np.array([0.5, 0.25, -1.0], "float32")
    with gn.Graph():
        w = gn.variable(w0, name="w")
        g = gn.placeholder((3,), "float32")
        program = gn.compile(gn.assign(w, w - g * 0.2), device=device)
        program.run({g: g0})
    assert ("cpu.sgd_update" in str(program.describe())) == (device == "cpu")
    np.testing.assert_allclose(w.numpy(), w0 - 0.2 * g0, rtol=1e-6)


def test_an_update_stays_three_steps_where_a_later_read_of_the_weight_needs_the_old_value():
    """The fused step would run where the multiplication runs; a read of w scheduled after that must see the old
    w, so the chain is not fused — and cpu agrees with the reference either way."""
    data = np.arange(12, dtype="float32").reshape(4, 3) / 10
    results, texts = {}, {}
    for device in ("cpu", "reference"):
        with gn.Graph():
            x = gn.placeholder((4, 3), "float32")
            w = gn.variable(np.linspace(-1, 1, 6, dtype="float32").reshape(3, 2), name="w")
            loss = gn.sum((x @ w) ** 2)
            (grad,) = gn.gradients(loss, [w])
            update = gn.assign(w, w - 0.05 * grad)
            late_read = gn.sum(w * 3.0)
            program = gn.compile([loss, update, late_read], device=device)
            results[device] = [program.run({x: data}) for _ in range(2)]
            texts[device] = str(program.describe())
    assert "sgd_update" not in texts["cpu"]
    for on_cpu, on_reference in zip(results["cpu"], results["reference"]):
        for a, b in zip(on_cpu, on_reference):
            np.testing.assert_allclose(a, b, rtol=1e-6)


def test_a_dense_weight_and_its_gradient_update_in_one_gemm_with_the_textbook_values():
    """w ← w − η·(xᵀ·dy) runs as one matmul_sgd_update step (alpha = −η, beta = 1 on w's storage): the same
    weights as the reference after three steps, the rate changed before the third."""
    rng = np.random.default_rng(0)
    data, w0 = rng.standard_normal((8, 5)).astype("float32"), rng.standard_normal((5, 3)).astype("float32")
    weights, texts = {}, {}
    for device in ("cpu", "reference"):
        with gn.Graph():
            x = gn.placeholder((None, 5), "float32")
            w = gn.variable(w0, name="w")
            optimizer = optim.SGD(0.1)
            program = gn.compile(optimizer.minimize(gn.mean(gn.matmul(x, w) ** 2)), device=device)
            for step in range(3):
                if step == 2:
                    optimizer.set_learning_rate(0.5)
                program.run({x: data})
            weights[device], texts[device] = w.numpy(), str(program.describe())
    assert "cpu.matmul_sgd_update" in texts["cpu"]
    np.testing.assert_allclose(weights["cpu"], weights["reference"], rtol=1e-5, atol=1e-6)


def test_the_fused_gemm_update_kernel_subtracts_from_any_u():
    gemm_update = get_backend_kernel("matmul_sgd_update")
    rng = np.random.default_rng(1)
    a, b, u = rng.standard_normal((4, 6)), rng.standard_normal((4, 3)), rng.standard_normal((6, 3))
    out = np.zeros((6, 3))
    gemm_update(out, a, b, np.array([0.25]), u, out, transpose_a=True, transpose_b=False)
    np.testing.assert_allclose(out, u - 0.25 * (a.T @ b), rtol=1e-12)
    with pytest.raises(ValueError, match="matmul_sgd_update"):
        gemm_update(out, a, b, np.array([0.25, 0.5]), u, out, transpose_a=True, transpose_b=False)


def get_backend_kernel(name):
    from graphnet.backends import get_backend
    return get_backend("cpu").kernels[op_named(name)]


def test_the_fused_update_kernel_explains_a_mismatched_call():
    from graphnet.backends import get_backend
    sgd_update = get_backend("cpu").kernels[op_named("sgd_update")]
    w, g = np.ones((2, 3), "float32"), np.ones((3, 2), "float32")
    with pytest.raises(ValueError, match="sgd_update"):
        sgd_update(w, np.float32([0.1]), np.ones(5, "float32"), w, w)
    with pytest.raises(TypeError, match="sgd_update"):
        sgd_update(w, np.float64([0.1]), g, w, w)
