"""matmul: C = op(A) @ op(B) over the last two axes, op = transpose where asked, leading axes broadcast.

One product per batch position z, run by the tiled kernel of gemm.py with grid depth = number of batch positions.
For batch position z the operands start at a_offsets[z] and b_offsets[z] (made on the host once: a batch axis that
is broadcast contributes 0), and

    op(A)[i, k] = A[a_off + i·K + k]      or, transposed,  A[a_off + k·M + i]
    op(B)[k, j] = B[b_off + k·N + j]      or, transposed,  B[b_off + j·K + k]
    C[z, i, j]  = out[z·M·N + i·N + j]

The transposed variants read the contiguous index along the other tile axis, so tiles still load coalesced.
"""
from functools import lru_cache

import numba
import numpy as np
from numba import cuda, types

from .gemm import TILINGS, choose_tiling, pack, tiled_gemm
from .launch import BoundLaunch, flat, step_kernel, shape_of
from .layout import broadcast_strides
from .registry import register


@lru_cache(maxsize=None)
def matmul_functions(transpose_a, transpose_b):
    """(load_a, load_b, store) for one choice of transposes; p = (M, N, K, splits, batches)."""

    @cuda.jit(device=True)
    def load_a(a, offsets, p, z, i, k):
        if transpose_a:
            return a[offsets[z] + k * p[0] + i]
        return a[offsets[z] + i * p[2] + k]

    @cuda.jit(device=True)
    def load_b(b, offsets, p, z, k, j):
        base = offsets[p[4] + z]
        if transpose_b:
            return b[base + j * p[2] + k]
        return b[base + k * p[1] + j]

    @cuda.jit(device=True)
    def store(out, offsets, p, z, split, i, j, value):
        out[(z * p[0] + i) * p[1] + j] = value

    return load_a, load_b, store


def matmul_kernel(tiling, transpose_a, transpose_b, dtype):
    load_a, load_b, store = matmul_functions(transpose_a, transpose_b)
    return tiled_gemm(tiling, load_a, load_b, store, not transpose_a, not transpose_b,
                      numba.from_dtype(np.dtype(dtype)))


def _matmul_signature(f):
    return (f[::1], f[::1], f[::1], types.int64[::1], types.UniTuple(types.int64, 20))


for _tiling in TILINGS:
    for _ta in (False, True):
        for _tb in (False, True):
            register(f"matmul[{_tiling.label}{' Aᵀ' if _ta else ''}{' Bᵀ' if _tb else ''}]",
                     lambda dtype, t=_tiling, ta=_ta, tb=_tb: matmul_kernel(t, ta, tb, dtype), _matmul_signature)


def matmul_sizes(a_shape, b_shape, transpose_a, transpose_b):
    m, k = (a_shape[-1], a_shape[-2]) if transpose_a else (a_shape[-2], a_shape[-1])
    n = b_shape[-2] if transpose_b else b_shape[-1]
    return m, n, k


def batch_offsets(a_shape, b_shape, batch_shape):
    """[a offsets..., b offsets...] of every batch position (row-major), in elements."""
    if not batch_shape:
        return np.zeros(2, dtype=np.int64)
    positions = np.indices(batch_shape, dtype=np.int64).reshape(len(batch_shape), -1)

    def offsets(shape):
        strides = np.array(broadcast_strides(tuple(shape[:-2]), batch_shape), dtype=np.int64).reshape(-1, 1)
        return (strides * positions).sum(axis=0) * (int(shape[-2]) * int(shape[-1]))

    return np.concatenate([offsets(a_shape), offsets(b_shape)]).astype(np.int64)


def specialize_matmul(params, in_shapes, out_shape, dtype):
    m, n, k = matmul_sizes(in_shapes[0], in_shapes[1], params["transpose_a"], params["transpose_b"])
    batches = int(np.prod(out_shape[:-2], dtype=np.int64))
    tiling = choose_tiling(m, n, batches)
    return dict(params, tiling=tiling, algorithm=f"tiled {tiling.label}")


@step_kernel
def matmul(out, a, b, *, transpose_a, transpose_b, tiling=None, algorithm=None):
    """out = op(a) @ op(b), batched"""
    m, n, k = matmul_sizes(shape_of(a), shape_of(b), transpose_a, transpose_b)
    batch_shape = shape_of(out)[:-2]
    batches = int(np.prod(batch_shape, dtype=np.int64))
    tiling = tiling or choose_tiling(m, n, batches)
    offsets = cuda.to_device(batch_offsets(shape_of(a), shape_of(b), batch_shape))
    kernel = matmul_kernel(tiling, transpose_a, transpose_b, out.dtype)
    p = pack([m, n, k, 1, batches])
    return [BoundLaunch(kernel, tiling.grid(m, n, batches), tiling.threads, [flat(out), flat(a), flat(b), offsets, p])]


KERNELS = {"matmul": matmul}
SPECIALIZE = {"matmul": specialize_matmul}
