"""What a compiled Program does across runs: state that persists, in-place assignment and its ordering, the forms
of fetches and feeds, plans made once per feed shape (and no allocation in steady state), the printed schedule and
its memory plan, and variables shared between programs.
"""
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import graphnet as gn


def run(fetches, feeds=None, **kwargs):
    return gn.compile(fetches, device="reference", **kwargs).run(feeds or {})


# ----------------------------------------------------------------------------------------------------------------
# state across runs


def test_variables_keep_their_values_across_runs():
    with gn.Graph():
        counter = gn.variable(np.zeros(2, "float32"), name="counter")
        bump = gn.assign(counter, counter + 1)
    prog = gn.compile(bump)
    for expected in (1, 2, 3):
        np.testing.assert_array_equal(prog.run(), [expected, expected])
    np.testing.assert_array_equal(counter.numpy(), [3, 3])


def test_assign_value_between_runs_is_seen_by_the_next_run():
    with gn.Graph():
        x = gn.placeholder((None, 2), name="x")
        w = gn.variable(np.ones((2, 1), "float32"), name="w")
        y = x @ w
    prog = gn.compile(y)
    feed = {x: np.array([[1.0, 2.0]])}
    np.testing.assert_array_equal(prog.run(feed), [[3.0]])
    w.assign_value(np.array([[10.0], [100.0]]))
    np.testing.assert_array_equal(prog.run(feed), [[210.0]])
    assert w.numpy().dtype == np.float32


def test_numpy_returns_a_copy():
    with gn.Graph():
        w = gn.variable(np.ones(3, "float32"), name="w")
    copy = w.numpy()
    copy[:] = 7
    np.testing.assert_array_equal(w.numpy(), np.ones(3))


def test_assign_updates_in_place_and_returns_the_new_value():
    init = np.array([1.0, 2.0, 3.0], "float32")
    with gn.Graph():
        w = gn.variable(init, name="w")
        double = gn.assign(w, w * 2)
    prog = gn.compile([double, w])
    new, fetched_w = prog.run()
    np.testing.assert_array_equal(new, init * 2)
    np.testing.assert_array_equal(w.numpy(), init * 2)
    np.testing.assert_array_equal(fetched_w, init)            # fetched as this run read it, before the update
    new, _ = prog.run()
    np.testing.assert_array_equal(new, init * 4)


def least_squares_problem(seed=0, n=64, d=5):
    rng = np.random.default_rng(seed)
    features = rng.standard_normal((n, d))
    true_w = rng.standard_normal((d, 1))
    targets = features @ true_w + 0.01 * rng.standard_normal((n, 1))
    return features, targets


def test_sgd_with_assign_decreases_a_least_squares_loss():
    features, targets = least_squares_problem()
    lr = 0.1
    w0 = np.zeros((5, 1))
    with gn.Graph():
        x = gn.placeholder((None, 5), dtype="float64", name="x")
        t = gn.placeholder((None, 1), dtype="float64", name="t")
        w = gn.variable(w0, name="w")
        loss = gn.mse(x @ w, t)
        dw = gn.gradients(loss, w)
        step = gn.assign(w, w - lr * dw)
    train = gn.compile([loss, step])
    feeds = {x: features, t: targets}
    loss0, w1 = train.run(feeds)
    # the first step, computed here: loss and gradient of mean (Xw - t)² at w0
    residual = features @ w0 - targets
    assert loss0 == pytest.approx(np.mean(residual ** 2), rel=1e-12)
    np.testing.assert_allclose(w1, w0 - lr * 2 * features.T @ residual / residual.size, rtol=1e-12)
    losses = [loss0] + [train.run(feeds)[0] for _ in range(50)]
    assert all(b < a for a, b in zip(losses, losses[1:]))
    assert losses[-1] < 0.01 * losses[0]


