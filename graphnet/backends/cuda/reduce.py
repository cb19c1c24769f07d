"""Reductions (sum, mean, max over any axes), their adjoints (broadcast_to, max_grad) and sum_to.

Reducing x over `axes` splits each position of x into a kept part j (the output element) and a reduced part r:

    out[j] = scale · ⊕_r x[kept_offset(j) + reduced_offset(r)]          ⊕ = + (sum, mean) or max

with both offsets computed from strides (layout.py). Two ways to run it, chosen at compile time per step:

    per-thread   one thread per output j, looping over r. Few elements per output, or many outputs whose kept
                 axis is the contiguous one (bias gradients of a dense layer): neighbouring threads read
                 neighbouring addresses.
    per-block    one block of 256 threads per output (or `splits` blocks, each taking a slice of r): threads stride
                 through r, then combine their partial results in shared memory by halving (a tree). With splits > 1
                 each block writes a partial result to a float64 workspace and a second kernel combines them per
                 output — a deterministic order, no atomics.

Partial sums are float64 whatever the input dtype.
"""
import math
from dataclasses import dataclass

import numpy as np
from numba import cuda, float64, types

from .launch import BLOCK, BoundLaunch, flat, grid_for, step_kernel, shape_of
from .layout import MAX_DIMS, broadcast_strides, contiguous_strides, numel, reduction_layout, strided_layout
from .registry import register_generic
from ...ops.reduce import BroadcastTo, Max, MaxGrad, Mean, Sum
from ...ops.elementwise import SumTo

ELEMENTS_PER_SPLIT = 8192      # a block of a split reduction takes about this many elements
MAX_SPLIT_BLOCKS = 256         # blocks of all outputs together, when splitting


@cuda.jit(device=True)
def offset_of(index, sizes, strides):
    """Σ_k c_k · strides_k, where (c_k) is `index` written row-major over `sizes`."""
    rest, offset = index, 0
    for k in range(MAX_DIMS - 1, -1, -1):
        if sizes[k] > 1:
            offset += (rest % sizes[k]) * strides[k]
            rest //= sizes[k]
    return offset


@cuda.jit(device=True)
def add(acc, v):
    return acc + v


@cuda.jit(device=True)
def keep_max(acc, v):
    """max, with NaN winning as in np.max."""
    if v > acc or v != v:
        return v
    return acc


@cuda.jit(device=True)
def block_sum(partial, t, value):
    """The sum of `value` over the block's threads, returned to every thread (tree in shared memory)."""
    partial[t] = value
    cuda.syncthreads()
    half = BLOCK // 2
    while half > 0:
        if t < half:
            partial[t] += partial[t + half]
        cuda.syncthreads()
        half //= 2
    total = partial[0]
    cuda.syncthreads()
    return total


def reduction_kernels(combine, identity):
    """The three kernels of one reduction ⊕ with identity element `identity`."""

    @cuda.jit
    def per_thread(out, x, scale, n_out, n_reduced, kept_sizes, kept_strides, reduced_sizes, reduced_strides):
        for j in range(cuda.grid(1), n_out, cuda.gridsize(1)):
            base = offset_of(j, kept_sizes, kept_strides)
            acc = identity
            for r in range(n_reduced):
                acc = combine(acc, x[base + offset_of(r, reduced_sizes, reduced_strides)])
            out[j] = acc * scale

    @cuda.jit
    def per_block(dest, x, scale, n_reduced, splits, kept_sizes, kept_strides, reduced_sizes, reduced_strides):
        """Block (j, s) reduces slice s of output j's elements into dest[j·splits + s]."""
        partial = cuda.shared.array(BLOCK, float64)
        j, s, t = cuda.blockIdx.x, cuda.blockIdx.y, cuda.threadIdx.x
        chunk = (n_reduced + splits - 1) // splits
        start = s * chunk
        stop = min(n_reduced, start + chunk)
        base = offset_of(j, kept_sizes, kept_strides)
        acc = identity
        for r in range(start + t, stop, BLOCK):
            acc = combine(acc, x[base + offset_of(r, reduced_sizes, reduced_strides)])
        partial[t] = acc
        cuda.syncthreads()
        half = BLOCK // 2
        while half > 0:
            if t < half:
                partial[t] = combine(partial[t], partial[t + half])
            cuda.syncthreads()
            half //= 2
        if t == 0:
            dest[j * splits + s] = partial[0] * scale

    @cuda.jit
    def combine_splits(out, partials, scale, n_out, splits):
        for j in range(cuda.grid(1), n_out, cuda.gridsize(1)):
            acc = identity
            for s in range(splits):
                acc = combine(acc, partials[j * splits + s])
            out[j] = acc * scale

    return per_thread, per_block, combine_splits


