"""check_numerics: a run stops at the first step that writes NaN or Inf, naming the op, the line that created it,
its inputs' ranges and the step number; a failed run changes nothing; off, the program runs its plain loop."""
import os
import re

os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")   # the cuda cases run in the simulator (see conftest.py)

import numpy as np  # noqa: E402
import pytest  # noqa: E402

import graphnet as gn  # noqa: E402
from graphnet import optim  # noqa: E402
from graphnet import program as program_module  # noqa: E402

DEVICES = ["cpu", "reference", "cuda"]
HERE = os.path.basename(__file__)

pytestmark = pytest.mark.filterwarnings("ignore:(divide by zero|invalid value|overflow) encountered")


def line_of(text):
    """'test_numerics_check.py:N' of the line of this file that contains `text`."""
    with open(__file__) as source:
        number = next(i for i, line in enumerate(source, 1) if text in line and "line_of" not in line)
    return f"{HERE}:{number}"


def step_number(program, name):
    """The number print(prog) shows for the step that writes the node called `name`."""
    row = next(line for line in str(program).splitlines() if re.match(rf"\s*\d+\s+\w+\s+.*\s{re.escape(name)}\s", line))
    return int(row.split()[0])


@pytest.mark.parametrize("device", DEVICES)
def test_log_of_zero_stops_at_the_log_step(device):
    with gn.Graph():
        x = gn.placeholder((2, 3), name="x")
        y = gn.log(x - x, name="log_of_zero")            # -inf everywhere
        z = y * 2.0
    program = gn.compile(z, device=device, check_numerics=True)
    with pytest.raises(gn.NumericsError) as caught:
        program.run({x: np.ones((2, 3), "float32")})
    message = str(caught.value)
    first = message.splitlines()[0]
    site = line_of('name="log_of_zero"')
    assert first.startswith(f"log 'log_of_zero' ({site}) wrote -inf (6 of 6 values)")
    assert f"step {step_number(program, 'log_of_zero')} of the schedule (forward, {device}.log)" in first
    assert re.search(r"sub 'sub' \(.*\) \(2, 3\) float32: min 0, max 0$", message, re.M)
    assert "log(0) = -inf" in message and "returned nothing" in message
    assert isinstance(caught.value, gn.GraphnetError) and isinstance(caught.value, FloatingPointError)


@pytest.mark.parametrize("device", DEVICES)
def test_sqrt_of_minus_one_is_a_nan_named_with_its_fed_input(device):
    with gn.Graph():
        x = gn.placeholder((3,), name="x")
        root = gn.sqrt(x, name="root")
    program = gn.compile(root, device=device)
    assert np.isnan(program.run({x: [-1.0, 1.0, 4.0]})[0])          # off by default: NaN comes back
    with pytest.raises(gn.NumericsError, match=r"sqrt 'root' \(.*\) wrote NaN \(1 of 3 values\)") as caught:
        program.run({x: [-1.0, 1.0, 4.0]}, check_numerics=True)
    assert "placeholder (fed) 'x'" in str(caught.value) and "min -1, max 4" in str(caught.value)
    assert "square root of a negative number" in str(caught.value)


def test_a_nan_fed_is_traced_to_the_feed_through_a_fused_step():
    with gn.Graph():
        x = gn.placeholder((2, 3), name="x")
        w = gn.variable(np.ones((3, 2), "float32"), name="w")
        b = gn.variable(np.ones(2, "float32"), name="b")
        h = gn.relu(x @ w + b)                                         # cpu: one dense_relu step
    program = gn.compile(h, check_numerics=True)
    with pytest.raises(gn.NumericsError) as caught:
        program.run({x: [[np.nan, 1, 1], [1, 1, 1]]})
    message = str(caught.value)
    assert message.startswith(f"the fused step matmul+add+relu ('matmul', 'add', 'relu') ({line_of('gn.relu(x @ w')})")
    assert "cpu.dense_relu" in message and "holds NaN (1 of 6 values)" in message
    assert "came in with the feed of 'x'" in message


