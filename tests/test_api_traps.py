"""Calls a PyTorch or Keras user writes out of habit, which graphnet used to accept and then answer wrongly: each
is now either done right or refused with the fix, and what graphnet says goes through logging and warnings."""
import ast
import logging
import os
import pathlib
import subprocess
import sys
import warnings

import numpy as np
import pytest

import graphnet as gn
from graphnet import nn, optim, train
from graphnet.data import DataLoader, RandomFlip, RandomShift
from graphnet.messages import GraphnetWarning

ROOT = pathlib.Path(__file__).resolve().parent.parent


class BatchSizes(train.Callback):
    def __init__(self):
        self.sizes, self.losses = [], []

    def on_batch_end(self, batch, logs):
        self.sizes.append(logs["batch_size"])
        self.losses.append(logs["loss"])


def classes(n, features=4, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, size=n)
    x = rng.normal(size=(n, features)) + y[:, None]
    return x.astype("float32"), y


def bn_model(seed=0):
    return nn.Sequential([nn.Dense(8, activation="relu"), nn.BatchNorm1D(), nn.Dense(3)], seed=seed)


# ---------------------------------------------------------------------------------------------------------------
# 1. Batch norm on one value per channel


def test_fit_folds_a_last_batch_of_one_sample_so_batch_norm_never_sees_it():
    x, y = classes(33)                                   # 33 = 4·8 + 1
    model, sizes = bn_model(), BatchSizes()
    trainer = train.Trainer(model, optim.Adam(0.01))
    trainer.fit(x, y, epochs=2, batch_size=8, progress=False, callbacks=[sizes])
    assert sizes.sizes == [8, 8, 8, 9] * 2               # the single sample joined the batch before it
    assert np.all(np.isfinite(model.variables()["batchnorm1/running_var"].numpy()))
    assert np.all(np.isfinite(trainer.predict(x)))
    dropped = BatchSizes()
    train.Trainer(bn_model(), optim.Adam(0.01)).fit(x, y, batch_size=8, drop_last=True, progress=False,
                                                    callbacks=[dropped])
    assert dropped.sizes == [8, 8, 8, 8]


def test_batch_norm_refuses_one_value_per_channel_in_training_before_anything_changes():
    x, y = classes(6)
    model = bn_model()
    trainer = train.Trainer(model, optim.SGD(0.1))
    trainer.fit(x, y, epochs=1, batch_size=2, progress=False)
    before = model.get_weights()
    with pytest.raises(gn.GraphError, match=r"fit\(batch_size=1\): BatchNorm1D 'batchnorm1' expected more than 1 "
                                            r"value per channel when training, got input \(1, 8\)"):
        trainer.fit(x, y, epochs=2, batch_size=1, progress=False)
    assert trainer.epoch == 1 and all(np.array_equal(model.get_weights()[n], v) for n, v in before.items())
    with pytest.raises(gn.GraphError, match=r"expected more than 1 value per channel.* \(1, 8\)"):
        train.Trainer(bn_model(), optim.SGD(0.1)).fit(x[:1], y[:1], progress=False)
    conv = nn.Sequential([nn.Conv2D(2, 1), nn.BatchNorm2D(), nn.Flatten(), nn.Dense(3)])
    images = np.random.default_rng(1).normal(size=(3, 1, 2, 2)).astype("float32")
    train.Trainer(conv, optim.SGD(0.1)).fit(images, y[:3], batch_size=1, progress=False)   # 1·2·2 values: fine
    with gn.Graph():
        single = gn.placeholder((1, 4), name="single")
        stats = gn.variable(np.zeros(4), trainable=False), gn.variable(np.ones(4), trainable=False)
        with pytest.raises(gn.GraphError, match=r"batch_norm .*expected more than 1 value per channel"):
            gn.batch_norm(single, gn.constant(np.ones(4)), gn.constant(np.zeros(4)), *stats, training=True)


def test_the_loader_folds_only_a_single_last_sample_and_says_how_small_its_batches_get():
    for n, sizes in [(33, [8, 8, 8, 9]), (34, [8, 8, 8, 8, 2]), (32, [8, 8, 8, 8]), (1, [1]), (9, [9])]:
        loader = DataLoader(np.arange(n), batch_size=8, fold_single=True)
        batches = list(loader)
        assert [len(b) for b in batches] == sizes and len(loader) == len(sizes)
        assert sorted(np.concatenate(batches)) == list(range(n)) and loader.smallest_batch == min(sizes)
    assert [len(b) for b in DataLoader(np.arange(33), batch_size=8)] == [8, 8, 8, 8, 1]      # the default keeps it


