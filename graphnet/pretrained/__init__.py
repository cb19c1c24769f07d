"""Pretrained weights shipped inside the package: a small network trained once, reloaded in a line.

    from graphnet import pretrained
    model = pretrained.load("lenet5_mnist")     # LeNet-5, built for (1, 28, 28), with its trained weights
    pretrained.info("lenet5_mnist")             # how it was trained and the test accuracy it reached

Each entry is two files in this folder: `<name>.npz`, an ordinary weights checkpoint (`model.save_weights`:
written atomically, read without pickle, every array checked against its SHA-256), and `<name>.json`, the record
of its training (data set, split, seed, epochs, augmentation, optimizer, accuracy reached). The script
`train_<name>.py` beside them made both and makes them again:

    python -m graphnet.pretrained.train_lenet5_mnist            # writes lenet5_mnist.npz and .json here
"""
import json
import pathlib

from .. import nn
from ..errors import GraphError

HERE = pathlib.Path(__file__).resolve().parent


def lenet5(num_classes=10, seed=0):
    """LeNet-5 as in tutorials/05 (LeCun et al. 1998, with ReLU and max pooling), for 1x28x28 images:
    conv1 6@5x5 pad 2 -> pool -> conv2 16@5x5 -> pool -> 400 -> dense1 120 -> dense2 84 -> dense3 num_classes."""
    return nn.Sequential([
        nn.Conv2D(6, 5, padding=2, activation="relu"), nn.MaxPool2D(2),
        nn.Conv2D(16, 5, activation="relu"), nn.MaxPool2D(2),
        nn.Flatten(),
        nn.Dense(120, activation="relu"),
        nn.Dense(84, activation="relu"),
        nn.Dense(num_classes),
    ], name="lenet5", seed=seed)


# name -> (function that builds the untrained network, the sample shape it is built for)
MODELS = {"lenet5_mnist": (lenet5, (1, 28, 28))}


def _entry(name):
    if name not in MODELS:
        raise GraphError(f"pretrained: no model named {name!r}; graphnet ships {', '.join(sorted(MODELS))}")
    return MODELS[name]


def weights_path(name, folder=None):
    """The .npz file of `name`: in this package, or in `folder` (where the training script wrote it)."""
    _entry(name)
    return pathlib.Path(folder if folder is not None else HERE) / f"{name}.npz"


def info(name, folder=None):
    """The training record of `name` (a dict read from <name>.json)."""
    return json.loads(weights_path(name, folder).with_suffix(".json").read_text())


def load(name="lenet5_mnist", folder=None):
    """Build the network `name`, load its pretrained weights into it (model.load_weights: every variable, by name,
    shape and dtype checked first) and return the model, built for its sample shape."""
    build, sample_shape = _entry(name)
    model = build()
    model.build(sample_shape)
    model.load_weights(weights_path(name, folder))
    return model


__all__ = ["MODELS", "lenet5", "load", "info", "weights_path"]
