"""The `cpu` backend: compiled Cython kernels from graphnet/_ext (typed memoryviews, nogil, OpenMP, BLAS).

Every compiled module of graphnet/_ext that defines KERNELS is loaded; at module level it defines:
    KERNELS     {kernel name: fn(out, *inputs, **params)}            the kernels, called directly (no wrapper)
    SPECIALIZE  {kernel name: fn(params, in_shapes, out_shape, dtype) -> params}   optional: choose an algorithm
    WORKSPACE   {kernel name: fn(params, in_shapes, out_shape, dtype) -> nbytes}   optional: scratch memory
    FUSIONS     {(op name, op name, ...): fused kernel name}                      optional
    CAN_FUSE    {fused kernel name: fn(chain, shapes) -> bool}                    optional
A kernel's params may carry "algorithm"; the printed schedule shows it as cpu.conv2d[im2col+sgemm].
"""
from ... import _ext, threads
from ...distributed.collective import CPU_KERNELS as COLLECTIVE_KERNELS
from ...errors import GraphError
from ..base import Backend


NOT_BUILT = ("device 'cpu' needs graphnet's compiled kernels (graphnet/_ext), and {problem}. Build them with "
             "`pip install -e .` in the repository (a C compiler is needed), or run on device='reference'")


def _load():
    if _ext.LOAD_ERROR is not None:
        raise GraphError(NOT_BUILT.format(problem=f"one failed to load: {_ext.LOAD_ERROR}"))
    modules = [m for m in _ext.modules if hasattr(m, "KERNELS")]
    if not modules:
        raise GraphError(NOT_BUILT.format(problem=f"none is built in {_ext.__path__[0]}"))
    merged = {key: {} for key in ("KERNELS", "SPECIALIZE", "WORKSPACE", "FUSIONS", "CAN_FUSE")}
    for module in modules:
        for key, table in merged.items():
            table.update(getattr(module, key, {}))
    return merged


class CpuBackend(Backend):
    name = "cpu"

    def __init__(self):
        tables = _load()
        self.kernels = dict(tables["KERNELS"], **COLLECTIVE_KERNELS)   # allreduce_sum: distributed/collective.py
        self._specialize = tables["SPECIALIZE"]
        self._workspace = tables["WORKSPACE"]
        self.fusions = tables["FUSIONS"]
        self.fusion_rules = tables["CAN_FUSE"]

    def specialize(self, op_name, params, in_shapes, out_shape, dtype):
        rule = self._specialize.get(op_name)
        return rule(params, in_shapes, out_shape, dtype) if rule else params

    def workspace_nbytes(self, op_name, params, in_shapes, out_shape, dtype):
        rule = self._workspace.get(op_name)
        return rule(params, in_shapes, out_shape, dtype) if rule else 0

    def prepare_calling_thread(self):
        threads.use_in_this_thread()

    def kernel_label(self, op_name, params):
        algorithm = params.get("algorithm")
        return f"cpu.{op_name}" + (f"[{algorithm}]" if algorithm else "")
