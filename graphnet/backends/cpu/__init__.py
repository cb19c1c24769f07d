"""The `cpu` backend: compiled Cython kernels from graphnet/_ext (typed memoryviews, nogil, OpenMP, BLAS).

Every compiled module of graphnet/_ext that defines KERNELS is loaded (tables keyed by op class: see
graphnet/backends/base.py); its kernels are called directly, with no wrapper. Kernels with no arithmetic of
graphnet's to compile (the collectives, which hand host arrays to MPI) are Python modules of this package.
"""
import sys

from ... import _ext, threads
from ...errors import GraphError
from ..base import Backend, kernel_modules


NOT_BUILT = ("device 'cpu' needs graphnet's compiled kernels (graphnet/_ext), and {problem}. Build them with "
             "`pip install -e .` in the repository (a C compiler is needed), or run on device='reference'")


def _kernel_modules():
    if _ext.LOAD_ERROR is not None:
        raise GraphError(NOT_BUILT.format(problem=f"one failed to load: {_ext.LOAD_ERROR}"))
    modules = [m for m in _ext.modules if hasattr(m, "KERNELS")]
    if not modules:
        raise GraphError(NOT_BUILT.format(problem=f"none is built in {_ext.__path__[0]}"))
    return modules


class CpuBackend(Backend):
    name = "cpu"

    def __init__(self):
        super().__init__(_kernel_modules() + kernel_modules(sys.modules[__name__]))

    def prepare_calling_thread(self):
        threads.use_in_this_thread()
