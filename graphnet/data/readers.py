"""Readers for data set files already on disk: the IDX format of MNIST / Fashion-MNIST and CIFAR-10's binary
version. Nothing here downloads anything; a missing file is a `DatasetError` that says what to put where.

IDX (LeCun's format for MNIST; `*-ubyte`, optionally gzip-compressed as `*-ubyte.gz`), all integers big-endian:

    byte 0, 1     0x00 0x00
    byte 2        dtype code: 0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32, 0x0D float32, 0x0E float64
    byte 3        ndims, the number of dimensions
    then          ndims × int32: the size of each dimension d_0, ..., d_{ndims−1}
    then          d_0 · d_1 · ... · d_{ndims−1} values of that dtype, row-major

so a file of ndims dimensions holds exactly 4 + 4·ndims + itemsize · Π d_i bytes.

CIFAR-10, binary version (`cifar-10-batches-bin/`): data_batch_1.bin ... data_batch_5.bin (10,000 images each)
and test_batch.bin (10,000). Each record is 1 + 3072 = 3073 bytes:

    byte 0          the label, 0..9 (see CIFAR10_CLASSES)
    bytes 1..3072   the 32×32 image: 1024 red values, then 1024 green, then 1024 blue, each row-major

which is already the (3, 32, 32) channel-first layout of NCHW.
"""
import gzip
import math
import os
import zlib

import numpy as np

from ..errors import DatasetError

FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
                         "Bag", "Ankle boot")
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")

# The IDX dtype codes (byte 2 of the magic number) and the big-endian NumPy dtype each one stands for.
IDX_DTYPES = {0x08: np.dtype("u1"), 0x09: np.dtype("i1"), 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"),
              0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}

# Where Debian's `dataset-fashion-mnist` package puts the four files (`apt install dataset-fashion-mnist`).
FASHION_MNIST_DIRS = ("/usr/share/datasets/fashion-mnist",)
FASHION_MNIST_FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
                       "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}

CIFAR10_FOLDER = "cifar-10-batches-bin"
CIFAR10_TRAIN_FILES = tuple(f"data_batch_{i}.bin" for i in range(1, 6))
CIFAR10_TEST_FILES = ("test_batch.bin",)
CIFAR10_RECORD_BYTES = 1 + 3 * 32 * 32


# What the readers accept at most, checked before the data is read (a small .gz can inflate to gigabytes).
MAX_IDX_BYTES = 2 ** 30          # data bytes an IDX file may declare (MNIST's training images: 47 MB)
MAX_IDX_DIMS = 32                # dimensions an IDX header may declare (MNIST's files have 1 or 3)
MAX_FILE_BYTES = 2 ** 30         # bytes a CIFAR-10 batch may hold once decompressed (one holds 30 MB)


def _open(path):
    """`path` opened for reading in binary; a missing file, a folder or an unreadable file is a DatasetError."""
    try:
        return open(path, "rb")
    except FileNotFoundError:
        raise DatasetError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise DatasetError(f"{path}: is a folder, not a file; give the path of the file inside it") from None
    except OSError as error:
        raise DatasetError(f"{path}: cannot be read ({error.strerror or error})") from None


def _is_gzip(file):
    """Whether the open file starts with the gzip magic number 1f 8b (the position is left at 0)."""
    start = file.read(2)
    file.seek(0)
    return start == b"\x1f\x8b"


def _read_bytes(path, max_bytes=MAX_FILE_BYTES):
    """The whole content of `path`, gunzipped when it starts with the gzip magic number 1f 8b; more than
    `max_bytes` (after decompression) is refused before it is all in memory."""
    with _open(path) as raw:
        compressed = _is_gzip(raw)
        stream = gzip.GzipFile(fileobj=raw, mode="rb") if compressed else raw
        try:
            data = stream.read(max_bytes + 1)
        except (EOFError, OSError, zlib.error) as e:
            raise DatasetError(f"{path}: a damaged or truncated gzip file ({e})") from None
    if len(data) > max_bytes:
        raise DatasetError(f"{path}: holds more than max_bytes={max_bytes:,} bytes{' once decompressed' * compressed}"
                           "; refused before reading the rest")
    return data


def read_idx(path, max_bytes=MAX_IDX_BYTES):
    """The array stored in the IDX file `path` (raw, or gzip-compressed), with the file's shape and a native-endian
    copy of its dtype. Raises DatasetError naming the file for a wrong magic number, an unknown dtype code, more
    than MAX_IDX_DIMS dimensions, a size that differs from 4 + 4·ndims + itemsize·Π dims bytes (a truncated file,
    or trailing bytes), or one over `max_bytes` of data. The header is read and checked first, so a file that
    declares (or inflates to) more than it should is refused before its data is in memory."""
    path = os.fspath(path)
    with _open(path) as raw:
        compressed = _is_gzip(raw)
        stream = gzip.GzipFile(fileobj=raw, mode="rb") if compressed else raw
        try:
            return _read_idx_stream(path, stream, None if compressed else os.fstat(raw.fileno()).st_size,
                                    max_bytes)
        except (EOFError, OSError, zlib.error) as e:
            if compressed:
                raise DatasetError(f"{path}: a damaged or truncated gzip file ({e})") from None
            raise DatasetError(f"{path}: cannot be read ({e})") from None


