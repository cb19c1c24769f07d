"""The `reference` backend: every kernel in plain NumPy, written to be read.

Each kernel is `fn(out, *inputs, **params)` and writes its result into the preallocated `out`. Its fused kernels
(fused.py) are the compositions the compiled backends' fused kernels are tested against; the reference backend
itself runs every op as its own step, as the textbook shows them.
"""
import sys

from ..base import Backend, kernel_modules


class ReferenceBackend(Backend):
    name = "reference"
    fuses = False

    def __init__(self):
        super().__init__(kernel_modules(sys.modules[__name__]))
