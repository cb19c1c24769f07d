"""The world: the processes that train together, and the collective operations data-parallel training needs.

    rank, size = distributed.init()        # once per process (the other functions call it if you did not)

A process is one of two kinds of world:

    SingleProcess   not started by mpiexec: rank 0 of 1, and every collective returns its input. mpi4py is not
                    even imported, so a script written for `mpiexec -n N` runs unchanged as `python script.py`.
    MPIWorld        started by `mpiexec -n N python script.py`: MPI's COMM_WORLD through mpi4py (the `mpich`
                    wheel from PyPI brings MPI itself and `mpiexec`: pip install 'graphnet[distributed]').

The collectives, by their MPI names — each a function of every rank's argument, the same result on every rank:

    Allreduce(SUM)   y = Σ_r x_r                        gradients, batch statistics, the epoch's totals
    Bcast(root)      y = x_root                         the initial variables
    Allgatherv       [x_0, x_1, ..., x_{N-1}]            checking that the ranks agree (models, data, arguments)
    Barrier          nobody leaves before all arrived   a checkpoint is complete before anyone reads it

Faults. Every rank must make the same collective calls in the same order; a rank that stops making them would
leave the others waiting forever. So:

  * an uncaught exception on any rank prints its traceback and then aborts every rank (MPI_Abort), as
    `python -m mpi4py script.py` does;
  * a rank that dies (killed, crashed) makes mpiexec end the others;
  * every collective waits at most `timeout` seconds (init's argument, else GRAPHNET_DISTRIBUTED_TIMEOUT, else
    300), then raises DistributedError naming the operation — for a rank that hangs, or that caught its own
    error and went on. A process that leaves after such an error aborts the job rather than wait in MPI_Finalize.

The waiting is a loop over the nonblocking form of each collective (MPI_Iallreduce, ..., then MPI_Test), which is
also what makes MPI progress: for the first millisecond it tests without pause, as MPI's blocking calls do; up to
50 ms it yields the core between tests (sched_yield: the rank it waits for may need that core, on a busy machine);
then it sleeps 1 ms between tests (a long wait: another rank writes a checkpoint). A plain sleep from the start
would cost each step the scheduler's wake-up delay, milliseconds on a busy machine.
"""
import atexit
import json
import logging
import os
import sys
import time

import numpy as np

from ..errors import GraphnetError

# Environment variables that a launcher (MPICH's or Open MPI's mpiexec, a PMIx launcher, srun) gives each rank.
LAUNCHER_VARIABLES = ("PMI_RANK", "PMI_SIZE", "PMIX_RANK", "OMPI_COMM_WORLD_SIZE", "MPI_LOCALNRANKS")
DEFAULT_TIMEOUT = 300.0         # seconds a collective may wait for the other ranks
SPIN_SECONDS = 1e-3             # test without pause this long,
YIELD_SECONDS = 0.05            # then give the core to any other process between tests this long,
PAUSE_SECONDS = 1e-3            # then sleep this long between tests


class DistributedError(GraphnetError, RuntimeError):
    """The ranks of a distributed run disagree (models, data, arguments), or one stopped taking part."""


def started_by_mpiexec():
    """Whether a launcher started this process as a rank of a job (its variables are in the environment)."""
    return any(name in os.environ for name in LAUNCHER_VARIABLES)


class World:
    """What every world offers. `rank` counts from 0; rank 0 is the main rank (it logs and writes)."""
    rank, size = 0, 1

    @property
    def is_main(self):
        return self.rank == 0

    def describe(self):
        return f"rank {self.rank} of {self.size}"


class SingleProcess(World):
    """The world of a process not started by mpiexec: it is alone, so a collective's result is its own input."""
    timeout = DEFAULT_TIMEOUT

    def allreduce(self, send, receive, what, op="sum"):
        if receive is not send:
            np.copyto(receive, send)

    def broadcast(self, array, root, what):
        _check_root(root, self.size)

    def allgather(self, value, what):
        return [json.loads(json.dumps(value))]

    def barrier(self, what):
        pass

    def label(self):
        return "1 process: a copy"


