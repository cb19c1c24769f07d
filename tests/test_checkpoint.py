"""Checkpoints: exact round trips, atomic writes, and refusal — with nothing changed — of bad files."""
import json
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import graphnet as gn
from graphnet import checkpoint, nn, optim, train
from graphnet.checkpoint import CheckpointError


def small_model(hidden=5, seed=0, extra_layer=False):
    layers = [nn.Dense(hidden, activation="tanh"), nn.BatchNorm1D(), nn.Dense(3)]
    if extra_layer:
        layers.append(nn.Dense(2))
    model = nn.Sequential(layers, seed=seed)
    model.build((4,))
    return model


def assert_same_weights(a, b):
    assert a.keys() == b.keys()
    for name in a:
        assert a[name].dtype == b[name].dtype and np.array_equal(a[name], b[name]), name


# ---------------------------------------------------------------------------------------------------------------
# Round trips


arrays_strategy = st.dictionaries(
    st.text("abcxyz_/0123456789", min_size=1, max_size=12).filter(lambda s: not s.startswith("/")),
    st.tuples(st.sampled_from(["float32", "float64", "int64", "uint8", "int32"]),
              st.lists(st.integers(0, 4), max_size=3), st.integers(0, 2 ** 32 - 1)),
    max_size=5)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(arrays_strategy, st.dictionaries(st.text(max_size=5), st.integers() | st.floats(allow_nan=False) | st.text(),
                                        max_size=3))
def test_save_then_read_round_trips_exactly(tmp_path, specs, state):
    arrays = {}
    for name, (dtype, shape, seed) in specs.items():
        rng = np.random.default_rng(seed)
        arrays[name] = (rng.normal(size=shape) * 1e3).astype(dtype)
    path = tmp_path / "round.npz"
    checkpoint.save(path, arrays, state)
    loaded = checkpoint.read(path)
    assert list(loaded.arrays) == list(arrays)
    assert_same_weights(loaded.arrays, arrays)
    assert loaded.state == state


def test_model_weights_round_trip_into_a_differently_initialized_model(tmp_path):
    source, target = small_model(seed=1), small_model(seed=2)
    source.variables()["batchnorm1/running_mean"].assign_value(np.arange(5, dtype="float32"))
    assert not np.array_equal(source.get_weights()["dense1/weight"], target.get_weights()["dense1/weight"])
    source.save_weights(tmp_path / "w.npz")
    loaded = target.load_weights(tmp_path / "w.npz")
    assert loaded == list(target.variables())
    assert_same_weights(target.get_weights(), source.get_weights())
    batch = np.random.default_rng(0).normal(size=(6, 4)).astype("float32")
    outputs = [gn.compile(m.output).run({m.input: batch}) for m in (source, target)]
    assert np.array_equal(*outputs)