SUM_KERNELS = reduction_kernels(add, 0.0)
MAX_KERNELS = reduction_kernels(keep_max, -math.inf)

_INDEX = types.UniTuple(types.int64, MAX_DIMS)
WHY_FLOAT64 = {"sum": "partial sums accumulate in float64 (see the module docstring)",
               "max": "the reduction template's float64 partials and scale; exact for a max (every float32 is a "
                      "float64)"}
for _name, (_thread, _block, _combine) in (("sum", SUM_KERNELS), ("max", MAX_KERNELS)):
    register_generic(f"{_name}.per_thread", _thread,
                     lambda f: (f[::1], f[::1], types.float64, types.int64, types.int64) + (_INDEX,) * 4,
                     float64=WHY_FLOAT64[_name])
    register_generic(f"{_name}.per_block", _block,
                     lambda f: (types.float64[::1], f[::1], types.float64, types.int64, types.int64) + (_INDEX,) * 4,
                     float64=WHY_FLOAT64[_name])
    register_generic(f"{_name}.combine_splits", _combine,
                     lambda f: (f[::1], types.float64[::1], types.float64, types.int64, types.int64),
                     float64=WHY_FLOAT64[_name])


# ---------------------------------------------------------------------------------------------------------------
# the plan of one reduction, made at compile time

@dataclass
class ReductionPlan:
    algorithm: str          # "per-thread" or "per-block"
    splits: int             # blocks per output (per-block only)
    n_out: int
    n_reduced: int
    kept: tuple             # (sizes, strides)
    reduced: tuple

    @property
    def workspace_nbytes(self):
        return self.n_out * self.splits * 8 if self.splits > 1 else 0

    @property
    def label(self):
        return self.algorithm + (f"x{self.splits}" if self.splits > 1 else "")


