"""allreduce_sum on the cpu backend: the reference's kernel, since MPI does the arithmetic on host arrays (there
is nothing of graphnet's to compile)."""
from ...ops.collective import AllReduceSum
from ..reference.collective import allreduce_sum

KERNELS = {AllReduceSum: allreduce_sum}
