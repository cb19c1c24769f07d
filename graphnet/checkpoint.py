"""Checkpoints: named arrays and a little state in one `.npz` file, written atomically, read without pickle.

A checkpoint is an ordinary NumPy `.npz` archive:

    model/conv1/weight, model/conv1/bias, ...     one array per model variable
    optimizer/step, optimizer/conv1/weight/m, ...  the optimizer's state (a full training checkpoint)
    __manifest__                                    a JSON text: the format and version, every array's shape,
                                                    dtype and SHA-256, and `state` (epoch, RNG counters, ...)

Safety, in the order it is enforced:

* Writing is atomic: the archive goes to a temporary file in the same folder
  (.<name>.pid<PID>@<host>.<random>.tmp), is flushed to disk, and then renamed over the target (`os.replace`), so
  a crash leaves either the old file or the new one, never half. A temporary left by a process that died mid-save
  (kill -9, power loss) is removed by the next save of the same target on the same machine.
* Reading never runs code: `np.load(..., allow_pickle=False)` refuses object arrays.
* Reading checks before it decompresses: the manifest (at most MAX_MANIFEST_BYTES) must have the right
  structure; loading into a model compares its names, shapes and dtypes with the model's variables; each
  array's own .npy header must agree with the manifest. So a small file that would inflate to gigabytes is
  refused having read only those few bytes.
* Reading checks everything before it returns: every array listed in the manifest is present, readable (the
  zip's CRC-32), of the listed shape and dtype, and hashes to the listed SHA-256.
* Loading into variables checks every pair (name, shape, dtype) before writing any, so a mismatched file
  changes nothing. Errors name the file and the first variable that does not match.
"""
import hashlib
import json
import os
import re
import socket
import tempfile

import numpy as np

from .errors import GraphnetError
from .graph import format_shape

FORMAT = "graphnet-checkpoint"
VERSION = 1
MANIFEST = "__manifest__"
MAX_MANIFEST_BYTES = 64 * 2 ** 20      # the manifest's JSON (array list, state, history), uncompressed


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
    return write_atomically(path, lambda file: np.savez(file, **arrays, **{MANIFEST: np.array(manifest_text)}))


