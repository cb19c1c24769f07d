"""The `reference` backend: every kernel in plain NumPy, written to be read.

Each kernel is `fn(out, *inputs, **params)` and writes its result into the preallocated `out`.
"""
from ..base import Backend
from . import activations, conv, elementwise, linalg, losses, lrn, pool, reduce, regularization, shape, state

_MODULES = (activations, conv, elementwise, linalg, losses, lrn, pool, reduce, regularization, shape, state)


class ReferenceBackend(Backend):
    name = "reference"
    kernels = {name: getattr(module, name) for module in _MODULES for name in module.KERNELS}
