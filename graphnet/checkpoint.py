"""Checkpoints: named arrays and a little state in one `.npz` file, written atomically, read without pickle.

A checkpoint is an ordinary NumPy `.npz` archive:

    model/conv1/weight, model/conv1/bias, ...     one array per model variable
    optimizer/step, optimizer/conv1/weight/m, ...  the optimizer's state (a full training checkpoint)
    __manifest__                                    a JSON text: the format and version, every array's shape,
                                                    dtype and SHA-256, and `state` (epoch, RNG counters, ...)

Safety, in the order it is enforced:

* Writing is atomic: the archive goes to a temporary file in the same folder, is flushed to disk, and then
  renamed over the target (`os.replace`), so a crash leaves either the old file or the new one, never half.
* Reading never runs code: `np.load(..., allow_pickle=False)` refuses object arrays.
* Reading checks everything before it returns: every array listed in the manifest is present, readable (the
  zip's CRC-32), of the listed shape and dtype, and hashes to the listed SHA-256.
* Loading into variables checks every pair (name, shape, dtype) before writing any, so a mismatched file
  changes nothing. Errors name the file and the first variable that does not match.
"""
import hashlib
import json
import os
import tempfile

import numpy as np

from .errors import GraphnetError
from .graph import format_shape

FORMAT = "graphnet-checkpoint"
VERSION = 1
MANIFEST = "__manifest__"


class CheckpointError(GraphnetError, ValueError):
    """A checkpoint cannot be written or read, or does not match the variables it is loaded into."""


def digest(array):
    """SHA-256 of the array's bytes in C order (the manifest's checksum)."""
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()


# ---------------------------------------------------------------------------------------------------------------
# Files: arrays + state <-> .npz

def save(path, arrays, state=None):
    """Write `arrays` ({name: array}) and `state` (JSON values) to `path`, atomically. Returns the path."""
    path = os.fspath(path)
    arrays = {name: np.asarray(value) for name, value in arrays.items()}
    entries = []
    for name, array in arrays.items():
        if not isinstance(name, str) or not name or name == MANIFEST:
            raise CheckpointError(f"checkpoint '{path}': {name!r} cannot name an array")
        if array.dtype.hasobject or array.dtype.kind not in "biuf":
            raise CheckpointError(f"checkpoint '{path}': array '{name}' has dtype {array.dtype}; only numbers "
                                  "are stored (a checkpoint never holds pickled objects)")
        entries.append({"name": name, "shape": list(array.shape), "dtype": array.dtype.str, "sha256": digest(array)})
    manifest = {"format": FORMAT, "version": VERSION, "arrays": entries, "state": state or {}}
    try:
        manifest_text = json.dumps(manifest)
    except (TypeError, ValueError) as error:
        raise CheckpointError(f"checkpoint '{path}': the state is not plain JSON data ({error})") from None
    directory = os.path.dirname(os.path.abspath(path))
    handle, temporary = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(handle, "wb") as file:
            np.savez(file, **arrays, **{MANIFEST: np.array(manifest_text)})
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise
    return path


class Checkpoint:
    """The validated content of a checkpoint file: `arrays` ({name: array}, in saved order) and `state`."""

    def __init__(self, path, arrays, state):
        self.path, self.arrays, self.state = path, arrays, state

    def group(self, prefix):
        """The arrays under `prefix/`, with the prefix removed: group('model') -> {'conv1/weight': ...}."""
        head = prefix + "/"
        return {name[len(head):]: a for name, a in self.arrays.items() if name.startswith(head)}

    def __repr__(self):
        return f"<Checkpoint '{self.path}': {len(self.arrays)} arrays, state keys {sorted(self.state)}>"


def read(path):
    """Read and fully validate a checkpoint; raise CheckpointError naming the file and the first bad array."""
    path = os.fspath(path)
    where = f"checkpoint '{path}'"
    if not os.path.exists(path):
        raise CheckpointError(f"{where}: no such file")
    try:
        archive = np.load(path, allow_pickle=False)
    except Exception as error:
        raise CheckpointError(f"{where} is not a readable .npz archive (truncated or corrupted?): {error}") from None
    if not hasattr(archive, "files"):
        raise CheckpointError(f"{where} holds a single .npy array, not a checkpoint archive")
    with archive:
        manifest = _read_manifest(archive, where)
        arrays = {}
        for entry in manifest["arrays"]:
            name = entry["name"]
            if name not in archive.files:
                raise CheckpointError(f"{where}: array '{name}' is listed in the manifest but missing from the "
                                      "archive (truncated or modified file?)")
            try:
                array = archive[name]
            except Exception as error:
                raise CheckpointError(f"{where}: array '{name}' cannot be read (corrupted?): {error}") from None
            if list(array.shape) != entry["shape"] or array.dtype.str != entry["dtype"]:
                raise CheckpointError(f"{where}: array '{name}' is {format_shape(array.shape)} {array.dtype} "
                                      f"but the manifest says {format_shape(tuple(entry['shape']))} "
                                      f"{np.dtype(entry['dtype'])} (corrupted or modified file)")
            if digest(array) != entry["sha256"]:
                raise CheckpointError(f"{where}: array '{name}' is corrupted: its SHA-256 does not match the "
                                      "manifest")
            arrays[name] = array
        unexpected = [f for f in archive.files if f != MANIFEST and f not in arrays]
        if unexpected:
            raise CheckpointError(f"{where}: array '{unexpected[0]}' is not in the manifest (the file was modified "
                                  "after it was written)")
    return Checkpoint(path, arrays, manifest["state"])