class MPIWorld(World):
    """MPI's COMM_WORLD, every collective bounded by `timeout` seconds."""

    def __init__(self, timeout):
        from mpi4py import MPI
        self.MPI = MPI
        self.comm = MPI.COMM_WORLD
        self.rank, self.size = self.comm.Get_rank(), self.comm.Get_size()
        self.timeout = float(timeout)
        self.broken = None          # the DistributedError after which this rank must not wait in MPI_Finalize

    def label(self):
        return f"MPI_Allreduce, {self.size} ranks"

    # -- the collectives -----------------------------------------------------------------------------------------
    def allreduce(self, send, receive, what, op="sum"):
        """receive = op over the ranks of send: Σ_r send_r ('sum'), or the elementwise 'max' or 'min' (host arrays
        of one dtype and shape; receive may be send)."""
        source = self.MPI.IN_PLACE if receive is send else send
        operation = {"sum": self.MPI.SUM, "max": self.MPI.MAX, "min": self.MPI.MIN}[op]
        self._wait(self.comm.Iallreduce(source, receive, op=operation), f"the all-reduce of {what}")

    def broadcast(self, array, root, what):
        """array = rank root's array, on every rank (in place)."""
        _check_root(root, self.size)
        self._wait(self.comm.Ibcast(array, root=root), f"the broadcast of {what} from rank {root}")

    def allgather(self, value, what):
        """[value of rank 0, value of rank 1, ...] on every rank, for values JSON can write."""
        data = np.frombuffer(json.dumps(value).encode(), dtype=np.uint8)
        sizes = np.zeros(self.size, dtype=np.int64)
        self._wait(self.comm.Iallgather(np.array([data.size], dtype=np.int64), sizes), f"gathering {what}")
        gathered = np.empty(int(sizes.sum()), dtype=np.uint8)
        self._wait(self.comm.Iallgatherv(data, [gathered, sizes]), f"gathering {what}")
        ends = np.cumsum(sizes)
        return [json.loads(gathered[end - size:end].tobytes()) for size, end in zip(sizes, ends)]

    def barrier(self, what):
        self._wait(self.comm.Ibarrier(), f"the barrier after {what}")

    def _wait(self, request, what):
        """Test the request until it completes; after `timeout` seconds raise DistributedError."""
        started = time.monotonic()
        while not request.Test():
            waited = time.monotonic() - started
            if waited > self.timeout:
                self.broken = DistributedError(
                    f"{self.describe()}: {what} did not complete within {self.timeout:g} s: another rank stopped "
                    f"taking part — it raised an error, died, or hangs (its own messages say which). Every rank "
                    f"must run the same training; a rank whose step takes longer needs a larger timeout: "
                    f"distributed.init(timeout=...) or GRAPHNET_DISTRIBUTED_TIMEOUT")
                raise self.broken
            if waited > YIELD_SECONDS:
                time.sleep(PAUSE_SECONDS)
            elif waited > SPIN_SECONDS:
                os.sched_yield()

    # -- when a rank stops ---------------------------------------------------------------------------------------
    def abort(self, code=1):
        """End every rank of the job (MPI_Abort), this one last."""
        self.broken = None
        sys.stdout.flush()
        sys.stderr.flush()
        time.sleep(0.25)            # mpiexec forwards what this rank wrote last before it ends the job
        self.comm.Abort(code)
        os._exit(code)

    def install_fault_handlers(self):
        """An uncaught exception aborts every rank; a process leaving after a DistributedError aborts too."""
        previous = sys.excepthook

        def abort_on_uncaught(kind, value, traceback):
            previous(kind, value, traceback)
            sys.stderr.write(f"graphnet.distributed: {self.describe()} stopped on an uncaught {kind.__name__}; "
                             f"aborting all {self.size} ranks (MPI_Abort) so that none waits for it\n")
            self.abort(1)

        sys.excepthook = abort_on_uncaught

        def leave():
            if self.broken is not None:
                sys.stderr.write(f"graphnet.distributed: {self.describe()} leaves after '{self.broken}'; aborting "
                                 "the job rather than waiting for the other ranks in MPI_Finalize\n")
                self.abort(1)

        atexit.register(leave)        # runs before mpi4py's MPI_Finalize


