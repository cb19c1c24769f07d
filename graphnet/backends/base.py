"""The interface every backend implements: kernels by op name, and ownership of its buffers.

A compiled program asks its backend for one arena (a block of bytes sized by the memory plan), for views into it,
for variable storage, and for copies in (feeds) and out (fetches). A GPU backend keeps all of them on the device.
"""
import numpy as np

from ..errors import GraphError


class Backend:
    name = None
    kernels = {}             # op name -> fn(out, *inputs, **params), writing into `out`

    def kernel(self, op_name):
        try:
            return self.kernels[op_name]
        except KeyError:
            raise GraphError(f"device '{self.name}' has no kernel for op '{op_name}'") from None

    def kernel_label(self, op_name, params):
        """What the printed schedule shows as the kernel: which implementation was chosen for this step."""
        return f"{self.name}.{op_name}"

    def workspace_nbytes(self, op_name, params, in_shapes, out_shape, dtype):
        """Scratch bytes a kernel needs during its step (im2col columns, ...); the memory plan provides them."""
        return 0

    # Buffers. Host backends use NumPy arrays; a device backend overrides all five.
    def allocate(self, nbytes):
        return np.empty(nbytes, dtype=np.uint8)

    def view(self, arena, offset, shape, dtype):
        dtype = np.dtype(dtype)
        count = int(np.prod(shape, dtype=np.int64))
        return arena[offset: offset + count * dtype.itemsize].view(dtype).reshape(shape)

    def from_host(self, array):
        return np.array(array, copy=True, order="C")

    def copy_in(self, buffer, array):
        np.copyto(buffer, array, casting="unsafe")

    def to_host(self, buffer):
        return np.array(buffer, copy=True)
