"""The fit loop: networks learn on generated data, a resumed run reproduces an uninterrupted one exactly, and the
data loader, augmentations and callbacks do what they say."""
import csv
import io
import os
import pathlib
import re
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import graphnet as gn
from graphnet import nn, optim, train
from graphnet.data import (DataLoader, GaussianNoise, RandomCrop, RandomFlip, RandomRotation, RandomShift,
                           shape_images)
from graphnet.data.augment import bilinear


def lenet5():
    return nn.Sequential([nn.Conv2D(6, 5, padding=2, activation="relu"), nn.MaxPool2D(2),
                          nn.Conv2D(16, 5, activation="relu"), nn.MaxPool2D(2), nn.Flatten(),
                          nn.Dense(120, activation="relu"), nn.Dense(84, activation="relu"), nn.Dense(7)])


class BatchLosses(train.Callback):
    def __init__(self):
        self.losses = []

    def on_batch_end(self, batch, logs):
        self.losses.append(logs["loss"])


# ---------------------------------------------------------------------------------------------------------------
# Networks learn


def test_a_small_mlp_learns_generated_clusters():
    rng = np.random.default_rng(0)
    centres = rng.normal(scale=2.0, size=(4, 6))
    y = rng.integers(0, 4, size=400)
    x = (centres[y] + rng.normal(size=(400, 6))).astype("float32")
    model = nn.Sequential([nn.Dense(32, activation="relu"), nn.Dense(4)])
    record = BatchLosses()
    history = train.fit(model, x, y, optimizer=optim.Adam(0.01), epochs=5, batch_size=32, progress=False,
                        validation_split=0.2, callbacks=[record])
    assert history["loss"][-1] < 0.3 * record.losses[0]
    assert history["val_accuracy"][-1] > 0.8
    assert history.trainer.evaluate(x, y)["accuracy"] > 0.8


def test_lenet5_learns_shape_images():
    x, y = shape_images(600, seed=5)
    trainer = train.Trainer(lenet5(), optim.Adam(2e-3))
    record = BatchLosses()
    history = trainer.fit(x, y, epochs=4, batch_size=16, progress=False, callbacks=[record])
    assert history["loss"][-1] < 0.6 * record.losses[0]
    assert trainer.predict(x[:10]).shape == (10, 7)


def test_regression_with_mse_learns_a_linear_map():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(200, 3)).astype("float32")
    y = (x @ np.array([[1.0], [-2.0], [0.5]]) + 0.3).astype("float32")
    trainer = train.Trainer(nn.Sequential([nn.Dense(1)]), optim.SGD(0.1, momentum=0.9), loss="mse")
    history = trainer.fit(x, y, epochs=6, batch_size=20, progress=False)
    assert "accuracy" not in history.history
    assert history["loss"][-1] < 0.01 * history["loss"][0]


# ---------------------------------------------------------------------------------------------------------------
# Resume = uninterrupted


def resumable_trainer():
    """Everything random or stateful at once: dropout, batch norm, augmentation, shuffling, a warm-up + cosine
    schedule, Adam's moments and step, clipping and an L2 penalty."""
    model = nn.Sequential([nn.Conv2D(4, 3, padding=1), nn.BatchNorm2D(), nn.ReLU(), nn.MaxPool2D(2), nn.Flatten(),
                           nn.Dense(16, activation="relu"), nn.Dropout(0.3), nn.Dense(7)], seed=0)
    schedule = optim.WarmUp(optim.CosineDecay(3e-3, total_steps=40), warmup_steps=5)
    return train.Trainer(model, optim.Adam(schedule, clip_norm=1.0), l2=1e-3, seed=7)


FIT = dict(batch_size=16, augment=[RandomFlip(), RandomShift(1), RandomRotation(10), GaussianNoise(0.1)],
           progress=False, validation_split=0.25)