def test_write_after_read_gradient_uses_the_old_weight():
    """A program fetching [dx, update_w], where dx reads w, computes dx with the OLD w."""
    rng = np.random.default_rng(1)
    x_val, t_val, w0 = rng.standard_normal((4, 3)), rng.standard_normal((4, 2)), rng.standard_normal((3, 2))
    lr = 0.5
    with gn.Graph():
        x = gn.placeholder((None, 3), dtype="float64", name="x")
        t = gn.placeholder((None, 2), dtype="float64", name="t")
        w = gn.variable(w0, name="w")
        loss = gn.mse(x @ w, t)
        dx, dw = gn.gradients(loss, [x, w])
        update = gn.assign(w, w - lr * dw)
    dx_val, new_w = gn.compile([dx, update]).run({x: x_val, t: t_val})
    dy = 2 * (x_val @ w0 - t_val) / t_val.size
    np.testing.assert_allclose(dx_val, dy @ w0.T, rtol=1e-12)          # the old w
    np.testing.assert_allclose(new_w, w0 - lr * x_val.T @ dy, rtol=1e-12)


@pytest.mark.parametrize("device", ["cpu", "reference"])
def test_a_fetched_variable_shows_the_value_the_run_read_not_its_update(device):
    """Fetching [loss, w, update]: loss and w are from before the update, the assign node's value after it."""
    with gn.Graph():
        w = gn.variable(np.array([1.0, 2.0]), name="w")
        loss = gn.sum(w * w)
        (dw,) = gn.gradients(loss, [w])
        update = gn.assign(w, w - 0.25 * dw)
    program = gn.compile([loss, w, w * 1.0, update], device=device)
    loss_v, w_v, w_times_one, new_w = program.run({})
    assert loss_v == 5.0
    np.testing.assert_array_equal(w_v, [1.0, 2.0])
    np.testing.assert_array_equal(w_times_one, [1.0, 2.0])
    np.testing.assert_array_equal(new_w, [0.5, 1.0])
    np.testing.assert_array_equal(program.run({})[1], [0.5, 1.0])      # the next run reads the updated value
    np.testing.assert_array_equal(w.numpy(), [0.25, 0.5])


def test_write_after_read_holds_for_a_reader_created_after_the_assignment():
    """Ordering by creation alone would run the update first; the reader must still see the old value."""
    w0 = np.array([1.0, 2.0])
    with gn.Graph():
        w = gn.variable(w0, name="w")
        update = gn.assign(w, w * 10)
        late_reader = w + 1                       # created after the assignment, but reads w in the same run
        late_copy = gn.reshape(w, (2, 1))        # a reshape of a variable must not alias its storage either
    prog = gn.compile([late_reader, update, late_copy])
    reader, new, copy = prog.run()
    np.testing.assert_array_equal(reader, w0 + 1)
    np.testing.assert_array_equal(new, w0 * 10)
    np.testing.assert_array_equal(copy, w0.reshape(2, 1))
    reader, new, copy = prog.run()
    np.testing.assert_array_equal(reader, w0 * 10 + 1)
    np.testing.assert_array_equal(copy, (w0 * 10).reshape(2, 1))


# ----------------------------------------------------------------------------------------------------------------
# fetches and feeds


def small_graph():
    g = gn.Graph()
    with g:
        x = gn.placeholder((None, 3), name="x")
        unused = gn.placeholder((None, 7), name="unused")
        a = gn.sum(x, axis=1, name="a")
        b = gn.mul(x, 2.0, name="b")
    return x, unused, a, b


