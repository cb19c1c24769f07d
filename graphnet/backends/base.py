"""The interface every backend implements: kernels by op class, and ownership of its buffers.

A compiled program asks its backend for one arena (a block of bytes sized by the memory plan), for views into it,
for variable storage, and for copies in (feeds) and out (fetches). A GPU backend keeps all of them on the device.

Kernels come from kernel modules, one per family of ops (activations, conv, ...) on every backend; each defines
at module level, keyed by op class:
    KERNELS     {op class: fn(out, *inputs, **params)}                     what the schedule calls; writes into out
    SPECIALIZE  {op class: fn(params, in_shapes, out_shape, dtype) -> params}   optional: choose an algorithm
    WORKSPACE   {op class: fn(params, in_shapes, out_shape, dtype) -> nbytes}   optional: scratch memory
A kernel's params may carry "algorithm"; the printed schedule shows it, as in cpu.conv2d[im2col+sgemm].
"""
import importlib
import pkgutil

import numpy as np

from ..errors import GraphError


def kernel_modules(package):
    """The modules of a kernel package that define KERNELS, imported."""
    modules = [importlib.import_module(f"{package.__name__}.{info.name}")
               for info in pkgutil.iter_modules(package.__path__)]
    return [m for m in modules if hasattr(m, "KERNELS")]


class Backend:
    """Kernels are looked up by op class and called as `fn(out, *inputs, **params)`; they write into `out`.

    Hooks, all called once per plan (at compile time, never per run):
      specialize(op class, params, in_shapes, out_shape, dtype) -> params   choose an algorithm, precompute
      workspace_nbytes(...)                                                  scratch bytes: params["workspace"]
      kernel_label(op class, params)                                         what the printed schedule shows
    """
    name = None
    # kernels may read a fed NumPy array in place, and write a fetched value straight into the NumPy array run()
    # returns (a GPU backend copies both ways)
    reads_host_arrays = True
    fuses = True              # chains of ops run as the fused ops (graphnet/ops/fused.py) it has kernels for

    def __init__(self, modules):
        self.kernels, self._specialize, self._workspace = {}, {}, {}
        self.kernel_modules = {}      # op class -> the name of the module that registered its kernel
        for module in modules:
            self.kernels.update(module.KERNELS)
            self.kernel_modules.update(dict.fromkeys(module.KERNELS, module.__name__))
            self._specialize.update(getattr(module, "SPECIALIZE", {}))
            self._workspace.update(getattr(module, "WORKSPACE", {}))

    def has_kernel(self, op_class):
        return op_class in self.kernels

    def kernel(self, op_class):
        try:
            return self.kernels[op_class]
        except KeyError:
            raise GraphError(f"device '{self.name}' has no kernel for op '{op_class.name}'") from None

    def specialize(self, op_class, params, in_shapes, out_shape, dtype):
        rule = self._specialize.get(op_class)
        return rule(params, in_shapes, out_shape, dtype) if rule else params

    def workspace_nbytes(self, op_class, params, in_shapes, out_shape, dtype):
        """Scratch bytes a kernel needs during its step (im2col columns, ...); the memory plan provides them."""
        rule = self._workspace.get(op_class)
        return rule(params, in_shapes, out_shape, dtype) if rule else 0

    def kernel_label(self, op_class, params):
        """What the printed schedule shows as the kernel: which implementation was chosen for this step."""
        algorithm = params.get("algorithm")
        return f"{self.name}.{op_class.name}" + (f"[{algorithm}]" if algorithm else "")

    # Buffers. Host backends use NumPy arrays; a device backend overrides all five.
    def allocate(self, nbytes):
        return np.empty(nbytes, dtype=np.uint8)

    def view(self, arena, offset, shape, dtype):
        dtype = np.dtype(dtype)
        count = int(np.prod(shape, dtype=np.int64))
        return arena[offset: offset + count * dtype.itemsize].view(dtype).reshape(shape)

    def reshape(self, buffer, shape):
        """A view of `buffer` with a new shape (the buffer is contiguous)."""
        return buffer.reshape(shape)

    def from_host(self, array):
        return np.array(array, copy=True, order="C")

    def copy_in(self, buffer, array):
        np.copyto(buffer, array, casting="unsafe")

    def to_host(self, buffer):
        return np.array(buffer, copy=True)

    def prepare_calling_thread(self):
        """Called at the start of every run, in the thread that runs it (the cpu backend sets that thread's OpenMP
        thread count there)."""

    def synchronize(self):
        """Wait until every kernel launched so far has finished (a GPU runs them asynchronously); used to time
        steps. The host backends run each kernel to completion when it is called."""
