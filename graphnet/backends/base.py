"""The interface every backend implements: kernels by op name, and ownership of its buffers.

A compiled program asks its backend for one arena (a block of bytes sized by the memory plan), for views into it,
for variable storage, and for copies in (feeds) and out (fetches). A GPU backend keeps all of them on the device.
"""
import numpy as np

from ..errors import GraphError


class Backend:
    """Kernels are looked up by op name and called as `fn(out, *inputs, **params)`; they write into `out`.

    Hooks a backend may override, all called once per plan (at compile time, never per run):
      specialize(op, params, in_shapes, out_shape, dtype) -> params   choose an algorithm, precompute constants
      workspace_nbytes(...)                                             scratch bytes; passed as params["workspace"]
      kernel_label(op, params)                                          what the printed schedule shows
      fusions, fusion_rules                                             chains of ops one kernel runs as one step
    """
    name = None
    kernels = {}             # op name -> fn(out, *inputs, **params), writing into `out`
    reads_host_arrays = True  # kernels may read a fed NumPy array in place (a GPU backend copies it to the device)

    # (op name, op name, ...) -> fused kernel name. A chain fuses when each node's only reader is the next node,
    # which takes it as its first input — or the input an element (op name, slot) names; the fused kernel gets the
    # first node's inputs, then each later node's other inputs in order, and the first node's params:
    # fn(out, *first.inputs, *later_other_inputs, **first_params).
    fusions = {}
    fusion_rules = {}        # fused kernel name -> fn(chain, shapes) -> bool, where not every such chain qualifies

    def specialize(self, op_name, params, in_shapes, out_shape, dtype):
        return params

    def can_fuse(self, pattern, chain, shapes):
        """Whether this chain of nodes, matched by `pattern`, may run as the fused kernel (e.g. only a per-column
        bias add)."""
        rule = self.fusion_rules.get(self.fusions[pattern])
        return rule(chain, shapes) if rule else True

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
