# cython: language_level=3
"""How long the processor's spin-wait hint (`pause` on x86) takes: what one iteration of an OpenMP thread's
spin-wait costs, so that graphnet/_ext/__init__.py can ask for a spin of a given duration, not of a given count.

It varies tenfold between processors: 11–13 ns on the 2-core Intel Xeon this project is measured on, ~50 ns
(140 cycles) on Skylake server cores. This module is built without OpenMP and loaded before the OpenMP runtime,
which reads its spin count once, when it loads.
"""
from posix.time cimport CLOCK_MONOTONIC, clock_gettime, timespec

cdef extern from *:
    """
    #if defined(__x86_64__) || defined(__i386__)
    #include <immintrin.h>
    static void spin_hint(void) { _mm_pause(); }
    static const int HAS_SPIN_HINT = 1;
    #else
    static void spin_hint(void) {}
    static const int HAS_SPIN_HINT = 0;
    #endif
    """
    void spin_hint() nogil
    const int HAS_SPIN_HINT


def seconds_per_pause(count=20000, repeats=3):
    """The fastest of `repeats` timings of `count` spin-wait hints, per hint, in seconds (None where the processor
    has no such hint)."""
    cdef timespec start, stop
    cdef long i, n = count
    if not HAS_SPIN_HINT:
        return None
    best = None
    for _ in range(repeats):
        clock_gettime(CLOCK_MONOTONIC, &start)
        with nogil:
            for i in range(n):
                spin_hint()
        clock_gettime(CLOCK_MONOTONIC, &stop)
        seconds = ((stop.tv_sec - start.tv_sec) + (stop.tv_nsec - start.tv_nsec) * 1e-9) / n
        best = seconds if best is None else min(best, seconds)
    return best
