"""Bounded memory and graphnet's own errors for bad files: plans are cached a few at a time, describing allocates
nothing, a small file that inflates to a large one is refused having read only its header, a save killed mid-way
leaves no temporary behind for good, and malformed checkpoints and IDX files raise CheckpointError/DatasetError."""
import gc
import gzip
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import textwrap
import tracemalloc
import weakref
import zlib

import numpy as np
import pytest

import graphnet as gn
from graphnet import checkpoint, data, nn, optim, train
from graphnet.checkpoint import CheckpointError
from graphnet.program import PLAN_CACHE_SIZE

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def peak_bytes_while(action):
    """The peak of memory allocated (as tracemalloc sees it; NumPy reports its arrays) while `action()` runs, and
    the exception it raised."""
    gc.collect()
    tracemalloc.start()
    try:
        action()
    except Exception as error:
        raised = error
    else:
        raised = None
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    return peak, raised


# ---------------------------------------------------------------------------------------------------------------
# Plans: a bounded cache, and a layout that costs no memory


def dense_program():
    with gn.Graph():
        x = gn.placeholder((None, 16), name="x")
        w = gn.variable(np.eye(16, 4, dtype="float32"), name="w")
        y = gn.relu(x @ w)
    return x, gn.compile(y)


def test_a_program_keeps_a_few_plans_not_one_per_batch_size_forever():
    x, program = dense_program()
    first = program.plan(batch_size=1)
    first_ref = weakref.ref(first)
    for n in range(1, 3 * PLAN_CACHE_SIZE):
        feed = np.full((n, 16), 2.0, "float32")
        np.testing.assert_array_equal(program.run({x: feed}), np.full((n, 4), 2.0))
        assert len(program._plans) <= PLAN_CACHE_SIZE
    del first
    gc.collect()
    assert first_ref() is None                          # the oldest plan, and its arena, are gone
    np.testing.assert_array_equal(program.run({x: np.ones((1, 16), "float32")}), np.ones((1, 4)))   # made again
    recent = program.plan(batch_size=3 * PLAN_CACHE_SIZE - 1)
    assert recent.bound and program.plan(batch_size=3 * PLAN_CACHE_SIZE - 1) is recent


def test_describing_a_program_allocates_no_arena_at_any_batch_size(monkeypatch):
    x, program = dense_program()
    allocations = []
    original = program.backend.allocate
    monkeypatch.setattr(program.backend, "allocate", lambda nbytes: allocations.append(nbytes) or original(nbytes))
    huge = program.describe(batch_size=10 ** 9)
    assert "GiB (planned peak)" in huge and "x (1000000000, 16)" in huge
    program.describe(batch_size=10 ** 5)
    assert allocations == [] and not program.plan(batch_size=10 ** 5).bound
    described = program.plan(batch_size=6)
    program.run({x: np.ones((6, 16), "float32")})          # the run binds the layout it described
    assert len(allocations) == 1 and described.bound and program.plan() is described


# ---------------------------------------------------------------------------------------------------------------
# Checkpoints that would inflate: refused after reading the manifest and the .npy headers only


def small_model():
    model = nn.Sequential([nn.Dense(5), nn.Dense(3)], seed=0)
    model.build((4,))
    return model


def write_checkpoint(path, arrays, manifest_arrays=None, state=None, compressed=True):
    """An archive as checkpoint.save lays it out, but zip-compressed and with the manifest given (default: the
    true one)."""
    entries = manifest_arrays if manifest_arrays is not None else [
        {"name": n, "shape": list(a.shape), "dtype": a.dtype.str, "sha256": checkpoint.digest(a)}
        for n, a in arrays.items()]
    manifest = {"format": checkpoint.FORMAT, "version": checkpoint.VERSION, "arrays": entries,
                "state": state if state is not None else {}}
    (np.savez_compressed if compressed else np.savez)(path, **arrays, __manifest__=np.array(json.dumps(manifest)))
    return path


BIG = 2 ** 25           # bytes: 32 MiB of zeros, which zip compresses to a few tens of KiB