def test_fetch_order_and_single_versus_list_forms():
    x, _, a, b = small_graph()
    value = np.arange(6, dtype="float32").reshape(2, 3)
    single = gn.compile(b).run({x: value})
    assert isinstance(single, np.ndarray)
    np.testing.assert_array_equal(single, value * 2)
    one_list = gn.compile([b]).run({x: value})
    assert isinstance(one_list, list) and len(one_list) == 1
    np.testing.assert_array_equal(one_list[0], value * 2)
    first_b, then_a = gn.compile([b, a]).run({x: value})
    np.testing.assert_array_equal(first_b, value * 2)
    np.testing.assert_array_equal(then_a, value.sum(axis=1))
    first_a, then_b = gn.compile((a, b)).run({x: value})
    np.testing.assert_array_equal(first_a, value.sum(axis=1))
    np.testing.assert_array_equal(then_b, value * 2)
    twice = gn.compile([a, a]).run({x: value})
    np.testing.assert_array_equal(twice[0], twice[1])


def test_fetching_a_placeholder_a_variable_and_a_constant():
    with gn.Graph():
        x = gn.placeholder((None, 2), name="x")
        w = gn.variable(np.array([1.0, 2.0], "float32"), name="w")
        c = gn.constant(np.array([5.0], "float32"), name="c")
    value = np.array([[3.0, 4.0]], "float32")
    out_x, out_w, out_c = gn.compile([x, w, c]).run({x: value})
    np.testing.assert_array_equal(out_x, value)
    np.testing.assert_array_equal(out_w, [1.0, 2.0])
    np.testing.assert_array_equal(out_c, [5.0])


def test_fetched_values_are_copies_not_views_of_the_arena():
    x, _, a, b = small_graph()
    prog = gn.compile([a, b])
    first = prog.run({x: np.ones((2, 3), "float32")})
    kept = [v.copy() for v in first]
    prog.run({x: np.full((2, 3), 5.0, "float32")})
    for v, k in zip(first, kept):
        np.testing.assert_array_equal(v, k)
    first[1][:] = 123                                          # writing a result touches nothing inside
    np.testing.assert_array_equal(prog.run({x: np.ones((2, 3), "float32")})[1], np.full((2, 3), 2.0))


@pytest.mark.parametrize("device", ["cpu", "reference"])
def test_a_fetch_written_into_a_fresh_array_is_still_read_by_the_steps_after_it(device, monkeypatch):
    with gn.Graph():
        x = gn.placeholder((None, 3), name="x")
        h = gn.mul(x, 2.0, name="h")                               # fetched, and read by the next step
        y = gn.add(h, 1.0, name="y")
        prog = gn.compile([h, y, h * 1.0], device=device)
    first = prog.run({x: np.ones((2, 3), "float32")})
    second = prog.run({x: np.full((2, 3), 5.0, "float32")})
    np.testing.assert_array_equal(first[0], np.full((2, 3), 2.0))   # a fresh array per run: the next one leaves it
    np.testing.assert_array_equal(second[0], np.full((2, 3), 10.0))
    np.testing.assert_array_equal(second[1], np.full((2, 3), 11.0))
    plan = prog.plan()
    assert h in plan.fetch_writers
    assert all(out is plan.values[node] for (_, out, _, _), node in zip(plan.calls, plan.call_nodes))
    monkeypatch.setattr(prog.backend, "to_host", lambda buffer: pytest.fail("a fetch was copied out of the arena"))
    third = prog.run({x: np.full((2, 3), 3.0, "float32")})     # every fetch here is a kernel's: none is copied
    np.testing.assert_array_equal(third[1], np.full((2, 3), 7.0))


def test_feeds_keyed_by_name():
    x, _, a, b = small_graph()
    value = np.ones((2, 3), "float32")
    np.testing.assert_array_equal(gn.compile(b).run({"x": value}), value * 2)


def test_a_placeholder_the_fetches_do_not_need_need_not_be_fed():
    x, unused, a, b = small_graph()
    prog = gn.compile([a, b])
    value = np.ones((2, 3), "float32")
    np.testing.assert_array_equal(prog.run({x: value})[0], [3.0, 3.0])
    # feeding it anyway (keyed by the tensor) is harmless
    np.testing.assert_array_equal(prog.run({x: value, unused: np.zeros((2, 7))})[0], [3.0, 3.0])