def write_atomically(path, write):
    """Call write(file) on a temporary file beside `path`, flush it to disk, then rename it over `path`: the
    target is the old file or the whole new one, never a part. Stale temporaries of earlier, killed writes of the
    same target are removed first. Returns the path."""
    path = os.fspath(path)
    remove_stale_temporaries(path)
    handle, temporary = tempfile.mkstemp(prefix=f"{_temporary_prefix(path)}{os.getpid()}@{socket.gethostname()}.",
                                         suffix=".tmp", dir=os.path.dirname(os.path.abspath(path)))
    try:
        os.fchmod(handle, new_file_mode())            # mkstemp makes it private (0600); the target is an ordinary file
        with os.fdopen(handle, "wb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise
    return path


def new_file_mode():
    """The permissions an ordinary new file gets here: 0o666 less the process's umask (read from /proc, so that
    the umask is never changed, even for a moment, under other threads; 022 where /proc does not say)."""
    umask = 0o022
    try:
        with open("/proc/self/status") as status:
            umask = next(int(line.split()[1], 8) for line in status if line.startswith("Umask:"))
    except (OSError, StopIteration, ValueError):
        pass
    return 0o666 & ~umask


def _temporary_prefix(path):
    return f".{os.path.basename(path)}.pid"


def remove_stale_temporaries(path):
    """Delete the temporary files earlier saves of `path` on this machine left behind because their process died
    before the rename: .<name>.pid<PID>@<host>.<random>.tmp whose process PID no longer runs. A save in progress
    (its process alive, this one included) and another machine's (a shared folder) are never touched. Returns the
    paths removed."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    pattern = re.compile(re.escape(_temporary_prefix(path)) + r"(\d+)" + re.escape(f"@{socket.gethostname()}.")
                         + r"[a-z0-9_]+\.tmp")
    removed = []
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return removed
    for entry in entries:
        found = pattern.fullmatch(entry.name)
        if found and not _process_alive(int(found.group(1))):
            try:
                os.unlink(entry.path)
                removed.append(entry.path)
            except OSError:
                pass                    # gone already, or not ours to delete
    return removed


def _process_alive(pid):
    """Whether a process with this id runs on this machine (signal 0 checks without sending anything)."""
    if os.name != "posix":
        return True                     # no harmless probe elsewhere: never delete
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True                     # alive, another user's
    return True


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


def read(path, expect=None):
    """Read and fully validate a checkpoint; raise CheckpointError naming the file and the first bad array.

    expect(specs, state), if given, is called with the manifest's {name: (shape, dtype)} and state before any
    array is decompressed, and raises CheckpointError to refuse the file (loading into a model checks the names,
    shapes and dtypes against its variables there)."""
    path = os.fspath(path)
    where = f"checkpoint '{path}'"
    if not os.path.exists(path):
        raise CheckpointError(f"{where}: no such file")
    if os.path.isdir(path):
        raise CheckpointError(f"{where} is a folder, not a checkpoint file")
    try:
        archive = np.load(path, allow_pickle=False)
    except Exception as error:
        raise CheckpointError(f"{where} is not a readable .npz archive (truncated or corrupted?): {error}") from None
    if not hasattr(archive, "files"):
        raise CheckpointError(f"{where} holds a single .npy array, not a checkpoint archive")
    with archive:
        manifest = _read_manifest(archive, where)
        specs = {e["name"]: (tuple(e["shape"]), np.dtype(e["dtype"])) for e in manifest["arrays"]}
        if expect is not None:
            expect(specs, manifest["state"])
        arrays = {}
        for entry in manifest["arrays"]:
            name = entry["name"]
            if name not in archive.files:
                raise CheckpointError(f"{where}: array '{name}' is listed in the manifest but missing from the "
                                      "archive (truncated or modified file?)")
            shape, dtype = _stored_header(archive, name, where)
            if (shape, dtype) != specs[name]:
                raise CheckpointError(f"{where}: array '{name}' is {format_shape(shape)} {dtype} "
                                      f"but the manifest says {format_shape(tuple(entry['shape']))} "
                                      f"{np.dtype(entry['dtype'])} (corrupted or modified file)")
            try:
                array = archive[name]           # now known to hold exactly the manifest's shape and dtype
            except Exception as error:
                raise CheckpointError(f"{where}: array '{name}' cannot be read (corrupted?): {error}") from None
            if (array.shape, array.dtype) != specs[name]:
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


def _stored_header(archive, name, where):
    """(shape, dtype) from the .npy header of the archive's member `name`, read without decompressing its data."""
    try:
        with archive.zip.open(f"{name}.npy") as member:
            version = np.lib.format.read_magic(member)
            if version == (1, 0):
                shape, _, dtype = np.lib.format.read_array_header_1_0(member)
            elif version == (2, 0):
                shape, _, dtype = np.lib.format.read_array_header_2_0(member)
            else:
                raise ValueError(f".npy format version {version}")
    except Exception as error:
        raise CheckpointError(f"{where}: array '{name}' cannot be read (corrupted?): {error}") from None
    return tuple(shape), dtype


def _read_manifest(archive, where):
    if MANIFEST not in archive.files:
        raise CheckpointError(f"{where} has no {MANIFEST}: it is not a graphnet checkpoint (np.savez files are "
                              "not; save with graphnet.checkpoint.save or model.save_weights)")
    try:
        size = archive.zip.getinfo(f"{MANIFEST}.npy").file_size
    except Exception as error:
        raise CheckpointError(f"{where}: the manifest cannot be read (corrupted?): {error}") from None
    if size > MAX_MANIFEST_BYTES:
        raise CheckpointError(f"{where}: the manifest would take {size:,} bytes, more than the {MAX_MANIFEST_BYTES:,} "
                              "a checkpoint's may (a damaged or malicious file)")
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
        raise CheckpointError(f"{where}: the manifest is malformed: it needs a list 'arrays' and an object 'state'")
    names = set()
    for index, entry in enumerate(manifest["arrays"]):
        _check_entry(entry, index, where)
        if entry["name"] in names:
            raise CheckpointError(f"{where}: the manifest is malformed: array '{entry['name']}' is listed twice")
        names.add(entry["name"])
    return manifest


def _check_entry(entry, index, where):
    """One entry of the manifest's 'arrays': {"name": str, "shape": [int >= 0, ...], "dtype": str, "sha256": str}."""
    malformed = f"{where}: the manifest is malformed: entry {index} of 'arrays'"
    if not isinstance(entry, dict):
        raise CheckpointError(f"{malformed} is {type(entry).__name__}, not an object")
    missing = [k for k in ("name", "shape", "dtype", "sha256") if k not in entry]
    if missing:
        raise CheckpointError(f"{malformed} lacks {', '.join(missing)}")
    name, shape = entry["name"], entry["shape"]
    if not isinstance(name, str) or not name:
        raise CheckpointError(f"{malformed} has the name {name!r}, not a non-empty string")
    if not isinstance(shape, list) or not all(type(d) is int and d >= 0 for d in shape):
        raise CheckpointError(f"{malformed} ('{name}') has the shape {shape!r}, not a list of sizes >= 0")
    if not isinstance(entry["sha256"], str):
        raise CheckpointError(f"{malformed} ('{name}') has the checksum {entry['sha256']!r}, not a string")
    try:
        dtype = np.dtype(entry["dtype"]) if isinstance(entry["dtype"], str) else None
    except Exception:                   # TypeError: "data type not understood", and kin
        dtype = None
    if dtype is None or dtype.hasobject or dtype.kind not in "biuf":
        raise CheckpointError(f"{where}: array '{name}' cannot be read: the manifest gives it the dtype "
                              f"{entry['dtype']!r}; a checkpoint holds only numbers (booleans, integers, floats)")


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


def check_specs(variables, specs, where, strict=True):
    """Check that {name: (shape, dtype)} fits {name: variable}, without any array; return the names to load.

    strict=True: the names must be the same on both sides. strict=False: only the common names are paired
    (at least one), and those must still agree in shape and dtype."""
    names = []
    for name, var in variables.items():
        if name not in specs:
            if strict:
                have = ", ".join(list(specs)[:8]) + (", ..." if len(specs) > 8 else "")
                raise CheckpointError(f"{where}: variable '{name}' is missing (there are {len(specs)}: {have}); "
                                      "nothing was loaded. Load the variables present with strict=False")
            continue
        shape, dtype = specs[name]
        if tuple(shape) != var.shape:
            raise CheckpointError(f"{where}: variable '{name}' has shape {format_shape(tuple(shape))} there but "
                                  f"{format_shape(var.shape)} in the model; nothing was loaded")
        if np.dtype(dtype) != var.dtype:
            raise CheckpointError(f"{where}: variable '{name}' is {np.dtype(dtype)} there but {var.dtype} in the "
                                  "model; nothing was loaded")
        names.append(name)
    if strict:
        extra = [n for n in specs if n not in variables]
        if extra:
            raise CheckpointError(f"{where}: variable '{extra[0]}' is not in the model; nothing was loaded. Load "
                                  "the variables the model has with strict=False (or choose them with include=)")
    elif not names:
        raise CheckpointError(f"{where}: no variable of the model is there (the model has "
                              f"{', '.join(list(variables)[:8])}; there are {', '.join(list(specs)[:8])})")
    return names


def match(variables, values, where, strict=True):
    """Pair each variable with its new value after checking names, shapes and dtypes (check_specs); write
    nothing. Returns [(name, variable, array)]."""
    values = {name: np.asarray(value) for name, value in values.items()}
    names = check_specs(variables, {n: (a.shape, a.dtype) for n, a in values.items()}, where, strict)
    return [(name, variables[name], values[name]) for name in names]


def group_specs(specs, prefix):
    """The {name: (shape, dtype)} under `prefix/`, with the prefix removed (as Checkpoint.group does arrays)."""
    head = prefix + "/"
    return {name[len(head):]: spec for name, spec in specs.items() if name.startswith(head)}


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
    where = f"checkpoint '{os.fspath(path)}'"
    wanted = select(variables, include)

    def fits_the_model(specs, state):            # before any array is decompressed
        check_specs(wanted, {n: s for n, s in group_specs(specs, group).items() if included(n, include)}, where,
                    strict)

    checkpoint = read(path, expect=fits_the_model)
    stored = {n: a for n, a in checkpoint.group(group).items() if included(n, include)}
    return write(match(wanted, stored, where, strict))