# ---------------------------------------------------------------------------------------------------------------
# 2. float64 data, a sample shape other than build()'s, channels-last


def cnn():
    return nn.Sequential([nn.Conv2D(4, 3, padding=1, activation="relu"), nn.MaxPool2D(2), nn.Flatten(),
                          nn.Dense(3)], seed=0)


def test_float64_data_is_cast_to_the_models_float32_with_one_warning():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(40, 1, 8, 8)), rng.integers(0, 3, size=40)      # NumPy's default: float64
    model = cnn()
    model.build((1, 8, 8))
    trainer = train.Trainer(model, optim.Adam(0.01))
    with pytest.warns(UserWarning, match=r"fit: x is float64 but the model computes in float32: x is cast to "
                                         r"float32 .*model\.build\(\(1, 8, 8\), dtype='float64'\)") as caught:
        trainer.fit(x, y, epochs=2, batch_size=8, progress=False)
        trainer.fit(x, y, epochs=3, batch_size=8, progress=False)
        trainer.evaluate(x, y)
    assert len([w for w in caught if "is cast" in str(w.message)]) == 1
    assert caught[0].filename == __file__                    # attributed to the user's line, not graphnet's
    assert issubclass(caught[0].category, GraphnetWarning)   # so that it can be filtered as one
    assert all(np.isfinite(trainer.history["loss"]))
    assert trainer.predict(x[:5]).dtype == np.float32

    unbuilt = train.Trainer(cnn(), optim.Adam(0.01))
    with pytest.warns(UserWarning, match="x is float64"):
        unbuilt.fit(x, y, epochs=1, batch_size=8, progress=False)
    assert unbuilt.x.dtype == np.float32 and all(v.dtype == np.float32 for v in unbuilt.model.variables().values())
    wide = cnn()
    wide.build((1, 8, 8), dtype="float64")                   # asked for: float64 throughout, nothing to say
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        train.Trainer(wide, optim.Adam(0.01)).fit(x, y, epochs=1, batch_size=8, progress=False)
        train.Trainer(wide, optim.Adam(0.01)).evaluate(x.astype("float32"), y)     # up-casting loses nothing


def test_data_of_another_sample_shape_than_build_names_that_cause():
    x, y = np.zeros((20, 1, 12, 12), "float32"), np.arange(20) % 3
    model = cnn()
    model.build((1, 8, 8))
    with pytest.raises(gn.FeedError, match=r"fit: x holds samples of shape \(1, 12, 12\) \(x is \(20, 1, 12, 12\)\), "
                                           r"but the model was built for samples of shape \(1, 8, 8\)"):
        train.Trainer(model).fit(x, y, progress=False)
    with pytest.raises(gn.FeedError, match=r"x looks channels-last \(N, H, W, C\), but graphnet is NCHW: pass "
                                           r"x\.transpose\(0, 3, 1, 2\)"):
        train.Trainer(model).fit(np.zeros((20, 8, 8, 1), "float32"), y, progress=False)
    trainer = train.Trainer(cnn())
    trainer.fit(np.zeros((20, 1, 8, 8), "float32"), y, progress=False)
    with pytest.raises(gn.FeedError, match=r"evaluate: x holds samples of shape \(1, 12, 12\).* the trainer was "
                                           r"built for samples of shape \(1, 8, 8\)"):
        trainer.evaluate(x, y)
    with pytest.raises(gn.FeedError, match=r"predict: x holds samples of shape \(1, 12, 12\)"):
        trainer.predict(x)


def test_a_channels_last_build_hints_at_nchw():
    with pytest.raises(gn.ShapeError, match=r"(?s)max_pool2d.*The sample shape \(8, 8, 1\) looks channels-last "
                                            r"\(H, W, C\).*graphnet is NCHW.*build the model for \(1, 8, 8\)"):
        cnn().build((8, 8, 1))
    with pytest.raises(gn.ShapeError, match=r"looks channels-last"):
        train.Trainer(cnn()).fit(np.zeros((20, 8, 8, 1), "float32"), np.arange(20) % 3, progress=False)
    builds = nn.Sequential([nn.Conv2D(4, 3), nn.Flatten(), nn.Dense(3)])
    with pytest.warns(UserWarning, match=r"\(28, 28, 3\) looks channels-last .* build the model for \(3, 28, 28\)"):
        builds.build((28, 28, 3))                            # 28 channels of 28x3 images: it builds, wrongly
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cnn().build((3, 28, 28))
        nn.Sequential([nn.Flatten(), nn.Dense(3)]).build((8, 8, 1))          # no image layers: nothing to say