def test_a_placeholder_the_fetches_do_not_need_may_be_fed_by_name():
    x, unused, a, b = small_graph()
    prog = gn.compile(a)
    np.testing.assert_array_equal(prog.run({"x": np.ones((2, 3)), "unused": np.zeros((2, 7))}), [3.0, 3.0])


def test_feeds_are_copied_in_and_converted():
    x, _, a, b = small_graph()
    prog = gn.compile(b)
    value = np.ones((2, 3))                                    # float64 and a Python list feed a float32 input
    out = prog.run({x: value})
    assert out.dtype == np.float32
    np.testing.assert_array_equal(prog.run({x: [[1, 2, 3]]}), [[2.0, 4.0, 6.0]])
    value[:] = 9                                               # the caller's array is not kept
    np.testing.assert_array_equal(out, np.full((2, 3), 2.0))


# ----------------------------------------------------------------------------------------------------------------
# plans


def test_a_new_batch_size_makes_a_new_plan_and_the_same_one_reuses_it():
    x, _, a, b = small_graph()
    prog = gn.compile([a, b])
    out4 = prog.run({x: np.ones((4, 3), "float32")})
    assert len(prog._plans) == 1
    plan4 = prog.plan()
    out9 = prog.run({x: np.ones((9, 3), "float32")})
    assert len(prog._plans) == 2
    assert out4[1].shape == (4, 3) and out9[1].shape == (9, 3)
    np.testing.assert_array_equal(out9[0], np.full(9, 3.0))
    plan9 = prog.plan()
    assert plan9 is not plan4
    prog.run({x: np.ones((4, 3), "float32")})
    assert len(prog._plans) == 2
    assert prog.plan() is plan4
    assert prog.plan(batch_size=4) is plan4 and prog.plan(batch_size=9) is plan9


def test_steady_state_runs_allocate_nothing_but_the_results(monkeypatch):
    """After the first run with a shape, a run allocates no arena and binds nothing anew: the fetched values are
    written into fresh arrays for that run only (which run() returns), and every call is bound as before after it."""
    x, _, a, b = small_graph()
    prog = gn.compile([a, b])
    feed = {x: np.ones((4, 3), "float32")}
    prog.run(feed)
    plan = prog.plan()
    views = {node: value for node, value in plan.values.items()}
    calls = [(fn, out, list(ins)) for fn, out, ins, _ in plan.calls]
    allocations, results = [], []
    original = prog.backend.allocate
    monkeypatch.setattr(prog.backend, "allocate", lambda nbytes: allocations.append(nbytes) or original(nbytes))
    for value in (2.0, 3.0, 4.0):
        out = prog.run({x: np.full((4, 3), value, "float32")})
        np.testing.assert_array_equal(out[0], np.full(4, 3 * value))
        results.append(out)
    assert allocations == []
    assert prog.plan() is plan and len(prog._plans) == 1
    assert all(plan.values[node] is view for node, view in views.items())
    for (fn, out, ins), (fn2, out2, ins2, _) in zip(calls, plan.calls):
        assert fn is fn2 and out is out2 and all(i is j for i, j in zip(ins, ins2))
    for value, (sums, doubled) in zip((2.0, 3.0, 4.0), results):    # each run's results are the caller's alone
        np.testing.assert_array_equal(sums, np.full(4, 3 * value))
        np.testing.assert_array_equal(doubled, np.full((4, 3), 2 * value))
    prog.run({x: np.ones((5, 3), "float32")})                  # a new shape: one arena for the new plan
    assert len(allocations) == 1


def test_a_tensor_fetched_twice_is_two_arrays():
    """Fetched twice, a value is two arrays (copies), so that changing one leaves the other."""
    with gn.Graph():
        x = gn.placeholder((None, 3), name="x")
        y = gn.mul(x, 2.0, name="y")
        prog = gn.compile([y, y])
    for value in (1.0, 2.0):
        y1, y2 = prog.run({x: np.full((2, 3), value, "float32")})
        assert y1 is not y2 and np.array_equal(y1, y2)
        y1[...] = -1
        assert np.all(y2 == 2 * value)