@pytest.mark.parametrize("device", ["cpu", "reference"])
def test_an_exploding_learning_rate_is_caught_and_the_failed_step_changes_nothing(device):
    rng = np.random.default_rng(0)
    with gn.Graph():
        x = gn.placeholder((None, 4), name="x")
        y = gn.placeholder((None, 1), name="y")
        w = gn.variable(rng.normal(size=(4, 1)).astype("float32"), name="w")
        opt = optim.SGD(0.01)
        train_op = opt.minimize(gn.mse(x @ w, y))
    program = gn.compile([train_op], device=device, check_numerics=True)
    feeds = {x: rng.normal(size=(8, 4)).astype("float32"), y: rng.normal(size=(8, 1)).astype("float32")}
    with pytest.raises(gn.NumericsError) as caught:
        for step in range(100):
            opt.set_learning_rate(0.01 * 2.0 ** step)                # doubles every step: training diverges
            before = (w.numpy(), opt.steps_done(), program.rng.counter)
            program.run(feeds)
    message = str(caught.value)
    assert 5 < step < 100 and "diverged" in message and "learning rate too large" in message
    assert "the variables it assigns ('w', 'sgd/step') hold their values from before the run" in message
    np.testing.assert_array_equal(w.numpy(), before[0])             # rolled back: the weights before the run
    assert np.isfinite(w.numpy()).all()
    assert (opt.steps_done(), program.rng.counter) == before[1:]


@pytest.mark.parametrize("device", DEVICES)
def test_an_assignment_before_the_failing_step_is_undone(device):
    with gn.Graph():
        x = gn.placeholder((2, 2), name="x")
        w = gn.variable(np.ones((2, 2), "float32"), name="w")
        new_w = gn.assign(w, w + x)                                  # runs first: w becomes 2
        bad = gn.log(new_w - new_w)
    program = gn.compile(bad, device=device, check_numerics=True)
    with pytest.raises(gn.NumericsError, match="log 'log'"):
        program.run({x: np.ones((2, 2), "float32")})
    np.testing.assert_array_equal(w.numpy(), np.ones((2, 2)))        # the assignment was put back
    program.run({x: np.ones((2, 2), "float32")}, check_numerics=False)
    np.testing.assert_array_equal(w.numpy(), np.full((2, 2), 2.0))   # unchecked, the run goes through


def test_a_nan_already_in_a_variable_is_named_as_coming_from_it():
    with gn.Graph():
        x = gn.placeholder((2,), name="x")
        w = gn.variable(np.array([np.nan, 1.0], "float32"), name="w")
        out = x * w
    with pytest.raises(gn.NumericsError, match="already in variable 'w' before this run"):
        gn.compile(out, check_numerics=True).run({x: [1.0, 2.0]})


def test_off_the_plain_loop_runs_and_the_checked_loop_is_not_called(monkeypatch):
    def checked(*args):
        raise AssertionError("the checked loop ran")
    monkeypatch.setattr(program_module, "run_checked", checked)
    with gn.Graph():
        x = gn.placeholder((2,), name="x")
        out = gn.log(x)
    program = gn.compile(out)
    assert program.check_numerics is False
    np.testing.assert_array_equal(program.run({x: [0.0, 1.0]}), [-np.inf, 0.0])
    with pytest.raises(AssertionError, match="checked loop ran"):
        program.run({x: [0.0, 1.0]}, check_numerics=True)


def test_finite_runs_return_the_same_values_checked_or_not():
    rng = np.random.default_rng(1)
    with gn.Graph():
        x = gn.placeholder((None, 1, 8, 8), name="x")
        w = gn.variable(rng.normal(size=(3, 1, 3, 3)).astype("float32"), name="w")
        out = gn.max_pool2d(gn.relu(gn.conv2d(x, w, padding=1)), 2)
    feed = {x: rng.normal(size=(2, 1, 8, 8)).astype("float32")}
    np.testing.assert_array_equal(gn.compile(out, check_numerics=True).run(feed), gn.compile(out).run(feed))


def test_a_trainer_checks_numerics_and_names_the_first_bad_op():
    from graphnet import nn, train
    rng = np.random.default_rng(2)
    x = rng.normal(size=(64, 4)).astype("float32")
    y = (x @ rng.normal(size=(4, 1))).astype("float32")
    model = nn.Sequential([nn.Dense(8, activation="relu"), nn.Dense(1)])
    exploding = optim.SGD(lambda step: 0.05 * 2.0 ** step)                  # the rate doubles every step
    trainer = train.Trainer(model, exploding, loss="mse", check_numerics=True)
    with pytest.raises(gn.NumericsError, match="diverged") as caught:
        trainer.fit(x, y, epochs=50, batch_size=16, progress=False)
    assert f"({line_of('trainer.fit(x, y, epochs=50')}) wrote" in str(caught.value)   # the model was built by fit
    assert all(np.isfinite(w).all() for w in model.get_weights().values())
