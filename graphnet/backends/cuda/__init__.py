"""The `cuda` backend: Numba CUDA kernels (the modules of this package), with every buffer on the GPU.

The arena of the memory plan is one device allocation made when a plan is made; every value of the schedule is a
view into it, variables and constants keep their own device storage (VariableState), feeds are copied in and
fetches copied out — nothing else crosses the bus while a program runs. Kernels are launched on the default
stream, in schedule order; copying a fetch out waits for them.

Under Numba's CUDA simulator (NUMBA_ENABLE_CUDASIM=1, set before Numba is first imported) the same code runs on the
CPU, thread by thread: slow, but it lets the kernels be tested on a machine without a GPU.

The kernels, one module per family of ops (kernel tables keyed by op class: see graphnet/backends/base.py):

    elementwise    arithmetic with broadcasting           pointwise     the formulas' ops (relu, gelu, clip, ...)
    activations    softmax, and the ReLU of fused epilogues
    reduce         sum, mean, max and their adjoints      shape         reshape, transpose, concat, slicing, assign
    gemm           the tiled matrix-product kernel        linalg        matmul on it (and the fused dense layers)
    conv           convolution as implicit GEMMs          pool          max and average pooling
    lrn            local response normalization           losses        mean losses and their gradients
    regularization dropout, batch norm                    collective    the sum over the ranks (through the host)
    launch         grid sizes and launches bound once     layout        strides, broadcasting, merging axes
    registry       every device kernel with its argument types (for the PTX build check: ptx_check, sass_report)
"""
import ctypes.util
import importlib.util
import sys

import numpy as np

from ...errors import GraphError
from ..base import Backend, kernel_modules


def simulated():
    """Whether Numba's CUDA simulator stands in for the GPU (it is chosen when Numba is first imported)."""
    if importlib.util.find_spec("numba") is None:
        return False
    import numba
    return bool(numba.config.ENABLE_CUDASIM)


def cuda_status():
    """(usable, reason): whether the cuda backend can run here, and in words why (not)."""
    if importlib.util.find_spec("numba") is None or importlib.util.find_spec("numba_cuda") is None:
        return False, "numba-cuda is not installed (pip install 'graphnet[cuda]'; from a clone: pip install -e '.[cuda]')"
    if simulated():
        return True, "Numba's CUDA simulator (NUMBA_ENABLE_CUDASIM=1): correct but slow"
    if ctypes.util.find_library("cuda") is None and not _loads("libcuda.so.1"):
        return False, "the NVIDIA driver (libcuda) is not installed"
    from numba import cuda
    try:
        if not cuda.is_available():
            return False, "no NVIDIA GPU was found (the driver loads, but sees no device)"
        device = cuda.get_current_device()
    except Exception as error:          # the driver can fail in many ways; say how
        return False, f"the CUDA driver failed: {error}"
    name = device.name.decode() if isinstance(device.name, bytes) else device.name
    major, minor = device.compute_capability
    return True, f"{name}, compute capability {major}.{minor}"


def _loads(library):
    try:
        ctypes.CDLL(library)
        return True
    except OSError:
        return False


class CudaBackend(Backend):
    name = "cuda"
    reads_host_arrays = False       # feeds are copied to the device

    def __init__(self):
        usable, reason = cuda_status()
        if not usable:
            raise GraphError(f"device 'cuda' cannot run here: {reason}. Use device='cpu' or device='reference', "
                             "or device='auto' to pick what runs")
        self.description = reason
        from numba import cuda
        from .launch import Bound
        from .losses import check_labels, labels_of
        super().__init__(kernel_modules(sys.modules[__name__]))
        self._cuda = cuda
        self._bound = Bound
        self._labels_of, self._check_labels = labels_of, check_labels

    # -- compile-time hooks ----------------------------------------------------------------------------------
    def specialize(self, op_class, params, in_shapes, out_shape, dtype):
        """The op's own choice of algorithm, plus `bound`: where the step keeps its launches between runs."""
        params = dict(super().specialize(op_class, params, in_shapes, out_shape, dtype))
        params["bound"] = self._bound()
        return params

    # -- buffers, all on the device --------------------------------------------------------------------------
    def allocate(self, nbytes):
        return self._cuda.device_array(int(nbytes), dtype=np.uint8)

    def view(self, arena, offset, shape, dtype):
        dtype = np.dtype(dtype)
        count = int(np.prod(shape, dtype=np.int64))
        return arena[offset: offset + count * dtype.itemsize].view(dtype).reshape(tuple(shape))

    def reshape(self, buffer, shape):
        return buffer.reshape(tuple(shape))

    def from_host(self, array):
        return self._cuda.to_device(np.ascontiguousarray(array))

    def copy_in(self, buffer, array):
        """Copy a feed to the device, converting it to the buffer's dtype. Labels read by a cross-entropy loss
        are checked here, on the host, so the kernels never need to report back."""
        host = np.ascontiguousarray(np.asarray(array).astype(buffer.dtype, copy=False)).reshape(buffer.shape)
        classes = self._labels_of(buffer)
        if classes is not None:
            self._check_labels(host, classes)
        if host.size:                                 # an empty batch has nothing to copy (and Numba refuses it)
            buffer.copy_to_device(host)

    def to_host(self, buffer):
        if buffer.size == 0:
            return np.empty(tuple(int(d) for d in buffer.shape), dtype=buffer.dtype)
        return buffer.copy_to_host()

    def synchronize(self):
        self._cuda.synchronize()