def _read_manifest(archive, where):
    if MANIFEST not in archive.files:
        raise CheckpointError(f"{where} has no {MANIFEST}: it is not a graphnet checkpoint (np.savez files are "
                              "not; save with graphnet.checkpoint.save or model.save_weights)")
    try:
        manifest = json.loads(str(archive[MANIFEST]))
    except Exception as error:
        raise CheckpointError(f"{where}: the manifest cannot be read (corrupted?): {error}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise CheckpointError(f"{where}: the manifest is not that of a graphnet checkpoint")
    if manifest.get("version") != VERSION:
        raise CheckpointError(f"{where}: format version {manifest.get('version')!r}; this graphnet reads "
                              f"version {VERSION}")
    if not isinstance(manifest.get("arrays"), list) or not isinstance(manifest.get("state"), dict):
        raise CheckpointError(f"{where}: the manifest is malformed")
    return manifest


# ---------------------------------------------------------------------------------------------------------------
# Variables <-> arrays, all or nothing

def values_of(variables):
    """{name: a copy of the variable's current value} for {name: variable}."""
    return {name: var.numpy() for name, var in variables.items()}


def included(name, include):
    """Whether `include` — None (everything), a predicate on the name, or names / layer prefixes ('conv1'
    covers conv1/weight and conv1/bias) — covers `name`."""
    if include is None:
        return True
    if callable(include):
        return bool(include(name))
    names = [include] if isinstance(include, str) else list(include)
    return any(name == wanted or name.startswith(wanted + "/") for wanted in names)


def select(variables, include):
    """The variables `include` covers; a name or prefix that covers none of them is an error."""
    if include is not None and not callable(include):
        for wanted in [include] if isinstance(include, str) else list(include):
            if not any(included(n, [wanted]) for n in variables):
                raise CheckpointError(f"include: no variable is named '{wanted}' or starts with '{wanted}/'; "
                                      f"the variables are {', '.join(variables) or 'none'}")
    return {n: v for n, v in variables.items() if included(n, include)}


def match(variables, values, where, strict=True):
    """Pair each variable with its new value after checking names, shapes and dtypes; write nothing.

    strict=True: the names must be the same on both sides. strict=False: only the common names are paired
    (at least one), and those must still agree in shape and dtype. Returns [(name, variable, array)]."""
    pairs = []
    for name, var in variables.items():
        if name not in values:
            if strict:
                have = ", ".join(list(values)[:8]) + (", ..." if len(values) > 8 else "")
                raise CheckpointError(f"{where}: variable '{name}' is missing (there are {len(values)}: {have}); "
                                      "nothing was loaded. Load the variables present with strict=False")
            continue
        array = np.asarray(values[name])
        if array.shape != var.shape:
            raise CheckpointError(f"{where}: variable '{name}' has shape {format_shape(array.shape)} there but "
                                  f"{format_shape(var.shape)} in the model; nothing was loaded")
        if array.dtype != var.dtype:
            raise CheckpointError(f"{where}: variable '{name}' is {array.dtype} there but {var.dtype} in the "
                                  "model; nothing was loaded")
        pairs.append((name, var, array))
    if strict:
        extra = [n for n in values if n not in variables]
        if extra:
            raise CheckpointError(f"{where}: variable '{extra[0]}' is not in the model; nothing was loaded. Load "
                                  "the variables the model has with strict=False (or choose them with include=)")
    elif not pairs:
        raise CheckpointError(f"{where}: no variable of the model is there (the model has "
                              f"{', '.join(list(variables)[:8])}; there are {', '.join(list(values)[:8])})")
    return pairs


def write(pairs):
    """Assign every matched value (after `match` has checked them all)."""
    for _, var, array in pairs:
        var.assign_value(array)
    return [name for name, _, _ in pairs]


def assign_values(variables, values, where="assign_values", strict=True):
    """Set variables from {name: array}, all or nothing; returns the names set."""
    return write(match(variables, values, where, strict))


def save_variables(path, variables, group="model", state=None):
    """Save {name: variable} under `group/` (e.g. model/conv1/weight)."""
    return save(path, {f"{group}/{name}": value for name, value in values_of(variables).items()}, state)


def load_variables(path, variables, group="model", strict=True, include=None):
    """Load the `group/` arrays of a checkpoint into {name: variable}, all or nothing; returns the names loaded.

    include picks a subset of the variables (names, layer prefixes or a predicate); with strict=False only the
    names present on both sides are loaded (transfer learning: a new head keeps its fresh values)."""
    checkpoint = read(path)
    wanted = select(variables, include)
    stored = {n: a for n, a in checkpoint.group(group).items() if included(n, include)}
    return write(match(wanted, stored, f"checkpoint '{checkpoint.path}'", strict))
