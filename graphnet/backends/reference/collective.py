"""allreduce_sum (graphnet/ops/collective.py): the sum over the ranks, by MPI on the host arrays."""
import numpy as np

from ...ops.collective import AllReduceSum


def allreduce_sum(out, x, *, world, what, algorithm=None):
    """out = Σ over the ranks of x: x and out are host arrays (the cpu backend runs this kernel too)."""
    world.allreduce(np.ascontiguousarray(x), out, what)


KERNELS = {AllReduceSum: allreduce_sum}
