"""Backends: where kernels run. A backend knows no graph — it gets arrays, attributes and output buffers.

    reference   NumPy, in graphnet/backends/reference: the textbook every other backend is tested against
    cpu         Cython kernels from graphnet/_ext, in graphnet/backends/cpu
"""
from ..errors import GraphError
from .base import Backend

_BACKENDS = {}


def register(name, factory):
    _BACKENDS[name] = factory


def get_backend(device):
    """The backend instance for `device` (one per name, so programs on one device share variable storage)."""
    if isinstance(device, Backend):
        return device
    if device not in _BACKENDS:
        raise GraphError(f"unknown device {device!r}; available: {', '.join(sorted(_BACKENDS))}")
    factory = _BACKENDS[device]
    if not isinstance(factory, Backend):
        _BACKENDS[device] = factory = factory()
    return factory


def available_devices():
    return sorted(_BACKENDS)


def _reference():
    from .reference import ReferenceBackend
    return ReferenceBackend()


def _cpu():
    from .cpu import CpuBackend
    return CpuBackend()


register("reference", _reference)
register("cpu", _cpu)
