"""Schedule invariants on random graphs: every step runs after its inputs, and no buffer the memory plan reuses is
read after another value overwrote it. Checked against the real arrays' addresses, not the planner's own notes."""
import numpy as np
import pytest
from hypothesis import given, strategies as st

import graphnet as gn

UNARY = [gn.relu, gn.tanh, gn.sigmoid, gn.exp, lambda t: gn.leaky_relu(t, 0.1), lambda t: t * 0.5]
BINARY = [gn.add, gn.sub, gn.mul, gn.maximum]


@st.composite
def random_graphs(draw):
    """A random DAG over two (batch, width) placeholders and a weight, with a scalar loss and its gradients."""
    width = draw(st.integers(2, 5))
    batch = draw(st.integers(1, 4))
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 16)))
    g = gn.Graph()
    with g:
        a = gn.placeholder((None, width), "float64", name="a")
        b = gn.placeholder((None, width), "float64", name="b")
        w = gn.variable(rng.normal(size=(width, width)), name="w")
        pool = [a, b, a @ w]
        for _ in range(draw(st.integers(1, 12))):
            if draw(st.booleans()):
                pool.append(draw(st.sampled_from(UNARY))(draw(st.sampled_from(pool))))
            else:
                pool.append(draw(st.sampled_from(BINARY))(draw(st.sampled_from(pool)), draw(st.sampled_from(pool))))
        loss = gn.mean(pool[-1] * 0.1 + pool[-2]) + gn.mean(pool[2])
        grads = gn.gradients(loss, [w, a])
    feeds = {a: rng.normal(size=(batch, width)), b: rng.normal(size=(batch, width))}
    fetches = [loss, *grads] + draw(st.lists(st.sampled_from(pool[2:]), max_size=2))
    return fetches, feeds


def address_range(array):
    start = array.__array_interface__["data"][0]
    return start, start + array.nbytes


def overlaps(r1, r2):
    return r1[0] < r2[1] and r2[0] < r1[1]


@given(random_graphs())
def test_every_step_runs_after_its_inputs(case):
    fetches, feeds = case
    prog = gn.compile(fetches, device="reference")
    prog.run(feeds)
    position = {node: i for i, step in enumerate(prog.plan().steps) for node in step.nodes}
    for i, step in enumerate(prog.plan().steps):
        for inp in step.inputs:
            assert position.get(inp, -1) < i, f"step {i} ({step.node.name}) reads '{inp.name}' before it is computed"


@given(random_graphs())
def test_no_buffer_is_read_after_it_was_overwritten(case):
    fetches, feeds = case
    prog = gn.compile(fetches, device="reference")
    prog.run(feeds)
    plan = prog.plan()
    writes = []
    for i, step in enumerate(plan.steps):
        if step.kernel is not None:
            writes.append((i, step.node, address_range(plan.values[step.node])))
    producer = {node: i for i, node, _ in writes}
    readers = [(i, inp) for i, step in enumerate(plan.steps) for inp in step.inputs]
    readers += [(len(plan.steps), f) for f in prog.fetches]          # fetches are read after the last step
    for reader_index, value in readers:
        if value.op.name in ("variable", "constant"):
            continue
        source = value
        while source not in producer and source.op.name not in ("placeholder",):
            source = source.inputs[source.op.view_of_input]          # a view reads its source's bytes
        born = producer.get(source, -1)
        region = address_range(plan.values[value])
        for write_index, node, written in writes:
            if born < write_index <= reader_index and node is not source and node is not value \
                    and overlaps(region, written):
                if write_index == reader_index and node is plan.steps[reader_index].node:
                    pytest.fail(f"step {write_index} writes '{node.name}' over its own input '{value.name}'")
                pytest.fail(f"'{value.name}' (written at step {born}) is overwritten by '{node.name}' at step "
                            f"{write_index} before step {reader_index} reads it")


@given(random_graphs())
def test_memory_reuse_changes_no_result(case):
    fetches, feeds = case
    planned = gn.compile(fetches, device="reference").run(feeds)
    naive = gn.compile(fetches, device="reference", reuse_memory=False).run(feeds)
    for p, n in zip(planned, naive):
        np.testing.assert_array_equal(p, n)


def test_reuse_makes_the_peak_smaller_than_the_naive_total():
    rng = np.random.default_rng(0)
    with gn.Graph():
        x = gn.placeholder((None, 32), name="x")
        h = x
        weights = []
        for k in range(6):
            w = gn.variable(rng.normal(size=(32, 32)).astype("float32") * 0.2, name=f"w{k}")
            weights.append(w)
            h = gn.tanh(h @ w)
        loss = gn.mean(h * h)
        grads = gn.gradients(loss, weights)
    prog = gn.compile([loss, *grads])
    prog.run({x: rng.normal(size=(64, 32))})
    plan = prog.plan()
    assert plan.arena_nbytes < plan.naive_nbytes
    assert plan.arena_nbytes >= max(b.nbytes for b in plan.buffers)