def _read_idx_stream(path, stream, file_size, max_bytes):
    """read_idx on an open stream; file_size is the whole file's size where it is known (not for gzip)."""
    magic = stream.read(4)
    if len(magic) < 4:
        raise DatasetError(f"{path}: not an IDX file: it holds {len(magic)} bytes, fewer than the 4 of the magic "
                           f"number 00 00 <dtype> <ndims>")
    if magic[0] != 0 or magic[1] != 0:
        raise DatasetError(f"{path}: not an IDX file: the magic number must start with bytes 00 00, found "
                           f"{magic[0]:02x} {magic[1]:02x}")
    code, ndims = magic[2], magic[3]
    if code not in IDX_DTYPES:
        known = ", ".join(f"0x{c:02X} ({d.name})" for c, d in IDX_DTYPES.items())
        raise DatasetError(f"{path}: unknown IDX dtype code 0x{code:02X} in byte 2 of the magic number; "
                           f"the format knows {known}")
    if ndims > MAX_IDX_DIMS:
        raise DatasetError(f"{path}: the header declares {ndims} dimensions (byte 3 of the magic number); an IDX "
                           f"array has at most {MAX_IDX_DIMS} (MNIST's files have 1 or 3): a damaged file, or not "
                           "an IDX file")
    header = 4 + 4 * ndims
    sizes = stream.read(4 * ndims)
    if len(sizes) < 4 * ndims:
        raise DatasetError(f"{path}: truncated IDX header: {ndims} dimensions need 4 + 4*{ndims} = {header} bytes, "
                           f"the file holds {4 + len(sizes)}")
    shape = tuple(int(d) for d in np.frombuffer(sizes, dtype=">i4"))
    if any(d < 0 for d in shape):
        raise DatasetError(f"{path}: not an IDX file: negative dimension sizes {shape} in the header")
    dtype = IDX_DTYPES[code]
    expected = dtype.itemsize * math.prod(shape)
    dims = " x ".join(map(str, shape)) or "scalar"

    def size_error(found, more=False):
        what = "truncated" if found < expected else "trailing bytes"
        holds = f"more than {found}" if more else f"{found}"
        return DatasetError(f"{path}: {what}: a {dims} array of {dtype.name} needs {expected} data bytes after the "
                            f"{header}-byte header, the file holds {holds}")

    if expected > max_bytes:
        raise DatasetError(f"{path}: the header declares a {dims} array of {dtype.name}, {expected:,} bytes, more "
                           f"than max_bytes={max_bytes:,}; refused before reading it. If the file really holds "
                           "that much, pass read_idx(path, max_bytes=...)")
    if file_size is not None and file_size - header != expected:
        raise size_error(file_size - header)
    data = stream.read(expected)
    if len(data) < expected:
        raise size_error(len(data))
    trailing, limit = 0, 1 << 20                         # count what follows, up to a MiB
    while trailing <= limit and (chunk := stream.read(limit + 1 - trailing)):
        trailing += len(chunk)
    if trailing:
        raise size_error(expected + min(trailing, limit), more=trailing > limit)
    array = np.frombuffer(data, dtype=dtype).reshape(shape)
    return array.astype(dtype.newbyteorder("="))


def load_idx_pair(images_path, labels_path):
    """(x, y) from an IDX file of N uint8 images (N, H, W) and one of N uint8 labels (N,), as MNIST and
    Fashion-MNIST store them: x float32 (N, 1, H, W) = pixel / 255, y int64."""
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise DatasetError(f"{images_path}: expected uint8 images of shape (N, H, W), found {images.dtype} of "
                           f"shape {images.shape}")
    if labels.ndim != 1 or labels.dtype != np.uint8:
        raise DatasetError(f"{labels_path}: expected uint8 labels of shape (N,), found {labels.dtype} of "
                           f"shape {labels.shape}")
    if len(images) != len(labels):
        raise DatasetError(f"{images_path} holds {len(images)} images but {labels_path} holds {len(labels)} "
                           f"labels; they must pair up")
    x = (images[:, None, :, :] / np.float32(255)).astype(np.float32, copy=False)
    return x, labels.astype(np.int64)


def _find_idx(folder, name):
    """folder/name, or folder/name.gz, whichever exists (None if neither)."""
    for candidate in (name, name + ".gz"):
        path = os.path.join(folder, candidate)
        if os.path.isfile(path):
            return path
    return None


