"""allreduce_sum: the op that makes communication a step of the compiled schedule.

    y = Σ_r x_r        every rank gets the sum over the ranks r of their x (MPI_Allreduce with MPI_SUM)

Every rank runs the same program, so every rank reaches this step in the same order, with an x of the same shape.
As an op it has what every op has: a shape rule (y has x's shape), a cost, a kernel on every backend, and a
gradient. The gradient: rank r's y_r = Σ_s x_s enters the loss of every rank, and the loss of the whole job is
L = Σ_r L_r, so

    ∂L/∂x_s = Σ_r ∂L_r/∂y_r          — the same all-reduce, applied to dy

(which is how the backward pass of synchronized batch norm exchanges its sums: data_parallel.py).

The kernels (graphnet/backends/*/collective.py). MPI reads and writes host memory, so on every backend the
kernel is a call to the world's allreduce (graphnet/distributed/world.py) with host arrays: the `reference` and
`cpu` backends' buffers are host arrays already; the `cuda` backend copies x to the host, reduces, and copies the
sum back (a GPU-aware MPI could read device memory directly; this one does not). Where no other rank exists (a
single process) the kernel is a copy.
"""
from ..op import Op, numel
from ._util import apply, require_float, tensors


def world():
    """The processes training together (imported when first asked: graphnet.distributed imports the ops)."""
    from ..distributed.world import world
    return world()


class AllReduceSum(Op):
    name = "allreduce_sum"

    def infer_shape(self, in_shapes, attrs, ref_shapes):
        return in_shapes[0]

    def flops(self, in_shapes, out_shape, attrs):
        """(N − 1) additions per element, wherever the ranks do them."""
        return (world().size - 1) * numel(out_shape)

    def kernel_params(self, in_shapes, out_shape, attrs, ref_shapes):
        this_world = world()
        return {"world": this_world, "what": attrs["what"], "algorithm": this_world.label()}

    def describe(self, attrs):
        return f"Σ over {world().size} rank{'s' if world().size != 1 else ''}"

    def gradient(self, node, dy):
        return [allreduce_sum(dy, what=f"the gradient of {node.attrs['what']}", name="allreduce_sum_grad")]


def allreduce_sum(x, what=None, name=None):
    """Σ over the ranks of x, as a graph op (a step of the schedule). `what` names it in a timeout's message."""
    (x,) = tensors(x)
    require_float(x, "allreduce_sum")
    return apply(AllReduceSum(), [x], {"what": what or f"'{x.name}'"}, name=name)