def test_describe_can_leave_out_phases_and_says_how_many_steps_it_left_out():
    with gn.Graph() as graph:
        x = gn.placeholder((None, 4), name="x")
        with gn.name_scope("layer"):
            w = gn.variable(np.ones((4, 3), "float32"), name="w")
            h = gn.relu(x @ w)
        loss = gn.sum(h)
        (dw,) = gn.gradients(loss, [w])
        with graph.phase("update"):
            step = gn.assign(w, w - 0.1 * dw)
    program = gn.compile([loss, step])
    full = program.describe(batch_size=2)
    short = program.describe(batch_size=2, phases=("forward", "backward"))
    def update_rows(text):
        return [line for line in text.splitlines() if line[5:13] == "update  "]
    assert update_rows(full) and not update_rows(short)
    assert f"(not shown: {len(update_rows(full))} update steps)" in short
    assert short.splitlines()[-3:] == full.splitlines()[-3:]                # the same totals and memory plan


def test_a_fused_step_is_named_once_per_scope():
    from graphnet.formatting import step_name

    class Node:
        def __init__(self, name):
            self.name = name
    assert step_name([Node("train/conv1/conv2d"), Node("train/conv1/relu")]) == "train/conv1/conv2d+relu"
    assert step_name([Node("a/matmul"), Node("b/add")]) == "a/matmul+b/add"
    long = step_name([Node("model/" + "x" * 40), Node("model/relu")])
    assert len(long) == 34 and long.startswith("…") and long.endswith("+relu")


def test_a_sum_to_that_repeats_nothing_at_run_time_is_a_free_view():
    """y * c with y (None, 3) and c (4, 3): the build must keep a sum_to in y's gradient (the batch could be 1 and
    broadcast), but with a batch of 4 it sums nothing and the schedule shares the buffer instead of copying."""
    c = np.arange(12, dtype=np.float32).reshape(4, 3)
    with gn.Graph():
        x = gn.placeholder((None, 3), name="x")
        y = gn.relu(x)
        (dx,) = gn.gradients(gn.sum(y * gn.constant(c)), [x])
        prog = gn.compile(dx, device="cpu")
    xv = np.ones((4, 3), np.float32)
    np.testing.assert_array_equal(prog.run({x: xv}), c)
    sum_to = [s for s in prog.plan().steps if s.node.op.name == "sum_to"]
    assert len(sum_to) == 1 and sum_to[0].kernel is None and sum_to[0].label == "view (no copy)"
    np.testing.assert_array_equal(prog.run({x: np.ones((1, 3), np.float32)}), c.sum(axis=0, keepdims=True))
    assert [s.kernel is None for s in prog.plan().steps if s.node.op.name == "sum_to"] == [False]


@pytest.mark.parametrize("device", ["reference", "cpu"])
def test_a_node_whose_shape_alone_is_read_is_not_computed(device):
    """The gradient of Σ avg_pool(x)·c reads the pooled output's shape (its broadcast), never its value: a program
    that fetches only the gradient runs no forward step; fetching the loss too brings the forward back."""
    rng = np.random.default_rng(0)
    xv, cv = rng.standard_normal((2, 3, 4, 4)), rng.standard_normal((2, 3, 2, 2))
    with gn.Graph():
        x = gn.placeholder((None, 3, 4, 4), dtype="float64", name="x")
        loss = gn.sum(gn.avg_pool2d(x, 2) * gn.constant(cv))
        (dx,) = gn.gradients(loss, [x])
        gradient_only = gn.compile(dx, device=device)
        with_loss = gn.compile([loss, dx], device=device)
    steps = gradient_only.plan(batch_size=2).steps
    assert {s.node.phase for s in steps} == {"backward"}, [s.op_name for s in steps]
    assert "avg_pool2d" in [s.op_name for s in with_loss.plan(batch_size=2).steps]
    expected = np.repeat(np.repeat(cv, 2, axis=2), 2, axis=3) / 4          # ∂/∂x of Σ mean-of-window · c
    np.testing.assert_allclose(gradient_only.run({x: xv}), expected, rtol=1e-12)
    loss_value, dx_value = with_loss.run({x: xv})
    np.testing.assert_allclose(dx_value, expected, rtol=1e-12)
    np.testing.assert_allclose(loss_value, np.sum(xv.reshape(2, 3, 2, 2, 2, 2).mean(axis=(3, 5)) * cv), rtol=1e-12)
