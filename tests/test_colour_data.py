"""graphnet.data.colour_shape_images: the generated colour set of lesson 05a, where colour and shape together decide
the class. Checked here: the same arrays for the same seed, shapes and dtypes, and that neither colour alone nor
shape alone (a grayscale image) is enough — measured with simple classifiers, each shown to work where it should."""
import numpy as np
import pytest

import graphnet as gn
from graphnet import data

N_COLOURS = N_SHAPES = 3


@pytest.fixture(scope="module")
def images():
    return data.colour_shape_images(1800, seed=3)


def nearest_centroid_accuracy(features, labels):
    """Fit class centroids on the first half, classify the second half by the nearest one."""
    half = len(features) // 2
    classes = np.unique(labels[:half])
    centroids = np.stack([features[:half][labels[:half] == c].mean(axis=0) for c in classes])
    distances = ((features[half:, None, :] - centroids[None]) ** 2).sum(axis=-1)
    return float((classes[distances.argmin(axis=1)] == labels[half:]).mean())


def histograms(images, bins=16):
    """Per image and channel, the fraction of pixels in each of `bins` brightness bins: (N, C·bins)."""
    edges = np.linspace(0, 1, bins + 1)[1:-1]
    counts = [np.stack([np.bincount(np.digitize(channel.ravel(), edges), minlength=bins) for channel in image])
              for image in images]
    return np.stack(counts).reshape(len(images), -1) / images[0, 0].size


def test_same_seed_same_arrays_other_seed_other_arrays():
    x1, y1 = data.colour_shape_images(50, seed=7)
    x2, y2 = data.colour_shape_images(50, seed=7)
    x3, _ = data.colour_shape_images(50, seed=8)
    np.testing.assert_array_equal(x1, x2)
    np.testing.assert_array_equal(y1, y2)
    assert not np.array_equal(x1, x3)


def test_shapes_dtypes_range_and_classes(images):
    x, y = images
    assert x.shape == (1800, 3, 32, 32) and x.dtype == np.float32
    assert y.shape == (1800,) and y.dtype == np.int64
    assert 0.0 <= x.min() and x.max() <= 1.0
    assert len(data.COLOUR_SHAPE_CLASSES) == N_COLOURS * N_SHAPES == 9
    assert np.bincount(y, minlength=9).min() > 100                      # every class drawn, about equally
    assert data.colour_shape_images(4, size=48, seed=0)[0].shape == (4, 3, 48, 48)
    gray = data.to_grayscale(x[:5])
    assert gray.shape == (5, 1, 32, 32) and gray.dtype == np.float32


def test_colour_alone_leaves_the_shapes_of_a_colour_confusable(images):
    x, y = images
    mean_colour = x.mean(axis=(2, 3))                                   # (N, 3): all an image says about colour
    colour = y // N_SHAPES
    assert nearest_centroid_accuracy(mean_colour, colour) > 0.95        # the colour is plain to see...
    assert nearest_centroid_accuracy(mean_colour, y) < 0.45             # ...the class is not: about 1/3


def test_shape_alone_leaves_the_colours_of_a_shape_confusable(images):
    x, y = images
    colour = y // N_SHAPES
    assert nearest_centroid_accuracy(histograms(x), colour) > 0.95      # colour histograms tell the colour
    grey = histograms(data.to_grayscale(x))                             # a grey histogram cannot: same brightness
    assert nearest_centroid_accuracy(grey, colour) < 0.45               # chance is 1/3


def test_bad_arguments_are_refused():
    with pytest.raises(gn.DatasetError, match="n must be a positive int"):
        data.colour_shape_images(0)
    with pytest.raises(gn.DatasetError, match="size must be an int of at least 16"):
        data.colour_shape_images(5, size=8)
