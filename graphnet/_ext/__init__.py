"""Cython kernels of the cpu backend (built by setup.py with OpenMP); each mirrors a NumPy reference kernel.

Importing this package loads graphnet's private OpenMP runtime (libgraphnet_gomp.so.1, a renamed copy of GNU
libgomp made by setup.py) with the settings chosen here, then every compiled kernel module, bound to that runtime:

- Threads that wait for work spin only briefly (about SPIN_SECONDS) and then sleep. libgomp's default spins for
  300,000 iterations (milliseconds on CPUs whose `pause` takes ~140 cycles): on an idle machine that saves a
  wake-up, but when other programs keep every core busy a spinning thread burns the time slice that the thread it
  waits for needs, and a LeNet-5 training step took 30x longer at 2 threads than at 1. Sleeping at once
  (OMP_WAIT_POLICY=passive) is safe under load but cost 40% on an idle machine (every parallel loop waits for a
  thread to wake up); a short spin keeps both (benchmarks/bench_contention.py measures it). libgomp counts its spin
  in iterations (GOMP_SPINCOUNT), each a `pause`, whose length varies tenfold between processors (11–13 ns on
  the Intel Xeon this project is measured on, ~50 ns on Skylake servers): `spin_count` times it (_pause.pyx) and asks
  for as many as last SPIN_SECONDS. A fixed 1,000 was 11–13 µs on the Xeon — shorter than the Python between two
  runs of a program (~15 µs), so every run's first parallel loop waited ~35 µs for a sleeping thread.
- The runtime is private, so PyTorch's own libgomp, loaded before or after graphnet, neither imposes its settings on
  graphnet nor receives graphnet's. The modules are loaded with RTLD_DEEPBIND so that their OpenMP calls bind to
  this runtime even when another libgomp's symbols are global (PyTorch loads its dependencies RTLD_GLOBAL).
- A user's own OMP_WAIT_POLICY or GOMP_SPINCOUNT is respected; the environment is put back as it was once the
  runtime has read it, so no other library sees a change.

LOAD_ERROR is None when every module loaded, else the ImportError that the cpu backend reports.
"""
import ctypes
import importlib
import os
import pkgutil
import sys

RUNTIME = "libgraphnet_gomp.so.1"
SPIN_SECONDS = 40e-6     # how long a waiting thread spins before it sleeps
SPIN_COUNTS = (100, 10000)   # the spin count asked for stays within these
DEFAULT_SPIN_COUNT = 1000    # where the spin-wait hint cannot be timed

runtime = None          # ctypes handle of the private OpenMP runtime
modules = []            # the compiled kernel modules
LOAD_ERROR = None


def spin_count(seconds=SPIN_SECONDS):
    """The GOMP_SPINCOUNT whose spin lasts about `seconds` on this processor, within SPIN_COUNTS."""
    try:
        from . import _pause
        per_pause = _pause.seconds_per_pause()
    except ImportError:
        per_pause = None
    if not per_pause:
        return DEFAULT_SPIN_COUNT
    return int(min(max(round(seconds / per_pause), SPIN_COUNTS[0]), SPIN_COUNTS[1]))


def _load_runtime():
    """Load the private libgomp with a short spin, unless the user chose a wait policy or spin count."""
    path = os.path.join(os.path.dirname(__file__), RUNTIME)
    user_chose = "OMP_WAIT_POLICY" in os.environ or "GOMP_SPINCOUNT" in os.environ
    if not user_chose:
        os.environ["GOMP_SPINCOUNT"] = str(spin_count())
    try:
        return ctypes.CDLL(path, mode=os.RTLD_LOCAL | os.RTLD_DEEPBIND)
    finally:
        if not user_chose:
            del os.environ["GOMP_SPINCOUNT"]


def _load_modules():
    flags = sys.getdlopenflags()
    sys.setdlopenflags(flags | os.RTLD_DEEPBIND)
    try:
        return [importlib.import_module(f"{__name__}.{info.name}") for info in pkgutil.iter_modules(__path__)
                if not info.name.startswith("_")]
    finally:
        sys.setdlopenflags(flags)


try:
    runtime = _load_runtime()
    modules = _load_modules()
except (ImportError, OSError) as error:
    LOAD_ERROR = ImportError(str(error))