def load_fashion_mnist(root=None):
    """Fashion-MNIST (Zalando: 70,000 28×28 grayscale photos of 10 kinds of clothing, FASHION_MNIST_CLASSES)
    from its four IDX files, `.gz` or not:

        train-images-idx3-ubyte  train-labels-idx1-ubyte  t10k-images-idx3-ubyte  t10k-labels-idx1-ubyte

    looked for in `root` if given, else where Debian's `dataset-fashion-mnist` package installs them
    (FASHION_MNIST_DIRS). Returns (x_train, y_train), (x_test, y_test): 60,000 and 10,000 images, x float32
    (N, 1, 28, 28) = pixel / 255, y int64 in 0..9."""
    folders = (os.fspath(root),) if root is not None else FASHION_MNIST_DIRS
    names = [name for pair in FASHION_MNIST_FILES.values() for name in pair]
    for folder in folders:
        paths = {name: _find_idx(folder, name) for name in names}
        if all(paths.values()):
            return tuple(load_idx_pair(paths[images], paths[labels])
                         for images, labels in FASHION_MNIST_FILES.values())
        if root is not None:
            missing = ", ".join(name for name, path in paths.items() if path is None)
            raise DatasetError(f"load_fashion_mnist: {missing} (or .gz) not found in {folder}; put the four files "
                               f"{', '.join(names)} (each may be .gz) there, or call load_fashion_mnist() without "
                               f"root after `apt install dataset-fashion-mnist`")
    raise DatasetError(f"load_fashion_mnist: the Fashion-MNIST files {', '.join(names)} (each may be .gz) are not "
                       f"in {', '.join(folders)}; `apt install dataset-fashion-mnist` puts them there, or copy "
                       f"them into a folder of your own and pass root=that_folder")


def read_cifar10_batch(path):
    """(x, y) from one CIFAR-10 binary batch file: x float32 (N, 3, 32, 32) = pixel / 255, y int64 in 0..9.
    The file must hold a whole number of 3073-byte records and every label must be at most 9."""
    path = os.fspath(path)
    data = _read_bytes(path)
    if len(data) == 0 or len(data) % CIFAR10_RECORD_BYTES:
        raise DatasetError(f"{path}: a CIFAR-10 binary batch holds records of 1 + 3*32*32 = {CIFAR10_RECORD_BYTES} "
                           f"bytes, but the file has {len(data)} bytes = {len(data) // CIFAR10_RECORD_BYTES} records "
                           f"+ {len(data) % CIFAR10_RECORD_BYTES} bytes (truncated, or not a CIFAR-10 .bin file)")
    records = np.frombuffer(data, dtype=np.uint8).reshape(-1, CIFAR10_RECORD_BYTES)
    labels = records[:, 0]
    bad = np.flatnonzero(labels > 9)
    if bad.size:
        raise DatasetError(f"{path}: record {bad[0]} has label {labels[bad[0]]}, but CIFAR-10 labels are 0..9 "
                           f"({bad.size} records are out of range; is this CIFAR-100's binary version?)")
    x = (records[:, 1:].reshape(-1, 3, 32, 32) / np.float32(255)).astype(np.float32, copy=False)
    return x, labels.astype(np.int64)


def load_cifar10(root):
    """CIFAR-10 (60,000 32×32 colour photos of 10 classes, CIFAR10_CLASSES) from its binary version, the folder
    `cifar-10-batches-bin` of cifar-10-binary.tar.gz. `root` is that folder or the folder that holds it.
    Returns (x_train, y_train), (x_test, y_test): 50,000 images from data_batch_1..5.bin and 10,000 from
    test_batch.bin, x float32 (N, 3, 32, 32) = pixel / 255, y int64 in 0..9."""
    root = os.fspath(root)
    nested = os.path.join(root, CIFAR10_FOLDER)
    folder = nested if os.path.isdir(nested) else root
    expected = CIFAR10_TRAIN_FILES + CIFAR10_TEST_FILES
    missing = [name for name in expected if not os.path.isfile(os.path.join(folder, name))]
    if missing:
        raise DatasetError(f"load_cifar10: {', '.join(missing)} not found in {folder}; root must be the folder "
                           f"{CIFAR10_FOLDER}/ (or its parent) holding {', '.join(expected)}, unpacked from CIFAR-10's "
                           f"binary version cifar-10-binary.tar.gz")
    splits = []
    for names in (CIFAR10_TRAIN_FILES, CIFAR10_TEST_FILES):
        parts = [read_cifar10_batch(os.path.join(folder, name)) for name in names]
        splits.append((np.concatenate([x for x, _ in parts]), np.concatenate([y for _, y in parts])))
    return tuple(splits)