# ----------------------------------------------------------------------------------------------------------------
# LeNet-5: the printed schedule, the memory plan, reuse_memory


def lenet(dtype="float32", seed=0):
    """conv 6@5x5 pad 2, pool, conv 16@5x5, pool, dense 120, 84, 10; relu; softmax cross entropy."""
    rng = np.random.default_rng(seed)

    def init(*shape):
        fan_in = int(np.prod(shape[1:])) if len(shape) == 4 else shape[0]
        return (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(dtype)

    g = gn.Graph()
    with g:
        x = gn.placeholder((None, 1, 28, 28), dtype=dtype, name="x")
        y = gn.placeholder((None,), dtype="int64", name="y")
        params = []

        def var(value, name):
            params.append(gn.variable(value, name=name))
            return params[-1]

        h = gn.relu(gn.conv2d(x, var(init(6, 1, 5, 5), "c1w"), var(np.zeros(6, dtype), "c1b"), padding=2,
                              name="conv1"))
        h = gn.max_pool2d(h, 2, name="pool1")
        h = gn.relu(gn.conv2d(h, var(init(16, 6, 5, 5), "c2w"), var(np.zeros(16, dtype), "c2b"), name="conv2"))
        h = gn.flatten(gn.max_pool2d(h, 2, name="pool2"))
        for size_in, size_out, name in ((400, 120, "fc1"), (120, 84, "fc2"), (84, 10, "fc3")):
            h = h @ var(init(size_in, size_out), f"{name}w") + var(np.zeros(size_out, dtype), f"{name}b")
            if name != "fc3":
                h = gn.relu(h)
        loss = gn.softmax_cross_entropy(h, y, name="loss")
        grads = gn.gradients(loss, params)
    return x, y, params, loss, grads


def lenet_batch(n, seed=1):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 1, 28, 28)).astype("float32"), rng.integers(0, 10, n)


def test_lenet_schedule_shows_forward_and_backward_and_a_peak_below_naive():
    x, y, params, loss, grads = lenet()
    prog = gn.compile([loss] + grads)
    xb, yb = lenet_batch(8)
    prog.run({x: xb, y: yb})
    text = str(prog)
    rows = [line for line in text.splitlines() if re.match(r"^\s*\d+\s+(forward|backward|update)\s", line)]
    phases = [line.split()[1] for line in rows]
    assert "forward" in phases and "backward" in phases
    assert phases == sorted(phases, key=["forward", "backward"].index)     # forward first, then backward
    assert len(rows) == len(prog.plan().steps)
    ops = [op for line in rows for op in line.split()[2].split("+")]        # a fused step names each op
    for op in ("conv2d", "max_pool2d", "relu", "matmul", "softmax_cross_entropy",
               "softmax_cross_entropy_grad", "max_pool2d_grad", "conv2d_grad_weight", "conv2d_grad_input"):
        assert op in ops, op
    assert ops.count("conv2d") == 2 and ops.count("conv2d_grad_weight") == 2
    assert ops.count("conv2d_grad_input") == 1                 # nothing needs dx of the input images
    assert "(8, 6, 28, 28)" in text and "(8, 16, 10, 10)" in text and "(8, 10)" in text
    match = re.search(r"one arena of ([\d.]+) (B|KiB|MiB|GiB) \(planned peak\) vs ([\d.]+) (B|KiB|MiB|GiB) naive",
                      text)
    assert match, text
    scale = {"B": 1, "KiB": 2 ** 10, "MiB": 2 ** 20, "GiB": 2 ** 30}
    peak = float(match.group(1)) * scale[match.group(2)]
    naive = float(match.group(3)) * scale[match.group(4)]
    assert peak < naive
    plan = prog.plan()
    assert plan.arena_nbytes < plan.naive_nbytes
    assert abs(peak - plan.arena_nbytes) <= 0.01 * plan.arena_nbytes
    # the naive total really is one buffer per value: at least every activation of the forward pass
    forward_bytes = sum(int(np.prod(plan.shapes[s.node])) * s.node.dtype.itemsize for s in plan.steps
                        if s.node.phase == "forward" and s.kernel is not None)
    assert plan.naive_nbytes >= forward_bytes