def test_writing_is_atomic_and_leaves_no_temporary_file(tmp_path, monkeypatch):
    path = tmp_path / "w.npz"
    model = small_model()
    model.save_weights(path)
    before = path.read_bytes()

    def crash(file, **arrays):
        file.write(b"PK\x03\x04 half an archive")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", crash)
    with pytest.raises(OSError, match="disk full"):
        model.save_weights(path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    with pytest.raises(CheckpointError, match="not plain JSON"):
        checkpoint.save(path, {"a": np.ones(2)}, {"when": object()})
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["w.npz"]


# ---------------------------------------------------------------------------------------------------------------
# Refusals: each names the file and the first bad variable, and changes nothing


@pytest.fixture
def saved(tmp_path):
    """A saved model's file, and another model whose weights must survive every failed load."""
    path = tmp_path / "model.npz"
    small_model(seed=1).save_weights(path)
    target = small_model(seed=2)
    return path, target, target.get_weights()


def refused(target, before, path, *load_args, match=None, **load_kwargs):
    with pytest.raises(CheckpointError) as error:
        target.load_weights(path, *load_args, **load_kwargs)
    assert str(path) in str(error.value)
    if match:
        assert match in str(error.value), str(error.value)
    assert_same_weights(target.get_weights(), before)
    return str(error.value)


def test_a_byte_flipped_in_an_array_is_refused_naming_it(saved):
    path, target, before = saved
    raw = bytearray(path.read_bytes())
    weight = checkpoint.read(path).arrays["model/dense2/weight"]
    at = raw.find(weight.tobytes())
    assert at > 0
    raw[at + 5] ^= 0x40
    path.write_bytes(bytes(raw))
    refused(target, before, path, match="'model/dense2/weight'")


@settings(max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_any_flipped_byte_is_refused_or_harmless(tmp_path, data):
    path = tmp_path / "flip.npz"
    small_model(seed=1).save_weights(path)
    original = checkpoint.read(path).arrays
    raw = bytearray(path.read_bytes())
    position = data.draw(st.integers(0, len(raw) - 1))
    raw[position] ^= data.draw(st.integers(1, 255))
    path.write_bytes(bytes(raw))
    target = small_model(seed=2)
    before = target.get_weights()
    try:
        target.load_weights(path)
    except CheckpointError as error:
        assert str(path) in str(error)
        assert_same_weights(target.get_weights(), before)
    else:     # a byte no check covers (a zip timestamp, ...) changed nothing that is loaded
        assert_same_weights({f"model/{k}": v for k, v in target.get_weights().items()}, original)


@pytest.mark.parametrize("keep", [0, 10, 100, 0.5, -22, -1])
def test_a_truncated_file_is_refused(saved, keep):
    path, target, before = saved
    raw = path.read_bytes()
    cut = int(len(raw) * keep) if isinstance(keep, float) else (keep if keep >= 0 else len(raw) + keep)
    path.write_bytes(raw[:cut])
    refused(target, before, path)


def test_a_model_of_another_shape_is_refused_naming_the_first_mismatch(saved):
    path, _, _ = saved
    wider = small_model(hidden=6, seed=3)
    message = refused(wider, wider.get_weights(), path, match="variable 'dense1/weight' has shape (4, 5) there "
                                                               "but (4, 6) in the model")
    assert "nothing was loaded" in message
    longer = small_model(seed=3, extra_layer=True)
    refused(longer, longer.get_weights(), path, match="variable 'dense3/weight' is missing")
    shorter = nn.Sequential([nn.Dense(5, activation="tanh")])
    shorter.build((4,))
    refused(shorter, shorter.get_weights(), path, match="variable 'batchnorm1/gamma' is not in the model")
    double = nn.Sequential([nn.Dense(5, activation="tanh"), nn.BatchNorm1D(), nn.Dense(3)])
    double.build((4,), "float64")
    refused(double, double.get_weights(), path, match="'dense1/weight' is float32 there but float64")


def test_files_that_are_not_checkpoints_are_refused(saved, tmp_path):
    path, target, before = saved
    refused(target, before, tmp_path / "missing.npz", match="no such file")
    plain = tmp_path / "plain.npz"
    np.savez(plain, **{"model/dense1/weight": np.zeros((4, 5), "float32")})
    refused(target, before, plain, match="no __manifest__")
    text = tmp_path / "text.npz"
    text.write_text("hello")
    refused(target, before, text, match="not a readable .npz")


def test_an_array_added_behind_the_manifest_is_refused(saved, tmp_path):
    path, target, before = saved
    content = checkpoint.read(path)
    manifest = {"format": checkpoint.FORMAT, "version": checkpoint.VERSION, "state": content.state,
                "arrays": [{"name": n, "shape": list(a.shape), "dtype": a.dtype.str, "sha256": checkpoint.digest(a)}
                           for n, a in content.arrays.items()]}
    tampered = tmp_path / "tampered.npz"
    np.savez(tampered, **content.arrays, **{"model/extra": np.ones(2)},
             __manifest__=np.array(json.dumps(manifest)))
    refused(target, before, tampered, match="'model/extra' is not in the manifest")


class Payload:
    """Unpickling this would create a file: proof that loading ran code."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_loading_never_unpickles(saved, tmp_path):
    path, target, before = saved
    marker = tmp_path / "code-ran"
    evil = tmp_path / "evil.npz"
    payload = np.array([Payload(str(marker))], dtype=object)
    manifest = {"format": checkpoint.FORMAT, "version": checkpoint.VERSION, "state": {},
                "arrays": [{"name": "model/dense1/weight", "shape": [1], "dtype": "|O", "sha256": ""}]}
    np.savez(evil, **{"model/dense1/weight": payload}, __manifest__=np.array(json.dumps(manifest)))
    refused(target, before, evil, match="'model/dense1/weight' cannot be read")
    assert not marker.exists()
    with pytest.raises(CheckpointError, match="never holds pickled objects"):
        checkpoint.save(tmp_path / "x.npz", {"a": payload})


# ---------------------------------------------------------------------------------------------------------------
# Loading by name: subsets for transfer learning


def test_loading_a_subset_by_name_leaves_the_rest_alone(saved):
    path, _, _ = saved
    source = checkpoint.read(path).group("model")
    target = small_model(seed=5)
    target.replace("dense2", nn.Dense(4, name="head"))
    target.build((4,))
    before = target.get_weights()
    with pytest.raises(CheckpointError, match="'head/weight' is missing"):
        target.load_weights(path)
    loaded = target.load_weights(path, strict=False)
    assert loaded == ["dense1/weight", "dense1/bias", "batchnorm1/gamma", "batchnorm1/beta",
                      "batchnorm1/running_mean", "batchnorm1/running_var"]
    after = target.get_weights()
    for name in loaded:
        assert np.array_equal(after[name], source[name])
    assert np.array_equal(after["head/weight"], before["head/weight"])
    fresh = small_model(seed=6)
    assert fresh.load_weights(path, include=["dense1"]) == ["dense1/weight", "dense1/bias"]
    assert np.array_equal(fresh.get_weights()["dense1/weight"], source["dense1/weight"])
    assert not np.array_equal(fresh.get_weights()["dense2/weight"], source["dense2/weight"])
    with pytest.raises(CheckpointError, match="no variable is named 'conv9'"):
        fresh.load_weights(path, include="conv9")


# ---------------------------------------------------------------------------------------------------------------
# Training checkpoints


def make_trainer(optimizer=None, seed=0):
    model = nn.Sequential([nn.Dense(8, activation="relu"), nn.Dropout(0.2), nn.Dense(3)], seed=seed)
    return train.Trainer(model, optimizer or optim.Adam(0.01))


def data():
    rng = np.random.default_rng(0)
    return rng.normal(size=(40, 4)).astype("float32"), rng.integers(0, 3, size=40)


def training_state(trainer):
    return (trainer.model.get_weights(),
            {k: v.numpy() for k, v in trainer.optimizer.state_variables().items()},
            trainer.epoch, {k: p.rng.counter for k, p in trainer.programs().items()}, len(trainer.history))


def assert_same_state(a, b):
    assert_same_weights(a[0], b[0])
    assert_same_weights(a[1], b[1])
    assert a[2:] == b[2:]


def test_a_training_checkpoint_round_trips_every_piece_of_state(tmp_path):
    x, y = data()
    trainer = make_trainer()
    trainer.fit(x, y, epochs=2, batch_size=8, progress=False)
    trainer.save(tmp_path / "run.npz")
    other = make_trainer(seed=9)
    other.restore(tmp_path / "run.npz")
    assert_same_state(training_state(other), training_state(trainer))
    assert other.optimizer.steps_done() == 10 and other.epoch == 2
    assert other.history.history["loss"] == trainer.history.history["loss"]


def test_a_failed_restore_changes_nothing(tmp_path):
    x, y = data()
    donor = make_trainer()
    donor.fit(x, y, epochs=1, batch_size=8, progress=False)
    donor.save(tmp_path / "run.npz")
    trainer = make_trainer(seed=4)
    trainer.fit(x, y, epochs=2, batch_size=8, progress=False)
    before = training_state(trainer)

    sgd = make_trainer(optim.SGD(0.1, momentum=0.9))
    with pytest.raises(CheckpointError, match="written by a Adam optimizer"):
        sgd.restore(tmp_path / "run.npz")
    raw = bytearray((tmp_path / "run.npz").read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    (tmp_path / "bad.npz").write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match="bad.npz"):
        trainer.restore(tmp_path / "bad.npz")
    assert_same_state(training_state(trainer), before)
    wide = train.Trainer(nn.Sequential([nn.Dense(9, activation="relu"), nn.Dropout(0.2), nn.Dense(3)]),
                         optim.Adam(0.01))
    wide.fit(x, y, epochs=1, batch_size=8, progress=False)
    wide_before = training_state(wide)
    with pytest.raises(CheckpointError, match="'dense1/weight' has shape"):
        wide.restore(tmp_path / "run.npz")
    assert_same_state(training_state(wide), wide_before)
    small_model().save_weights(tmp_path / "weights.npz")
    with pytest.raises(CheckpointError, match="weights only"):
        trainer.restore(tmp_path / "weights.npz")


def test_a_saved_checkpoint_gets_the_permissions_of_an_ordinary_new_file(tmp_path):
    """The temporary file it is written to is private (mkstemp); the checkpoint must not stay so."""
    umask = os.umask(0o022)
    try:
        path = gn.checkpoint.save(tmp_path / "w.npz", {"a": np.zeros(3)})
    finally:
        os.umask(umask)
    assert os.stat(path).st_mode & 0o777 == 0o644