def test_resuming_from_a_checkpoint_reproduces_the_uninterrupted_losses_exactly(tmp_path):
    x, y = shape_images(96, size=12, seed=3)
    uninterrupted, full = resumable_trainer(), BatchLosses()
    uninterrupted.fit(x, y, epochs=4, callbacks=[full], csv_log=tmp_path / "full.csv", **FIT)

    first, part1 = resumable_trainer(), BatchLosses()
    first.fit(x, y, epochs=2, callbacks=[part1], csv_log=tmp_path / "resumed.csv", **FIT)
    first.save(tmp_path / "run.npz")
    assert part1.losses == full.losses[:len(part1.losses)]

    resumed, part2 = resumable_trainer(), BatchLosses()
    resumed.model.set_weights({k: v + 1 for k, v in resumed.model.get_weights().items()})
    resumed.restore(tmp_path / "run.npz")
    resumed.fit(x, y, epochs=4, callbacks=[part2], csv_log=tmp_path / "resumed.csv", **FIT)

    assert part1.losses + part2.losses == full.losses
    for name, value in uninterrupted.model.get_weights().items():
        assert np.array_equal(resumed.model.get_weights()[name], value), name
    assert resumed.history.history["val_loss"] == uninterrupted.history.history["val_loss"]
    rows = list(csv.DictReader(open(tmp_path / "resumed.csv")))
    assert [row["epoch"] for row in rows] == ["1", "2", "3", "4"]
    assert [row["loss"] for row in rows] == [row["loss"] for row in csv.DictReader(open(tmp_path / "full.csv"))]


def test_resuming_without_the_dropout_counters_would_not_reproduce_the_run(tmp_path):
    x, y = shape_images(96, size=12, seed=3)
    uninterrupted, full = resumable_trainer(), BatchLosses()
    uninterrupted.fit(x, y, epochs=3, callbacks=[full], **FIT)
    first = resumable_trainer()
    first.fit(x, y, epochs=2, **FIT)
    first.save(tmp_path / "run.npz")
    resumed, part2 = resumable_trainer(), BatchLosses()
    resumed.restore(tmp_path / "run.npz")
    resumed.train_program.rng.counter = 0          # what a checkpoint without RNG state would give
    resumed.fit(x, y, epochs=3, callbacks=[part2], **FIT)
    assert part2.losses != full.losses[-len(part2.losses):]


# ---------------------------------------------------------------------------------------------------------------
# Callbacks, history, progress bar, schedules


def test_early_stopping_stops_after_patience_and_restores_the_best_weights():
    model = nn.Sequential([nn.Dense(2)])
    model.build((3,))
    trainer = train.Trainer(model)
    stopper = train.EarlyStopping(monitor="val_loss", patience=2)
    stopper.set_trainer(trainer)
    stopper.on_train_begin()
    weights_at = {}
    for epoch, val_loss in enumerate([1.0, 0.5, 0.7, 0.6], start=1):
        weights_at[epoch] = {k: np.full_like(v, epoch) for k, v in model.get_weights().items()}
        model.set_weights(weights_at[epoch])
        stopper.on_epoch_end(epoch, {"epoch": epoch, "val_loss": val_loss})
        if trainer.stop_training:
            break
    stopper.on_train_end()
    assert (stopper.best_epoch, stopper.stopped_epoch, epoch) == (2, 4, 4)
    assert stopper.restored and all(np.all(v == 2) for v in model.get_weights().values())
    with pytest.raises(gn.GraphError, match="'val_accuracy' is not among"):
        train.EarlyStopping("val_accuracy").on_epoch_end(1, {"loss": 1.0})


def test_callbacks_can_stop_training_and_the_history_and_csv_record_each_epoch(tmp_path):
    class StopAtTwo(train.Callback):
        def on_epoch_end(self, epoch, logs):
            if epoch == 2:
                self.trainer.stop_training = True

    x, y = shape_images(64, size=12, seed=1)
    model = nn.Sequential([nn.Flatten(), nn.Dense(7)])
    trainer = train.Trainer(model, optim.SGD(optim.StepDecay(0.1, step_size=4, gamma=0.5)))
    history = trainer.fit(x, y, epochs=5, batch_size=16, validation_data=(x[:16], y[:16]), progress=False,
                          csv_log=tmp_path / "log.csv", callbacks=[StopAtTwo()])
    assert history.epochs == [1, 2] and trainer.epoch == 2
    assert history["learning_rate"] == pytest.approx([0.1, 0.05])     # the rate of each epoch's last step
    rows = list(csv.DictReader(open(tmp_path / "log.csv")))
    assert [float(r["loss"]) for r in rows] == history["loss"]
    assert set(rows[0]) >= {"epoch", "loss", "accuracy", "val_loss", "val_accuracy", "learning_rate",
                            "samples_per_s"}


def test_the_progress_bar_shows_the_epoch_the_loss_and_samples_per_second():
    x, y = shape_images(32, size=12, seed=2)
    output = io.StringIO()
    trainer = train.Trainer(nn.Sequential([nn.Flatten(), nn.Dense(7)]))
    trainer.fit(x, y, epochs=2, batch_size=8, progress=False, callbacks=[train.ProgressBar(file=output)])
    text = output.getvalue()
    assert "epoch 1/2" in text and "epoch 2/2" in text
    assert "32/32" in text and "sample/s" in text and "loss=" in text and "samples/s=" in text