def test_print_before_any_run_guesses_a_batch_of_one():
    x, y, params, loss, grads = lenet()
    prog = gn.compile([loss] + grads)
    text = str(prog)
    assert "x (1, 1, 28, 28)" in text and "None sizes shown as 1" in text
    assert "describe(batch_size=N)" in text
    assert "(3, 6, 28, 28)" in prog.describe(batch_size=3)


def test_reuse_memory_false_gives_identical_results_on_the_lenet_training_step():
    x, y, params, loss, grads = lenet()
    reusing = gn.compile([loss] + grads)
    separate = gn.compile([loss] + grads, reuse_memory=False)
    for n, seed in ((8, 1), (3, 2), (8, 3)):
        xb, yb = lenet_batch(n, seed)
        a = reusing.run({x: xb, y: yb})
        b = separate.run({x: xb, y: yb})
        for u, v in zip(a, b):
            assert u.shape == v.shape
            np.testing.assert_array_equal(u, v)
        assert all(np.any(g != 0) for g in a[1:])              # every gradient is really computed
    plan_r, plan_s = reusing.plan(batch_size=8), separate.plan(batch_size=8)
    assert plan_s.arena_nbytes >= plan_s.naive_nbytes       # no sharing at all
    assert plan_r.arena_nbytes < plan_s.arena_nbytes


def test_lenet_gradients_match_a_finite_difference():
    """An end-to-end check that the backward schedule is the derivative of the forward one (float64)."""
    x, y, params, loss, grads = lenet(dtype="float64", seed=3)
    prog = gn.compile([loss] + grads)
    loss_only = gn.compile(loss)
    xb, yb = lenet_batch(2, seed=4)
    xb = xb.astype("float64")
    _, *grad_values = prog.run({x: xb, y: yb})
    rng = np.random.default_rng(5)
    for param, grad in zip(params, grad_values):
        original = param.numpy()
        index = tuple(int(rng.integers(0, d)) for d in original.shape)
        eps = 1e-6
        values = []
        for sign in (1, -1):
            bumped = original.copy()
            bumped[index] += sign * eps
            param.assign_value(bumped)
            values.append(loss_only.run({x: xb, y: yb}))
        param.assign_value(original)
        assert grad[index] == pytest.approx((values[0] - values[1]) / (2 * eps), rel=1e-4, abs=1e-8), param.name


# ----------------------------------------------------------------------------------------------------------------
# sharing variables between programs


def test_variables_are_shared_between_a_training_and_an_evaluation_program():
    features, targets = least_squares_problem(seed=2)
    with gn.Graph():
        x = gn.placeholder((None, 5), dtype="float64", name="x")
        t = gn.placeholder((None, 1), dtype="float64", name="t")
        w = gn.variable(np.zeros((5, 1)), name="w")
        prediction = x @ w
        loss = gn.mse(prediction, t)
        step = gn.assign(w, w - 0.1 * gn.gradients(loss, w))
    train = gn.compile(step)
    evaluate = gn.compile([loss, prediction])
    before, _ = evaluate.run({x: features, t: targets})
    for _ in range(5):
        new_w = train.run({x: features, t: targets})
    after, pred = evaluate.run({x: features, t: targets})
    np.testing.assert_allclose(pred, features @ new_w, rtol=1e-12)    # eval sees the trained weights
    np.testing.assert_array_equal(w.numpy(), new_w)
    assert after < before
    w.assign_value(np.zeros((5, 1)))                                  # and both see a value set from outside
    assert evaluate.run({x: features, t: targets})[0] == pytest.approx(before)