# ---------------------------------------------------------------------------------------------------------------
# 3. One augmentation instead of a list


def test_fit_accepts_one_augmentation_as_well_as_a_list():
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(24, 1, 6, 6)).astype("float32"), rng.integers(0, 3, size=24)
    runs = []
    for augment in (RandomShift(1), [RandomShift(1)]):
        losses = BatchSizes()
        train.Trainer(cnn(), optim.SGD(0.1)).fit(x, y, epochs=2, batch_size=8, augment=augment, progress=False,
                                                 callbacks=[losses])
        runs.append(losses.losses)
    plain = BatchSizes()
    train.Trainer(cnn(), optim.SGD(0.1)).fit(x, y, epochs=2, batch_size=8, progress=False, callbacks=[plain])
    assert runs[0] == runs[1] and runs[0] != plain.losses
    assert len(DataLoader(x, augment=(RandomFlip(), RandomShift(1))).augment) == 2
    with pytest.raises(gn.GraphError, match=r"augment: expected an augmentation .* or a list of them, got 'flip'"):
        DataLoader(x, augment="flip")
    with pytest.raises(gn.GraphError, match=r"got 3"):
        train.Trainer(cnn()).fit(x, y, augment=[RandomFlip(), 3], progress=False)


# ---------------------------------------------------------------------------------------------------------------
# 5. Argument orders and conventions of other frameworks


def bn_graph():
    g = gn.Graph()
    with g:
        x = gn.placeholder((None, 3), "float64", name="x")
        gamma = gn.variable(np.full(3, 2.0), name="gamma")
        beta = gn.variable(np.full(3, 0.5), name="beta")
        mean = gn.variable(np.zeros(3), name="running_mean", trainable=False)
        var = gn.variable(np.ones(3), name="running_var", trainable=False)
    return g, x, gamma, beta, mean, var


def test_batch_norm_in_pytorchs_argument_order_is_refused_in_both_modes():
    g, x, gamma, beta, mean, var = bn_graph()
    with g:
        for training in (True, False):
            with pytest.raises(gn.GraphError, match=r"running_mean is 'gamma', a trainable variable, and gamma is "
                                                    r"'running_mean', a non-trainable one: this looks like PyTorch's "
                                                    r"order"):
                gn.batch_norm(x, mean, var, gamma, beta, training=training)
        with pytest.raises(gn.GraphError, match=r"running_mean must be a non-trainable variable, but 'beta' is "
                                                r"trainable"):
            gn.batch_norm(x, gn.constant(np.ones(3)), gamma, beta, var, training=True)
        with pytest.raises(gn.GraphError, match=r"running_var must be a non-trainable variable, e\.g\."):
            gn.batch_norm(x, gamma, beta, mean, gn.constant(np.ones(3)), training=True)
        y = gn.batch_norm(x, gamma, beta, running_mean=mean, running_var=var, training=True)
    gn.compile(y).run({x: np.arange(12.0).reshape(4, 3)})
    assert np.array_equal(gamma.numpy(), np.full(3, 2.0))            # γ is γ: never overwritten by statistics
    assert not np.array_equal(mean.numpy(), np.zeros(3))


def test_batch_norm_in_inference_takes_any_tensors_as_its_statistics():
    g, x, gamma, beta, _, _ = bn_graph()
    batch = np.random.default_rng(3).normal(size=(5, 3))
    mean, var = np.array([0.5, -1.0, 2.0]), np.array([1.0, 4.0, 0.25])
    expected = 2.0 * (batch - mean) / np.sqrt(var + 1e-5) + 0.5
    with g:
        from_constants = gn.batch_norm(x, gamma, beta, gn.constant(mean), gn.constant(var), training=False)
        from_arrays = gn.batch_norm(x, gamma, beta, mean, var, training=False)
        m = gn.placeholder((3,), "float64", name="m")
        v = gn.placeholder((3,), "float64", name="v")
        from_feeds = gn.batch_norm(x, gamma, beta, m, v, training=False)
    np.testing.assert_allclose(gn.compile(from_constants).run({x: batch}), expected, rtol=1e-12)
    np.testing.assert_allclose(gn.compile(from_arrays).run({x: batch}), expected, rtol=1e-12)
    np.testing.assert_allclose(gn.compile(from_feeds).run({x: batch, m: mean, v: var}), expected, rtol=1e-12)