def test_a_checkpoint_of_a_much_larger_model_is_refused_before_it_is_decompressed(tmp_path):
    model = small_model()
    before = model.get_weights()
    big = {f"model/{n}": np.zeros(v.shape, v.dtype) for n, v in before.items()}
    big["model/dense1/weight"] = np.zeros((BIG // 4 // 5, 5), "float32")
    path = write_checkpoint(tmp_path / "big.npz", big)
    assert os.path.getsize(path) < BIG // 100
    peak, error = peak_bytes_while(lambda: model.load_weights(path))
    assert isinstance(error, CheckpointError) and "'dense1/weight' has shape (1677721, 5) there" in str(error)
    assert peak < BIG // 8
    assert all(np.array_equal(model.get_weights()[n], v) for n, v in before.items())


def test_an_array_whose_header_disagrees_with_the_manifest_is_refused_before_its_data_is_read(tmp_path):
    model = small_model()
    arrays = {f"model/{n}": v for n, v in model.get_weights().items()}
    honest = [{"name": n, "shape": list(a.shape), "dtype": a.dtype.str, "sha256": checkpoint.digest(a)}
              for n, a in arrays.items()]
    arrays["model/dense1/weight"] = np.zeros((BIG // 4,), "float32")      # the manifest still says (4, 5)
    path = write_checkpoint(tmp_path / "lying.npz", arrays, honest)
    peak, error = peak_bytes_while(lambda: model.load_weights(path))
    assert isinstance(error, CheckpointError)
    assert "'model/dense1/weight' is (8388608,) float32 but the manifest says (4, 5) float32" in str(error)
    assert peak < BIG // 8


def test_a_manifest_too_large_to_be_one_is_refused_unread(tmp_path, monkeypatch):
    model = small_model()
    path = model.save_weights(tmp_path / "w.npz")
    monkeypatch.setattr(checkpoint, "MAX_MANIFEST_BYTES", 100)
    with pytest.raises(CheckpointError, match=r"the manifest would take [\d,]+ bytes, more than the 100"):
        model.load_weights(path)


# ---------------------------------------------------------------------------------------------------------------
# Checkpoint manifests of valid JSON but the wrong structure: CheckpointError, nothing loaded


def rewritten(tmp_path, saved_path, change):
    """A copy of a saved checkpoint whose manifest went through `change(manifest)` (which edits it in place)."""
    content = checkpoint.read(saved_path)
    manifest = {"format": checkpoint.FORMAT, "version": checkpoint.VERSION, "state": content.state,
                "arrays": [{"name": n, "shape": list(a.shape), "dtype": a.dtype.str,
                            "sha256": checkpoint.digest(a)} for n, a in content.arrays.items()]}
    change(manifest)
    path = tmp_path / f"changed{len(os.listdir(tmp_path))}.npz"
    np.savez(path, **content.arrays, __manifest__=np.array(json.dumps(manifest)))
    return path


def set_entry(index, **fields):
    def change(manifest):
        manifest["arrays"][index] = fields.pop("whole") if "whole" in fields else {**manifest["arrays"][index],
                                                                                   **fields}
    return change


def drop_key(key):
    return lambda manifest: manifest["arrays"][0].pop(key)


@pytest.mark.parametrize("change, message", [
    (set_entry(0, whole=[1, 2]), r"entry 0 of 'arrays' is list, not an object"),
    (set_entry(1, whole="model/dense1/bias"), r"entry 1 of 'arrays' is str"),
    (drop_key("shape"), r"entry 0 of 'arrays' lacks shape"),
    (drop_key("name"), r"entry 0 of 'arrays' lacks name"),
    (set_entry(0, shape="4x5"), r"has the shape '4x5', not a list of sizes >= 0"),
    (set_entry(0, shape=[4, -5]), r"has the shape \[4, -5\]"),
    (set_entry(0, name=7), r"has the name 7"),
    (set_entry(0, dtype=["f4"]), r"array 'model/dense1/weight' cannot be read: the manifest gives it the dtype"),
    (set_entry(0, dtype="no such type"), r"the dtype 'no such type'"),
    (set_entry(0, sha256=None), r"has the checksum None"),
    (lambda m: m["arrays"].append(dict(m["arrays"][0])), r"'model/dense1/weight' is listed twice"),
])
def test_a_manifest_of_the_wrong_structure_is_refused_and_nothing_is_loaded(tmp_path, change, message):
    model = small_model()
    saved = model.save_weights(tmp_path / "w.npz")
    path = rewritten(tmp_path, saved, change)
    target = nn.Sequential([nn.Dense(5), nn.Dense(3)], seed=1)
    target.build((4,))
    before = target.get_weights()
    with pytest.raises(CheckpointError, match=message) as error:
        target.load_weights(path)
    assert str(path) in str(error.value)
    assert all(np.array_equal(target.get_weights()[n], v) for n, v in before.items())


def training_run(tmp_path):
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(24, 4)).astype("float32"), rng.integers(0, 3, size=24)
    trainer = train.Trainer(nn.Sequential([nn.Dense(5), nn.Dense(3)], seed=0), optim.Adam(0.01))
    trainer.fit(x, y, epochs=1, batch_size=8, progress=False)
    return trainer.save(tmp_path / "run.npz"), x, y


def set_state(**fields):
    def change(manifest):
        for key, value in fields.items():
            if value is KeyError:
                manifest["state"].pop(key)
            else:
                manifest["state"][key] = value
    return change


@pytest.mark.parametrize("change, message", [
    (set_state(epoch="two"), r"'epoch' is 'two', expected a count >= 0"),
    (set_state(loader=3), r"'loader' is 3, expected an object with a seed"),
    (set_state(loader={"epoch": 1}), r"'loader' is \{'epoch': 1\}"),
    (set_state(rng_counters=[1, 2, 3]), r"'rng_counters' is \[1, 2, 3\], expected counts >= 0 for"),
    (set_state(rng_counters={"train": 1}), r"'rng_counters' is \{'train': 1\}"),
    (set_state(shapes={"sample": "4"}), r"'shapes' is \{'sample': '4'\}, expected an object with the sample"),
    (set_state(shapes={"sample": [4], "target": [], "input_dtype": "float32", "target_dtype": "int65"}),
     r"'shapes' is .*int65"),
    (set_state(history={"loss": [1.0]}), r"'history' is \{'loss': \[1.0\]\}, expected a list of objects"),
    (set_state(history=KeyError), r"the training state lacks history"),
])
def test_a_training_state_of_the_wrong_structure_is_refused_and_nothing_changes(tmp_path, change, message):
    saved, x, y = training_run(tmp_path)
    path = rewritten(tmp_path, saved, change)
    fresh = train.Trainer(nn.Sequential([nn.Dense(5), nn.Dense(3)], seed=3), optim.Adam(0.01))
    with pytest.raises(CheckpointError, match=message):
        fresh.restore(path)
    trained = train.Trainer(nn.Sequential([nn.Dense(5), nn.Dense(3)], seed=4), optim.Adam(0.01))
    trained.fit(x, y, epochs=1, batch_size=8, progress=False)
    before = (trained.model.get_weights(), trained.epoch, trained.optimizer.steps_done())
    with pytest.raises(CheckpointError, match=message):
        trained.restore(path)
    after = (trained.model.get_weights(), trained.epoch, trained.optimizer.steps_done())
    assert before[1:] == after[1:] and all(np.array_equal(after[0][n], v) for n, v in before[0].items())


def test_a_folder_is_not_a_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match="is a folder"):
        small_model().load_weights(tmp_path)


# ---------------------------------------------------------------------------------------------------------------
# A save killed mid-way: its temporary file is removed by the next save of the same target


KILLED_SAVE = textwrap.dedent("""
    import os, signal, sys
    import numpy as np
    from graphnet import checkpoint

    def die_half_written(file, **arrays):
        file.write(b"PK\\x03\\x04" + bytes(1 << 20))       # a MiB of a half-written archive
        file.flush()
        os.kill(os.getpid(), signal.SIGKILL)              # kill -9: no except, no finally runs

    np.savez = die_half_written
    checkpoint.save(sys.argv[1], {"a": np.ones(3)})
""")


def temporaries(folder):
    return sorted(name for name in os.listdir(folder) if name.endswith(".tmp"))


def test_a_save_killed_mid_way_leaves_a_temporary_that_the_next_save_removes(tmp_path):
    target = tmp_path / "run.npz"
    checkpoint.save(target, {"a": np.zeros(3)})
    env = dict(os.environ, PYTHONPATH=ROOT)
    killed = subprocess.run([sys.executable, "-c", KILLED_SAVE, str(target)], env=env, capture_output=True)
    assert killed.returncode == -signal.SIGKILL, killed.stderr.decode()[-2000:]
    left = temporaries(tmp_path)
    assert len(left) == 1 and os.path.getsize(tmp_path / left[0]) > 2 ** 20
    assert np.array_equal(checkpoint.read(target).arrays["a"], np.zeros(3))    # the target is still whole

    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        host = socket.gethostname()
        in_progress = tmp_path / f".run.npz.pid{alive.pid}@{host}.abcd1234.tmp"     # another process saving now
        other_target = tmp_path / f".other.npz.pid{2 ** 30}@{host}.abcd1234.tmp"   # dead, but not run.npz's
        other_host = tmp_path / f".run.npz.pid{2 ** 30}@elsewhere.abcd1234.tmp"   # a shared folder's other user
        for path in (in_progress, other_target, other_host):
            path.write_bytes(b"PK")
        checkpoint.save(target, {"a": np.ones(3)})
        assert temporaries(tmp_path) == sorted(p.name for p in (in_progress, other_target, other_host))
    finally:
        alive.kill()
        alive.wait()
    checkpoint.save(target, {"a": np.full(3, 2.0)})
    assert temporaries(tmp_path) == sorted([other_target.name, other_host.name])
    assert np.array_equal(checkpoint.read(target).arrays["a"], np.full(3, 2.0))


# ---------------------------------------------------------------------------------------------------------------
# IDX files: the header is read and checked first


def idx_header(code, shape):
    return struct.pack(">BBBB", 0, 0, code, len(shape)) + struct.pack(f">{len(shape)}i", *shape)


def test_a_small_gz_idx_file_that_inflates_far_beyond_its_header_is_refused_without_inflating_it(tmp_path):
    path = tmp_path / "bomb-ubyte.gz"
    payload = idx_header(0x08, (2, 3)) + bytes(6) + bytes(BIG)      # a 2 x 3 array, then 32 MiB of zeros
    path.write_bytes(gzip.compress(payload, compresslevel=9))
    assert os.path.getsize(path) < BIG // 100
    peak, error = peak_bytes_while(lambda: data.read_idx(path))
    assert isinstance(error, gn.DatasetError), error
    assert "trailing bytes: a 2 x 3 array of uint8 needs 6 data bytes" in str(error)
    assert peak < BIG // 8


def test_an_idx_header_that_declares_more_than_the_limit_is_refused_before_reading(tmp_path):
    path = tmp_path / "huge-ubyte.gz"
    path.write_bytes(gzip.compress(idx_header(0x0D, (60000, 28, 28, 300)) + bytes(100)))
    with pytest.raises(gn.DatasetError, match=r"declares a 60000 x 28 x 28 x 300 array of float32, "
                                              r"56,448,000,000 bytes, more than max_bytes=1,073,741,824"):
        data.read_idx(path)
    small = tmp_path / "small-ubyte"
    small.write_bytes(idx_header(0x08, (4, 4)) + bytes(16))
    with pytest.raises(gn.DatasetError, match="more than max_bytes=8"):
        data.read_idx(small, max_bytes=8)
    assert data.read_idx(small, max_bytes=16).shape == (4, 4)


def test_an_idx_header_of_255_dimensions_and_a_folder_are_dataset_errors(tmp_path):
    path = tmp_path / "dims-ubyte"
    path.write_bytes(idx_header(0x08, (1,) * 255) + b"\x07")
    with pytest.raises(gn.DatasetError, match=r"dims-ubyte: the header declares 255 dimensions .* at most 32"):
        data.read_idx(path)
    with pytest.raises(gn.DatasetError, match="is a folder, not a file"):
        data.read_idx(tmp_path)
    with pytest.raises(gn.DatasetError, match="is a folder, not a file"):
        data.read_cifar10_batch(tmp_path)
    cut = tmp_path / "cut-ubyte.gz"
    cut.write_bytes(gzip.compress(idx_header(0x08, (50, 50)) + bytes(2500))[:30])
    with pytest.raises(gn.DatasetError, match="damaged or truncated gzip file"):
        data.read_idx(cut)
    not_gzip = tmp_path / "junk-ubyte.gz"
    not_gzip.write_bytes(b"\x1f\x8b" + zlib.compress(b"junk"))
    with pytest.raises(gn.DatasetError, match="damaged or truncated gzip file"):
        data.read_idx(not_gzip)


def test_an_axis_that_passes_2_to_the_31_only_with_the_feeds_is_refused_when_planned():
    with gn.Graph():
        x = gn.placeholder((None, 2 ** 16), name="x")
        flat = gn.reshape(x, (-1,))
        prog = gn.compile(flat * 2.0, device="cpu")
    with pytest.raises(gn.ShapeError, match=r"reshape .*with the feeds 'x' \(65536, 65536\): axis 0 would have "
                                            r"4294967296 elements, more than graphnet's limit"):
        prog.describe(batch_size=2 ** 16)