def test_batch_norm_running_statistics_are_shared_with_the_inference_program():
    rng = np.random.default_rng(6)
    with gn.Graph():
        x = gn.placeholder((None, 2), dtype="float64", name="x")
        gamma, beta = gn.variable(np.ones(2), name="gamma"), gn.variable(np.zeros(2), name="beta")
        rm = gn.variable(np.zeros(2), name="rm", trainable=False)
        rv = gn.variable(np.ones(2), name="rv", trainable=False)
        train_out = gn.batch_norm(x, gamma, beta, rm, rv, training=True, momentum=0.5)
        eval_out = gn.batch_norm(x, gamma, beta, rm, rv, training=False)
    train, evaluate = gn.compile(train_out), gn.compile(eval_out)
    batch = rng.standard_normal((32, 2)) * 2 + 3
    train.run({x: batch})
    rm_now, rv_now = 0.5 * batch.mean(axis=0), 0.5 + 0.5 * batch.var(axis=0, ddof=1)
    np.testing.assert_allclose(rm.numpy(), rm_now, rtol=1e-12)
    np.testing.assert_allclose(evaluate.run({x: batch}), (batch - rm_now) / np.sqrt(rv_now + 1e-5), rtol=1e-10)


# ----------------------------------------------------------------------------------------------------------------
# random programs: buffer reuse never changes a value

OPS = ["add", "mul", "relu", "tanh", "matmul", "view", "transpose2", "row_sum", "concat_slice", "scale"]


@settings(deadline=None, max_examples=max(100, settings.default.max_examples))
@given(st.lists(st.tuples(st.sampled_from(OPS), st.integers(0, 10 ** 6), st.integers(0, 10 ** 6)),
                min_size=1, max_size=14),
       st.integers(0, 10 ** 6), st.integers(1, 4), st.booleans())
def test_random_programs_agree_with_numpy_with_and_without_memory_reuse(recipe, fetch_seed, batch, with_grad):
    rng = np.random.default_rng(fetch_seed)
    w_val = rng.standard_normal((4, 4))
    x_val = rng.standard_normal((batch, 4))
    with gn.Graph():
        x = gn.placeholder((None, 4), dtype="float64", name="x")
        w = gn.variable(w_val, name="w")
        nodes = [(x, x_val)]
        for op, i, j in recipe:
            (a, av), (b, bv) = nodes[i % len(nodes)], nodes[j % len(nodes)]
            if op == "add":
                nodes.append((a + b, av + bv))
            elif op == "mul":
                nodes.append((a * b, av * bv))
            elif op == "relu":
                nodes.append((gn.relu(a), np.maximum(av, 0)))
            elif op == "tanh":
                nodes.append((gn.tanh(a), np.tanh(av)))
            elif op == "matmul":
                nodes.append((a @ w, av @ w_val))
            elif op == "view":                                 # two free reshapes: views into one buffer
                nodes.append((gn.reshape(gn.reshape(a, (-1, 2, 2)), (-1, 4)), av))
            elif op == "transpose2":
                nodes.append((gn.transpose(gn.transpose(a)), av))
            elif op == "row_sum":
                nodes.append((a - gn.sum(a, axis=1, keepdims=True), av - av.sum(axis=1, keepdims=True)))
            elif op == "concat_slice":
                nodes.append((gn.concat([a, b], axis=1)[:, 2:6], np.concatenate([av, bv], axis=1)[:, 2:6]))
            else:
                nodes.append((a * 0.5 - 1.0, av * 0.5 - 1.0))
        picks = sorted({int(k) for k in rng.integers(0, len(nodes), size=3)}) + [len(nodes) - 1]
        fetches = [nodes[k][0] for k in picks]
        expected = [nodes[k][1] for k in picks]
        if with_grad:
            fetches.append(gn.gradients(gn.sum(nodes[-1][0] * nodes[-1][0]) + gn.sum(w * w), w))
    results = []
    for reuse in (True, False):
        prog = gn.compile(fetches, reuse_memory=reuse)
        results.append(prog.run({x: x_val}))
        again = prog.run({x: x_val})                           # a second run on the same plan: same values
        for u, v in zip(results[-1], again):
            np.testing.assert_array_equal(u, v)
    for u, v in zip(*results):
        np.testing.assert_array_equal(u, v)
    for out, exp in zip(results[0], expected):
        np.testing.assert_allclose(out, exp, rtol=1e-10, atol=1e-10)