def _check_root(root, size):
    if not (isinstance(root, (int, np.integer)) and 0 <= root < size):
        raise DistributedError(f"broadcast: root={root!r} is not a rank; the ranks are 0..{size - 1}")


class _MainRankOnly(logging.Filter):
    """On ranks other than 0, graphnet's news (INFO) is dropped: every rank would say the same. Warnings stay."""

    def filter(self, record):
        return record.levelno >= logging.WARNING


_world = None


def init(timeout=None):
    """Join the job this process belongs to, once; returns (rank, size).

    Under mpiexec: MPI through mpi4py, every collective bounded by `timeout` seconds (default:
    GRAPHNET_DISTRIBUTED_TIMEOUT, else 300), an uncaught exception on any rank aborting every rank, graphnet's
    INFO messages shown by rank 0 only, and the machine's cores shared among its ranks (share_the_cores). Otherwise: a single process, rank 0 of 1, without importing mpi4py.
    A later call returns the same (rank, size); a timeout given then replaces the earlier one."""
    global _world
    if timeout is None:
        timeout = os.environ.get("GRAPHNET_DISTRIBUTED_TIMEOUT", DEFAULT_TIMEOUT)
    try:
        timeout = float(timeout)
    except ValueError:
        raise DistributedError(f"init: the timeout must be a number of seconds, got {timeout!r}") from None
    if not timeout > 0:
        raise DistributedError(f"init: the timeout must be a positive number of seconds, got {timeout!r}")
    if _world is None:
        _world = _join(timeout)
    _world.timeout = timeout
    return _world.rank, _world.size


def _join(timeout):
    if not started_by_mpiexec():
        return SingleProcess()
    try:
        import mpi4py  # noqa: F401 — only to say clearly what is missing
    except ImportError:
        found = next(name for name in LAUNCHER_VARIABLES if name in os.environ)
        raise DistributedError(f"this process was started by mpiexec ({found} is set), but mpi4py is not "
                               "installed: pip install 'graphnet[distributed]' (mpi4py and the mpich wheel), and "
                               "start the job with that installation's mpiexec") from None
    world = MPIWorld(timeout)
    world.install_fault_handlers()
    if world.rank != 0:
        logging.getLogger("graphnet").addFilter(_MainRankOnly())
    share_the_cores()
    return world


def ranks_on_this_machine():
    """How many ranks the launcher started on this machine (MPICH's MPI_LOCALNRANKS, Open MPI's
    OMPI_COMM_WORLD_LOCAL_SIZE; 1 if it does not say)."""
    for name in ("MPI_LOCALNRANKS", "OMPI_COMM_WORLD_LOCAL_SIZE"):
        value = os.environ.get(name, "")
        if value.isdigit() and int(value) > 0:
            return int(value)
    return 1


def share_the_cores():
    """Give each of the k ranks on this machine 1/k of its cores for the cpu kernels' threads — unless
    OMP_NUM_THREADS says otherwise, or the launcher bound the rank to cores of its own. Two ranks of two threads
    each on two cores would fight over them (see the README: a busy machine)."""
    from .. import threads
    if os.environ.get("OMP_NUM_THREADS"):
        return
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if cores == (os.cpu_count() or cores):             # not bound: every rank here sees every core
        threads.set_num_threads(max(1, cores // ranks_on_this_machine()))


def world():
    """This process's world (joined by init() on first use)."""
    if _world is None:
        init()
    return _world
