"""Backends: where kernels run. A backend knows no graph — it gets arrays, attributes and output buffers.

    reference   NumPy, in graphnet/backends/reference: the textbook every other backend is tested against
    cpu         Cython kernels from graphnet/_ext, in graphnet/backends/cpu
    cuda        Numba CUDA kernels, in graphnet/backends/cuda: everything on the GPU
    auto        cuda where it can run, else cpu where its kernels are built, else reference — said in one line
"""
from ..errors import GraphError
from ..messages import logger
from .base import Backend

_BACKENDS = {}


def register(name, factory):
    _BACKENDS[name] = factory


def get_backend(device):
    """The backend instance for `device` (one per name, so programs on one device share variable storage)."""
    if isinstance(device, Backend):
        return device
    if device == "auto":
        return get_backend(auto_device())
    if device not in _BACKENDS:
        raise GraphError(f"unknown device {device!r}; available: {', '.join(sorted(_BACKENDS))}")
    factory = _BACKENDS[device]
    if not isinstance(factory, Backend):
        _BACKENDS[device] = factory = factory()
    return factory


def available_devices():
    """The devices graphnet has a backend for. Whether one can run here shows when it is compiled for: `cuda`
    without a GPU is an error that says why; device="auto" picks the best one that runs, and says which."""
    return sorted(_BACKENDS)


_auto_choice = None


def auto_device():
    """The device "auto" stands for: cuda where it can run, else cpu where its kernels exist, else reference.

    Decided once per process, and said in one line with the reason."""
    global _auto_choice
    if _auto_choice is None:
        _auto_choice, reason = _choose_device()
        logger.info(f"device='auto' -> '{_auto_choice}' ({reason})")
    return _auto_choice


def _choose_device():
    from .cuda import cuda_status, simulated
    usable, why_not_cuda = cuda_status()
    if usable and simulated():
        usable, why_not_cuda = False, "only Numba's CUDA simulator is on (ask for device='cuda' to use it)"
    if usable and "cuda" in _BACKENDS:
        return "cuda", why_not_cuda
    if "cpu" in _BACKENDS:
        try:
            missing = set(unfused_ops(get_backend("reference"))) - set(get_backend("cpu").kernels)
        except Exception as error:                      # the compiled extension failed to load
            missing, failure = None, error
        if missing == set():
            return "cpu", f"no CUDA: {why_not_cuda}"
        why_not_cpu = (f"its kernels failed to load: {failure}" if missing is None
                       else f"it has no kernel yet for {len(missing)} ops, e.g. {sorted(missing)[0]}")
        return "reference", f"no CUDA: {why_not_cuda}; not cpu: {why_not_cpu}"
    return "reference", f"no CUDA: {why_not_cuda}"


def unfused_ops(backend):
    """The op classes a backend has kernels for, less the fused ones (a backend need not fuse)."""
    from ..ops.fused import Fused
    return [op for op in backend.kernels if not issubclass(op, Fused)]


def _reference():
    from .reference import ReferenceBackend
    return ReferenceBackend()


def _cpu():
    from .cpu import CpuBackend
    return CpuBackend()


def _cuda():
    from .cuda import CudaBackend
    return CudaBackend()


register("reference", _reference)
register("cpu", _cpu)
register("cuda", _cuda)