def test_model_checkpoint_saves_the_run_each_epoch_or_when_it_improves(tmp_path):
    x, y = shape_images(48, size=12, seed=4)
    trainer = train.Trainer(nn.Sequential([nn.Flatten(), nn.Dense(7)]), optim.SGD(0.05))
    every = train.ModelCheckpoint(tmp_path / "run-{epoch}.npz")
    best = train.ModelCheckpoint(tmp_path / "best.npz", monitor="loss")
    trainer.fit(x, y, epochs=3, batch_size=16, progress=False, callbacks=[every, best])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.npz", "run-1.npz", "run-2.npz", "run-3.npz"]
    again = train.Trainer(nn.Sequential([nn.Flatten(), nn.Dense(7)]), optim.SGD(0.05))
    again.restore(tmp_path / "run-2.npz")
    assert again.epoch == 2 and again.history.epochs == [1, 2]
    assert again.restore(tmp_path / "best.npz").epoch == 1 + int(np.argmin(trainer.history["loss"]))


def test_fit_refuses_targets_that_cannot_match_before_any_batch_runs(capsys):
    x = np.zeros((64, 8), "float32")
    labels = np.arange(64) % 10
    cases = [(np.eye(3)[labels % 3], r"fit: y has shape \(64, 3\), which looks one-hot.*pass y\.argmax\(1\)"),
             (labels, r"fit: the labels go from 0 to 9, but the model's last layer has 3 outputs.*give the last "
                      r"layer 10 units"),
             (labels[:60] % 3, r"fit: x has 64 samples but y has 60"),
             (np.full(64, 0.5), r"fit: y has shape \(64,\) and dtype float64; .* one integer class index")]
    for y, message in cases:
        trainer = train.Trainer(nn.Sequential([nn.Dense(3)]), optim.SGD(0.1))
        with pytest.raises(gn.FeedError, match=message):
            trainer.fit(x, y, epochs=1)
        assert "epoch 1/1" not in capsys.readouterr().err              # refused before the progress bar began


def test_changing_what_is_trainable_after_building_is_refused():
    x, y = shape_images(32, size=12, seed=2)
    model = nn.Sequential([nn.Flatten(), nn.Dense(8), nn.Dense(7)])
    trainer = train.Trainer(model)
    trainer.fit(x, y, epochs=1, progress=False)
    model.freeze("dense1")
    with pytest.raises(gn.GraphError, match="trainable variables changed"):
        trainer.fit(x, y, epochs=2, progress=False)


def test_frozen_layers_stay_fixed_during_fit():
    x, y = shape_images(64, size=12, seed=2)
    model = nn.Sequential([nn.Conv2D(3, 3), nn.Flatten(), nn.Dense(7)])
    model.build((1, 12, 12))
    model.freeze(nn.Conv2D)
    before = model.get_weights()
    train.Trainer(model, optim.Adam(0.01)).fit(x, y, epochs=2, progress=False)
    after = model.get_weights()
    assert np.array_equal(after["conv1/weight"], before["conv1/weight"])
    assert not np.array_equal(after["dense1/weight"], before["dense1/weight"])


# ---------------------------------------------------------------------------------------------------------------
# The data loader


@given(st.integers(1, 60), st.integers(1, 16), st.booleans(), st.booleans(), st.integers(0, 50))
def test_each_epoch_visits_every_sample_once_in_a_seeded_order(n, batch_size, shuffle, drop_last, seed):
    x = np.arange(n) * 10
    y = np.arange(n)
    if drop_last and n < batch_size:
        with pytest.raises(gn.GraphError, match="make no batch"):
            DataLoader(x, y, batch_size, shuffle=shuffle, seed=seed, drop_last=drop_last)
        return
    loader = DataLoader(x, y, batch_size, shuffle=shuffle, seed=seed, drop_last=drop_last)
    epoch0 = list(loader)
    assert loader.epoch == 1 and len(epoch0) == len(loader)
    seen = np.concatenate([yb for _, yb in epoch0])
    assert all(np.array_equal(xb, yb * 10) for xb, yb in epoch0)              # x and y stay paired
    assert all(len(yb) == batch_size for _, yb in epoch0[:-1])
    if drop_last:
        assert len(seen) == n // batch_size * batch_size == loader.num_samples
        assert len(set(seen)) == len(seen)
    else:
        assert sorted(seen) == list(range(n))
    if not shuffle:
        assert list(seen) == list(range(len(seen)))
    again = DataLoader(x, y, batch_size, shuffle=shuffle, seed=seed, drop_last=drop_last)
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(epoch0, again))    # the same seed, the same order
    loader.set_epoch(0)
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(epoch0, loader))


