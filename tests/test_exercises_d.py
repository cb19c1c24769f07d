"""The exercise checkers of lessons 08 and 08a accept the right answer and refuse a wrong one.

A lesson's checkers are the functions `check_exercise_N` in its source. They are taken out of the lesson without
running it (its training takes seconds to minutes): each is compiled from the lesson's syntax tree, alone, with
NumPy and math as its only globals — so a checker that leaned on the lesson's state would fail here."""

import numpy as np
import pytest

from lesson_source import checkers


# --- lesson 08: transfer learning from digits 0-4 to 5-9 -------------------------------------------------------

LESSON_08 = checkers("08_transfer_learning.py")


@pytest.mark.parametrize("answer, right", [(100_741, True), (100_416, False), (105_541, False), (4_800, False)])
def test_exercise_08_1_counts_dense1_and_the_new_head(answer, right, capsys):
    assert LESSON_08["check_exercise_1"](answer) is right
    assert capsys.readouterr().out.startswith("Right" if right else "Not yet")


@pytest.mark.parametrize("fraction, right", [(325 / 105_541, True), (0.0031, True), (0.003, False),
                                             (325 / 100_741, False), (0.5, False)])
def test_exercise_08_2_is_the_heads_share_of_all_parameters(fraction, right):
    assert LESSON_08["check_exercise_2"](fraction) is right


def test_exercise_08_3_names_the_arrays_of_the_saved_network(capsys):
    check = LESSON_08["check_exercise_3"]
    right = [f"{layer}/{kind}" for layer in ("dense2", "dense1", "conv2", "conv1") for kind in ("bias", "weight")]
    assert check(right) is True
    assert check(right[:-1]) is False
    assert check(["model/" + name for name in right]) is False
    assert "prefix" in capsys.readouterr().out
    assert check([name.replace("dense2", "head") for name in right]) is False
    assert "head was added after" in capsys.readouterr().out


def test_exercise_08_3_agrees_with_a_checkpoint_written_by_that_network(tmp_path):
    """The expected names are those graphnet writes for lesson 08's network (built here as the lesson builds it)."""
    import graphnet as gn
    from graphnet import nn
    network = nn.Sequential([
        nn.Conv2D(16, 3, padding=1, activation="relu"), nn.MaxPool2D(2),
        nn.Conv2D(32, 3, padding=1, activation="relu"), nn.MaxPool2D(2),
        nn.Flatten(), nn.Dense(64, activation="relu"), nn.Dense(5)], name="cnn")
    network.build((1, 28, 28))
    network.save_weights(tmp_path / "a.npz")
    assert LESSON_08["check_exercise_3"](gn.checkpoint.read(tmp_path / "a.npz").group("model")) is True
    counts = network.freeze(nn.Conv2D).parameter_counts()
    assert LESSON_08["check_exercise_1"](counts["trainable"]) is True
    network.freeze("dense1")
    counts = network.parameter_counts()
    assert LESSON_08["check_exercise_2"](counts["trainable"] / (counts["trainable"] + counts["frozen"])) is True


# --- lesson 08a: transfer from the pretrained LeNet-5 ----------------------------------------------------------

LESSON_08A = checkers("08a_transfer_from_pretrained.py")


@pytest.mark.parametrize("answer, right", [((2210, 60494), True), ([2210, 60494], True), ((850, 59134), False),
                                           ((2210, 2210), False), ((2184, 60468), False)])
def test_exercise_08a_1_counts_a_26_way_head_and_the_top(answer, right):
    assert LESSON_08A["check_exercise_1"](answer) is right


def test_exercise_08a_1_agrees_with_the_pretrained_network():
    from graphnet import nn, pretrained
    model = pretrained.load("lenet5_mnist")
    model.freeze(nn.Conv2D)
    model.replace("dense3", nn.Dense(26, name="head"))
    model.build((1, 28, 28))
    head = model.get_layer("head").count_params()
    assert LESSON_08A["check_exercise_1"]((head, model.parameter_counts()["trainable"])) is True


def nearest(images, size):
    """A right answer: the index of the input pixel nearest each output pixel's centre, along both axes."""
    n = images.shape[-1]
    source = np.minimum(np.floor((np.arange(size) + 0.5) * n / size).astype(int), n - 1)
    return images[:, :, source][:, :, :, source]


def nearest_by_matrix(images, size):
    """Another right answer, as the lesson hints: a matrix with one 1 per row, X' = A·X·Aᵀ."""
    n = images.shape[-1]
    a = np.zeros((size, n))
    a[np.arange(size), ((2 * np.arange(size) + 1) * n) // (2 * size)] = 1
    return a @ images @ a.T


def rounded_corners(images, size):
    """A wrong answer: the corners aligned (i·(n − 1)/(size − 1), rounded), a different nearest pixel."""
    n = images.shape[-1]
    source = np.round(np.arange(size) * (n - 1) / max(size - 1, 1)).astype(int)
    return images[:, :, source][:, :, :, source]


def bilinear(images, size):
    """A wrong answer: the lesson's own linear interpolation mixes neighbours."""
    n = images.shape[-1]
    s = np.clip((np.arange(size) + 0.5) * n / size - 0.5, 0, n - 1)
    low = np.floor(s).astype(int)
    a = np.zeros((size, n))
    a[np.arange(size), low] += 1 - (s - low)
    a[np.arange(size), np.minimum(low + 1, n - 1)] += s - low
    return a @ images @ a.T


@pytest.mark.parametrize("answer, right", [(nearest, True), (nearest_by_matrix, True), (rounded_corners, False),
                                           (bilinear, False), (lambda images, size: images, False)])
def test_exercise_08a_2_checks_a_nearest_neighbour_resize(answer, right, capsys):
    assert LESSON_08A["check_exercise_2"](answer) is right
    assert capsys.readouterr().out.startswith("Right" if right else "Not yet")
