"""How many threads the cpu kernels use: `gn.set_num_threads(n)` and `gn.get_num_threads()`, like PyTorch's.

The default is OMP_NUM_THREADS when it is set (its first number), else every core this process may run on. The
count applies to every Python thread that runs a program: OpenMP keeps it per calling thread, so a run first
brings its thread's count up to date (`use_in_this_thread`, a few hundred nanoseconds when nothing changed).

Results are bit-for-bit the same from run to run at one thread count; a different count may change the order in
which a sum over a batch is taken, and so the last bits of a gradient.
"""
import os
import threading

from .errors import GraphError

_count = None
_generation = 0                 # bumped by set_num_threads; each Python thread remembers the one it applied
_applied = threading.local()


def _default_count():
    value = os.environ.get("OMP_NUM_THREADS", "").split(",")[0].strip()
    if value.isdigit() and int(value) > 0:
        return int(value)
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:       # not on Linux
        return os.cpu_count() or 1


def get_num_threads():
    """The number of threads graphnet's cpu kernels may use."""
    global _count
    if _count is None:
        _count = _default_count()
    return _count


def set_num_threads(n):
    """Let graphnet's cpu kernels use `n` threads (1 = none of OpenMP's); applies to every later run, from any
    Python thread. Like torch.set_num_threads."""
    global _count, _generation
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise GraphError(f"set_num_threads({n!r}): the thread count must be a whole number >= 1, e.g. "
                         f"gn.set_num_threads(1) to run on one core")
    _count = n
    _generation += 1


def use_in_this_thread():
    """Give the calling Python thread graphnet's thread count in the private OpenMP runtime (once per change)."""
    if getattr(_applied, "generation", None) == _generation:
        return
    from . import _ext
    if _ext.runtime is not None:
        _ext.runtime.omp_set_num_threads(get_num_threads())
    _applied.generation = _generation