def test_exponential_decay_in_keras_order_is_refused_with_the_translation():
    with pytest.raises(gn.GraphError, match=r"decay_rate must be in \(0, 1\].*got decay_rate=1000, "
                                            r"decay_steps=0\.96; if you meant Keras's order .* "
                                            r"ExponentialDecay\(0\.1, decay_rate=0\.96, decay_steps=1000\)"):
        optim.ExponentialDecay(0.1, 1000, 0.96)
    with pytest.raises(gn.GraphError, match="decay_steps must be > 0"):
        optim.ExponentialDecay(0.1, 0.5, 0)
    schedule = optim.ExponentialDecay(0.1, decay_rate=0.96, decay_steps=1000)
    assert schedule(0) == pytest.approx(0.1) and schedule(2000) == pytest.approx(0.1 * 0.96 ** 2)
    assert optim.ExponentialDecay(0.1, 0.5)(3) == pytest.approx(0.0125)


class Saves:
    """A stand-in trainer that records which epochs ModelCheckpoint saves."""

    def __init__(self):
        self.saved = []

    def save(self, path):
        self.saved.append(path)


def test_model_checkpoint_keeps_the_best_epoch_of_an_accuracy_as_of_a_loss():
    for monitor, values, best in [("val_accuracy", [0.5, 0.8, 0.6, 0.7], ["1", "2"]),
                                  ("val_loss", [0.9, 0.4, 0.6, 0.3], ["1", "2", "4"])]:
        callback, trainer = train.ModelCheckpoint("{epoch}", monitor=monitor), Saves()
        callback.set_trainer(trainer)
        for epoch, value in enumerate(values, start=1):
            callback.on_epoch_end(epoch, {"epoch": epoch, monitor: value})
        assert trainer.saved == best, monitor
    assert train.ModelCheckpoint("p", monitor="acc", mode="min").mode == "min"
    with pytest.raises(gn.GraphError, match="mode must be 'min', 'max' or 'auto'"):
        train.ModelCheckpoint("p", monitor="loss", mode="best")
    with pytest.raises(gn.GraphError, match=r"'val_accuracy' is not among this epoch's logs \(epoch, loss\)"):
        callback = train.ModelCheckpoint("p", monitor="val_accuracy")
        callback.set_trainer(Saves())
        callback.on_epoch_end(1, {"epoch": 1, "loss": 0.5})


@pytest.mark.parametrize("loss, activation", [("cross_entropy", "softmax"), ("bce", "sigmoid")])
def test_a_squashing_last_layer_before_a_loss_that_takes_logits_is_refused(loss, activation):
    x, y = classes(16)
    units = 3 if loss == "cross_entropy" else 1
    targets = y if loss == "cross_entropy" else (y[:, None] > 0).astype("float32")
    model = nn.Sequential([nn.Dense(8, activation="relu"), nn.Dense(units, activation=activation)])
    with pytest.raises(gn.GraphError, match=rf"the model's output 'dense2/{activation}' \(test_api_traps\.py:\d+\) "
                                            rf"is a {activation}, and the '{loss}' loss takes logits .* applied "
                                            rf"twice.* Remove activation='{activation}' from the last layer"):
        train.Trainer(model, loss=loss).fit(x, targets, progress=False)
    logits = nn.Sequential([nn.Dense(8, activation="relu"), nn.Dense(units)])
    train.Trainer(logits, loss=loss).fit(x, targets, progress=False)
    probabilities = nn.Sequential([nn.Dense(8, activation="relu"), nn.Dense(3, activation="softmax")])
    train.Trainer(probabilities, loss="mse").fit(x, np.eye(3, dtype="float32")[y], progress=False)   # no logits


def test_a_keras_batch_norm_momentum_is_warned_about_with_the_conversion():
    with pytest.warns(UserWarning, match=r"momentum=0\.99 gives each new batch a weight of 0\.99 .* Keras's "
                                         r"momentum .* write momentum=0\.01") as caught:
        nn.BatchNorm(momentum=0.99)
    assert caught[0].filename == __file__
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        nn.BatchNorm2D(momentum=0.1)
        nn.BatchNorm1D()
    with pytest.raises(gn.GraphError, match=r"momentum must be in \[0, 1\]"):
        nn.BatchNorm(momentum=1.5)


# ---------------------------------------------------------------------------------------------------------------
# What graphnet says: logging and warnings, not print