def test_profile_times_every_step_of_whole_runs_even_where_buffers_are_reused(capsys):
    """The arena reuses the labels' buffer once the loss has read it; profiling must re-run the whole schedule
    (feeds copied in each time), not replay single steps on whatever the arena holds by then."""
    x, y, params, loss, grads = lenet()
    updates = [gn.assign(p, p - 0.01 * g) for p, g in zip(params, grads)]
    program = gn.compile([loss] + updates)
    xb, yb = lenet_batch(8)
    before = params[0].numpy()
    result = program.profile({x: xb, y: yb}, repeat=3)
    assert [step for step, _ in result] == program.plan().steps
    assert all(seconds > 0 for step, seconds in result if step.kernel is not None)
    assert not np.array_equal(params[0].numpy(), before)          # real runs: the updates happened
    table = capsys.readouterr().out
    assert "softmax_cross_entropy" in table and re.search(r"total [\d.]+ ms per run", table)


def test_the_core_asks_an_op_what_it_is_through_declared_attributes_not_its_name():
    """What an op is (fed, stored, a variable, writing a variable in place, drawing random numbers) is declared on
    its class (op.py) and read as an attribute; kernels and fused ops are keyed by op class. No module of graphnet
    compares an op's name."""
    import pathlib
    import re
    core = pathlib.Path(gn.__file__).parent
    found = []
    from graphnet.op import REGISTRY
    names = "|".join(sorted({re.escape(op.name) for op in REGISTRY}, key=len, reverse=True))
    compared_to_a_name = re.compile(rf"name[\"')\s,\w]{{0,12}}(==|!=)\s*[\"']({names})[\"']")   # x.name == "assign"
    for path in sorted(core.rglob("*.py")):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if re.search(r"\bop\.name\s*(==|!=|in\b|not in\b)", line) or compared_to_a_name.search(line):
                found.append(f"{path.relative_to(core)}:{number}: {line.strip()}")
    assert found == []


def test_op_capabilities_are_declared_on_the_classes():
    from graphnet.graph import ConstantOp, Placeholder, VariableOp
    from graphnet.ops.regularization import Dropout
    from graphnet.ops.state import Assign
    assert Placeholder.is_fed and Placeholder.is_source and not Placeholder.is_stored
    assert VariableOp.is_variable and VariableOp.is_stored and ConstantOp.is_stored and not ConstantOp.is_variable
    assert Assign.writes_variable and Dropout.uses_rng
    assert not any((gn.ops.Add if hasattr(gn.ops, "Add") else gn.ops.elementwise.Add).__dict__.get(flag, False)
                   for flag in ("is_source", "writes_variable", "uses_rng"))


def test_a_program_introduces_itself_in_one_line_and_prints_its_schedule():
    with gn.Graph():
        x = gn.placeholder((None, 3), name="x")
        prog = gn.compile(gn.relu(x) * 2.0, device="reference")
    assert repr(prog) == ("<Program on 'reference': 2 ops, fetches 'mul'; print(program) shows the schedule>")
    assert str(prog).startswith("Program on 'reference': 2 steps")