def test_shuffled_epochs_differ_and_are_functions_of_seed_and_epoch():
    loader = DataLoader(np.arange(100), batch_size=100, shuffle=True, seed=3)
    epochs = [next(iter(loader)) for _ in range(3)]
    assert not np.array_equal(epochs[0], epochs[1]) and not np.array_equal(epochs[1], epochs[2])
    fresh = DataLoader(np.arange(100), batch_size=100, shuffle=True, seed=3)
    fresh.load_state_dict({"seed": 3, "epoch": 2})
    assert np.array_equal(next(iter(fresh)), epochs[2])
    with pytest.raises(gn.GraphError, match="must pair up"):
        DataLoader(np.zeros(3), np.zeros(4))


def test_augmented_batches_are_reproducible_per_seed_epoch_and_batch():
    x = np.random.default_rng(0).normal(size=(20, 1, 8, 8)).astype("float32")
    augment = [RandomFlip(), RandomShift(2), RandomRotation(15), GaussianNoise(0.1)]

    def epoch(seed, number):
        loader = DataLoader(x, batch_size=8, seed=seed, augment=augment)
        return list(loader.batches(number))

    first = epoch(0, 0)
    assert all(np.array_equal(a, b) for a, b in zip(first, epoch(0, 0)))
    assert not np.array_equal(first[0], epoch(0, 1)[0]) and not np.array_equal(first[0], epoch(1, 0)[0])
    assert all(b.dtype == np.float32 and b.shape[1:] == (1, 8, 8) for b in first)


def test_augmentations_do_what_they_say():
    rng = np.random.default_rng(0)
    images = rng.normal(size=(6, 2, 7, 7)).astype("float32")
    assert np.array_equal(RandomFlip(p=1.0)(images, rng), images[..., ::-1])
    assert np.array_equal(RandomFlip(p=0.0)(images, rng), images)
    assert np.array_equal(RandomShift(0)(images, rng), images)
    assert np.array_equal(RandomRotation(0)(images, rng), images)
    assert RandomCrop(5, padding=1)(images, rng).shape == (6, 2, 5, 5)
    dot = np.zeros((50, 1, 9, 9), "float32")
    dot[:, 0, 4, 4] = 1.0
    shifted = RandomShift(2)(dot, rng)
    assert np.all(shifted.sum(axis=(1, 2, 3)) == 1.0)                          # moved, not lost
    rows, cols = np.nonzero(shifted[:, 0].max(axis=0))
    assert rows.min() >= 2 and rows.max() <= 6 and len(set(rows)) > 1
    noisy = GaussianNoise(0.5)(np.zeros((100, 1, 10, 10), "float32"), rng)
    assert abs(noisy.std() - 0.5) < 0.02
    square = np.arange(16, dtype="float64").reshape(1, 4, 4)
    assert np.array_equal(bilinear(square, *np.mgrid[0:4, 0:4].astype(float)), square)   # integer points
    assert bilinear(square, np.array([[0.5]]), np.array([[0.5]]))[0, 0, 0] == (0 + 1 + 4 + 5) / 4
    assert bilinear(square, np.array([[-2.0]]), np.array([[0.0]]))[0, 0, 0] == 0.0          # outside: zero
    ring = RandomRotation(30)(np.ones((4, 1, 15, 15), "float32"), rng)
    np.testing.assert_allclose(ring[:, :, 6:9, 6:9], 1.0, rtol=1e-6)             # the middle stays inside


# ---------------------------------------------------------------------------------------------------------------
# The README's training example


def test_the_readme_training_example_runs_end_to_end(tmp_path):
    script = pathlib.Path(__file__).resolve().parent.parent / "examples" / "readme_training.py"
    env = dict(os.environ, PYTHONPATH=str(script.parent.parent))
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300,
                            cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    assert out.count('Model: "lenet5"') == 2 and "16·(6·5·5+1)" in out and "Total params: 61,451" in out
    assert "frozen: 2,572  (conv1, conv2)" in out and "head (Dense)" in out
    assert "sample/s" in result.stderr and "epoch 4/4" in result.stderr          # the progress bars
    assert (tmp_path / "lenet5.npz").exists()
    accuracy = float(re.search(r"RESULT fine-tuned validation accuracy ([\d.]+)", out).group(1))
    assert accuracy > 0.6