def test_early_stopping_logs_when_it_stops_and_which_epoch_it_restored(caplog):
    x, y = classes(40)
    stopper = train.EarlyStopping(monitor="val_loss", patience=1, min_delta=10.0)      # nothing improves by 10
    with caplog.at_level(logging.INFO, logger="graphnet"):
        train.Trainer(nn.Sequential([nn.Dense(3)]), optim.SGD(0.1)).fit(
            x, y, epochs=5, validation_split=0.25, progress=False, callbacks=[stopper])
    messages = [r.getMessage() for r in caplog.records if r.name == "graphnet"]
    assert stopper.stopped_epoch == 2 and stopper.restored
    assert any(m.startswith("EarlyStopping: val_loss has not improved for 1 epoch (best ") and
               m.endswith("at epoch 1); stopping after epoch 2") for m in messages), messages
    assert any(m.startswith("EarlyStopping: restored the weights of epoch 1, the best (val_loss ") and
               m.endswith("training ended after epoch 2") for m in messages), messages


LOGGING_SCRIPT = """
import logging, sys
from graphnet.messages import logger
if sys.argv[1] == "configured":
    logging.basicConfig(format="root: %(name)s %(message)s", stream=sys.stderr)
elif sys.argv[1] == "quiet":
    logging.getLogger("graphnet").setLevel(logging.WARNING)
logger.info("hello")
"""


@pytest.mark.parametrize("setup, shown", [("plain", "graphnet: hello\n"), ("configured", "root: graphnet hello\n"),
                                          ("quiet", "")])
def test_graphnets_messages_reach_stderr_once_and_can_be_silenced(setup, shown):
    result = subprocess.run([sys.executable, "-c", LOGGING_SCRIPT, setup], capture_output=True, text=True,
                            env=dict(os.environ, PYTHONPATH=str(ROOT)), timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stderr == shown and result.stdout == ""


def test_the_progress_bar_is_tqdm_auto(monkeypatch):
    import tqdm.auto
    made = []

    class Recorded(tqdm.auto.tqdm):
        def __init__(self, *args, **kwargs):
            made.append(kwargs["desc"])
            super().__init__(*args, **kwargs, disable=True)

    monkeypatch.setattr(tqdm.auto, "tqdm", Recorded)
    x, y = classes(16)
    train.Trainer(nn.Sequential([nn.Dense(3)])).fit(x, y, epochs=2, batch_size=8)
    assert made == ["epoch 1/2", "epoch 2/2"]


LIBRARY_MODULES = ["train.py", "optim.py", "checkpoint.py", "messages.py", *(f"nn/{n}" for n in os.listdir(
    ROOT / "graphnet" / "nn") if n.endswith(".py")), *(f"data/{n}" for n in os.listdir(ROOT / "graphnet" / "data")
                                                       if n.endswith(".py"))]


@pytest.mark.parametrize("module", LIBRARY_MODULES)
def test_the_training_library_never_prints_on_its_own(module):
    tree = ast.parse((ROOT / "graphnet" / module).read_text())
    prints = [node.lineno for node in ast.walk(tree)
              if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "print"]
    assert prints == [], f"graphnet/{module} calls print() at lines {prints}: use graphnet.messages"


def test_a_hand_built_batch_norm_refuses_one_sample_at_run_time_but_describes_fine():
    """With a None batch size the build cannot know; the first run with one sample can, and refuses before any
    variable changes. describe() (which guesses a batch of 1) still prints the schedule."""
    with gn.Graph():
        x = gn.placeholder((None, 3), name="x")
        gamma, beta = gn.variable(np.ones(3, np.float32), name="gamma"), gn.variable(np.zeros(3, np.float32), name="beta")
        mean = gn.variable(np.zeros(3, np.float32), name="mean", trainable=False)
        var = gn.variable(np.ones(3, np.float32), name="var", trainable=False)
        y = gn.batch_norm(x, gamma, beta, running_mean=mean, running_var=var, training=True)
        prog = gn.compile(gn.sum(y), device="cpu")
    assert "batch_norm" in prog.describe()
    with pytest.raises(gn.ShapeError, match=r"batch_norm .*expected more than 1 value per channel when training, "
                                            r"got input \(1, 3\)"):
        prog.run({x: np.ones((1, 3), np.float32)})
    assert np.array_equal(var.numpy(), np.ones(3, np.float32))
    prog.run({x: np.arange(6, dtype=np.float32).reshape(2, 3)})
    assert np.all(np.isfinite(var.numpy())) and not np.array_equal(var.numpy(), np.ones(3, np.float32))