def plan_reduction(shape, axes):
    shape = tuple(shape)
    kept, reduced = reduction_layout(shape, axes)
    n_out = numel([shape[a] for a in range(len(shape)) if a not in axes])
    n_reduced = numel([shape[a] for a in axes])
    kept_inner_stride = next((s for size, s in zip(reversed(kept[0]), reversed(kept[1])) if size > 1), 0)
    if n_reduced <= 16 or (kept_inner_stride == 1 and n_out >= 1024):
        return ReductionPlan("per-thread", 1, n_out, n_reduced, kept, reduced)
    splits = max(1, min(math.ceil(n_reduced / ELEMENTS_PER_SPLIT), MAX_SPLIT_BLOCKS // max(n_out, 1)))
    return ReductionPlan("per-block", splits, n_out, n_reduced, kept, reduced)


def workspace_array(workspace, count):
    """The first `count` float64 of a step's workspace (or a fresh device array outside a compiled program)."""
    if workspace is None:
        return cuda.device_array(count, dtype=np.float64)
    return workspace[:count * 8].view(np.float64)


def reduction_launches(kernels, out, x, plan, scale, workspace):
    per_thread, per_block, combine_splits = kernels
    out, x = flat(out), flat(x)
    geometry = [*plan.kept, *plan.reduced]
    if plan.algorithm == "per-thread":
        return [BoundLaunch(per_thread, grid_for(plan.n_out), BLOCK,
                            [out, x, float(scale), plan.n_out, plan.n_reduced, *geometry])]
    if plan.splits == 1:
        return [BoundLaunch(per_block, (plan.n_out, 1), BLOCK,
                            [out, x, float(scale), plan.n_reduced, 1, *geometry])]
    partials = workspace_array(workspace, plan.n_out * plan.splits)
    return [BoundLaunch(per_block, (plan.n_out, plan.splits), BLOCK,
                        [partials, x, 1.0, plan.n_reduced, plan.splits, *geometry]),
            BoundLaunch(combine_splits, grid_for(plan.n_out), BLOCK,
                        [out, partials, float(scale), plan.n_out, plan.splits])]


# ---------------------------------------------------------------------------------------------------------------
# the ops

def specialize_reduction(params, in_shapes, out_shape, dtype):
    plan = plan_reduction(in_shapes[0], params["axes"])
    return dict(params, plan=plan, algorithm=plan.label)


def reduction_workspace(params, in_shapes, out_shape, dtype):
    return params["plan"].workspace_nbytes


@step_kernel
def reduce_sum(out, x, *, axes, keepdims, plan=None, algorithm=None, workspace=None):
    """out = Σ over `axes` of x"""
    plan = plan or plan_reduction(shape_of(x), axes)
    return reduction_launches(SUM_KERNELS, out, x, plan, 1.0, workspace)


@step_kernel
def reduce_mean(out, x, *, axes, keepdims, plan=None, algorithm=None, workspace=None):
    """out = (Σ over `axes` of x) / (number of elements summed)"""
    plan = plan or plan_reduction(shape_of(x), axes)
    return reduction_launches(SUM_KERNELS, out, x, plan, 1.0 / max(plan.n_reduced, 1), workspace)


@step_kernel
def reduce_max(out, x, *, axes, keepdims, plan=None, algorithm=None, workspace=None):
    """out = max over `axes` of x"""
    plan = plan or plan_reduction(shape_of(x), axes)
    return reduction_launches(MAX_KERNELS, out, x, plan, 1.0, workspace)


@step_kernel
def sum_to(out, dy, *, axes, plan=None, algorithm=None, workspace=None):
    """Σ of dy over the axes it was broadcast along: the adjoint of broadcasting."""
    plan = plan or plan_reduction(shape_of(dy), axes)
    return reduction_launches(SUM_KERNELS, out, dy, plan, 1.0, workspace)


@cuda.jit(device=True)
def is_max(v, m):
    """v is where the max m came from: equal to it, or NaN like it (a NaN max's gradient goes to the NaNs)."""
    return v == m or (v != v and m != m)


@cuda.jit
def route_to_maxima(out, dy, x, y, one, n_out, n_reduced, kept_sizes, kept_strides, reduced_sizes,
                    reduced_strides):
    """Thread j: count the positions of x where the max y[j] came from, then give each dy[j] / count (others 0,
    as a product with a boolean, like the reference). `one` is 1 in x's type, so the count and the division stay
    in that type."""
    for j in range(cuda.grid(1), n_out, cuda.gridsize(1)):
        base = offset_of(j, kept_sizes, kept_strides)
        winners = one - one
        for r in range(n_reduced):
            if is_max(x[base + offset_of(r, reduced_sizes, reduced_strides)], y[j]):
                winners += one
        share = dy[j] / winners
        for r in range(n_reduced):
            at = base + offset_of(r, reduced_sizes, reduced_strides)
            out[at] = share * is_max(x[at], y[j])


register_generic("route_to_maxima", route_to_maxima,
                 lambda f: (f[::1],) * 4 + (f, types.int64, types.int64) + (_INDEX,) * 4)


@step_kernel
def max_grad(out, dy, x, y, *, axes, keepdims):
    """dy shared equally among the positions of x where the max came from (equal to it, or NaN like it)."""
    kept, reduced = reduction_layout(shape_of(x), axes)
    n_out = y.size
    n_reduced = numel([shape_of(x)[a] for a in axes])
    return [BoundLaunch(route_to_maxima, grid_for(n_out), BLOCK,
                        [flat(out), flat(dy), flat(x), flat(y), out.dtype.type(1), n_out, n_reduced, *kept,
                         *reduced])]


@cuda.jit
def broadcast_scaled(out, dy, scale, sizes, out_strides, dy_strides):
    """out[i] = dy[the position i broadcasts from] · scale"""
    for i in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        out[offset_of(i, sizes, out_strides)] = dy[offset_of(i, sizes, dy_strides)] * scale


register_generic("broadcast_scaled", broadcast_scaled, lambda f: (f[::1], f[::1], f) + (_INDEX,) * 3)


@step_kernel
def broadcast_to(out, dy, *, keep_shape, scale):
    """out = dy (with the reduced axes kept as size 1) repeated to out's shape, times `scale` (1/count for mean)."""
    shape = shape_of(out)
    sizes, (out_strides, dy_strides) = strided_layout(
        shape, [contiguous_strides(shape), broadcast_strides(tuple(keep_shape), shape)], "broadcast_to")
    return [BoundLaunch(broadcast_scaled, grid_for(out.size), BLOCK,
                        [flat(out), flat(dy), out.dtype.type(scale), sizes, out_strides, dy_strides])]


SPECIALIZE = {Sum: specialize_reduction, Mean: specialize_reduction, Max: specialize_reduction,
              SumTo: specialize_reduction}
WORKSPACE = {Sum: reduction_workspace, Mean: reduction_workspace, Max: reduction_workspace,
             SumTo: reduction_workspace}


KERNELS = {Sum: reduce_sum, Mean: reduce_mean, Max: reduce_max, MaxGrad: max_grad, BroadcastTo: broadcast_to,
           SumTo: sum_to}
