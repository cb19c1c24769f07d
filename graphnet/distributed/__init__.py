"""graphnet.distributed: data-parallel training over MPI (mpi4py), in Horovod's terms.

    pip install 'graphnet[distributed]'                  # mpi4py and the mpich wheel (MPI itself, and mpiexec)
    mpiexec -n 2 python train.py                         # two ranks on this machine
    mpiexec -f hosts -n 8 python train.py                # eight ranks on the machines listed in `hosts`

    from graphnet import distributed, train
    rank, size = distributed.init()                      # (0, 1) when not started by mpiexec: runs unchanged
    trainer = train.Trainer(model, "adam", distributed=True)
    trainer.fit(x, y, batch_size=64, epochs=5)           # 64 = the global batch: 32 per rank on 2 ranks
    if distributed.is_main():
        print(trainer.history)                           # every rank's history holds the global numbers

What Trainer(..., distributed=True) does (data_parallel.py): every rank builds and compiles the same programs;
at the start of fit the ranks check that they agree (variables, data, arguments) and take rank 0's values; every
rank runs its shard of each global batch, and one all-reduce step of the compiled program sums the gradients
into the global batch's; batch norm uses the global batch's statistics; validation, logs and checkpoints are
for the whole job (the progress bar, CSV log and checkpoint files are written by rank 0 only).

The pieces, for a loop of your own:

    init(timeout=None)           join the job; (rank, size)
    rank(), size(), is_main()    this process's place (rank 0 is the main one)
    broadcast_variables(variables=None, root=0)   rank root's values everywhere, after checking names/shapes/dtypes
    allreduce(array, op="mean")  an array summed ('sum'), averaged ('mean'), 'max' or 'min' over the ranks
    barrier()                    wait until every rank gets here
    DistributedOptimizer(opt)    its gradients summed over the ranks by an all-reduce step of the program
    SyncBatchNorm                batch norm over the global batch
    DistributedError             the ranks disagree, or one stopped taking part (each collective has a timeout)
"""
import numpy as np

from ..ops.collective import AllReduceSum, allreduce_sum
from .data_parallel import (DistributedOptimizer, SyncBatchNorm, SyncBatchNorm1D, SyncBatchNorm2D,
                            broadcast_variables)
from .world import DistributedError, init, started_by_mpiexec, world

__all__ = ["init", "rank", "size", "is_main", "broadcast_variables", "allreduce", "barrier", "DistributedOptimizer",
           "SyncBatchNorm", "SyncBatchNorm1D", "SyncBatchNorm2D", "DistributedError", "AllReduceSum",
           "allreduce_sum", "started_by_mpiexec", "world"]

REDUCTIONS = ("sum", "mean", "max", "min")


def rank():
    """This process's rank, 0 .. size() − 1."""
    return world().rank


def size():
    """The number of ranks in the job (1 when not started by mpiexec)."""
    return world().size


def is_main():
    """Whether this is rank 0, the one that prints, logs and writes files."""
    return world().is_main


def barrier():
    """Wait until every rank has called barrier() (at most the timeout)."""
    world().barrier("distributed.barrier()")


def allreduce(array, op="mean"):
    """`op` over the ranks of `array` (a NumPy array or a number, of the same shape and dtype on every rank),
    returned as a new array on every rank: 'sum' Σ_r x_r, 'mean' Σ_r x_r / N (in floats), 'max' or 'min'
    (elementwise)."""
    if op not in REDUCTIONS:
        raise DistributedError(f"allreduce: op={op!r} is not one of {', '.join(map(repr, REDUCTIONS))}")
    value = np.array(array, order="C")
    if value.dtype.kind not in "iuf":
        raise DistributedError(f"allreduce: the array has dtype {value.dtype}; it reduces integers and floats")
    if op == "mean" and value.dtype.kind != "f":
        value = value.astype(np.float64)
    result = np.empty_like(value)
    world().allreduce(value, result, f"an array {value.shape} {value.dtype}", "sum" if op == "mean" else op)
    return result / size() if op == "mean" else result
