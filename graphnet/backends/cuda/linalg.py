"""matmul: C = op(A) @ op(B) over the last two axes, op = transpose where asked, leading axes broadcast.

One product per batch position z, run by the tiled kernel of gemm.py with grid depth = number of batch positions.
For batch position z the operands start at a_offsets[z] and b_offsets[z] (made on the host once: a batch axis that
is broadcast contributes 0), and

    op(A)[i, k] = A[a_off + i·K + k]      or, transposed,  A[a_off + k·M + i]
    op(B)[k, j] = B[b_off + k·N + j]      or, transposed,  B[b_off + j·K + k]
    C[z, i, j]  = out[z·M·N + i·N + j]

The transposed variants read the contiguous index along the other tile axis, so tiles still load coalesced.

dense and dense_relu are the fused matmul → add (→ relu) of a 2-D product and one bias row (the rule in
graphnet/ops/fused.py): the kernel's epilogue adds bias[j] (and applies the ReLU) as C[i, j] is written.
matmul_relu_grad is the fused matmul → relu_grad of a dense layer's backward pass: C · [y > 0] as it is written.
"""
from functools import lru_cache

import numba
import numpy as np
from numba import cuda, types

from .gemm import (ADD_BIAS, I64, P_SIZE, RELU, RELU_GRAD, TILINGS, U64, Operand, Output, choose_tiling, pack,
                   tiled_gemm)
from .launch import BoundLaunch, flat, step_kernel, shape_of
from .layout import broadcast_strides
from .registry import register
from ...ops.linalg import MatMul
from ...ops.fused import Dense, DenseRelu, MatMulReluGrad


@lru_cache(maxsize=None)
def matmul_functions(transpose_a, transpose_b):
    """(A operand, B operand, output) for one choice of transposes; p = (M, N, K, splits, epilogue, batches)."""
    zero = I64(0)

    @cuda.jit(device=True)
    def locate_a(offsets, p, z, i):
        if transpose_a:
            return offsets[z] + i, zero, zero, zero
        return offsets[z] + i * p[2], zero, zero, zero

    @cuda.jit(device=True)
    def fetch_a(a, table, p, row, unused1, unused2, unused3, k):
        if transpose_a:
            return a[U64(row + k * p[0])]
        return a[U64(row + k)]

    @cuda.jit(device=True)
    def locate_b(offsets, p, z, j):
        base = offsets[p[BATCHES] + z]
        if transpose_b:
            return base + j * p[2], zero, zero, zero
        return base + j, zero, zero, zero

    @cuda.jit(device=True)
    def fetch_b(b, table, p, column, unused1, unused2, unused3, k):
        if transpose_b:
            return b[U64(column + k)]
        return b[U64(column + k * p[1])]

    @cuda.jit(device=True)
    def row_at(p, z, split, i):
        return (z * p[0] + i) * p[1]

    @cuda.jit(device=True)
    def column_at(p, z, j):
        return j

    @cuda.jit(device=True)
    def bias_of_column(p, z, i, j):
        """dense: the bias is one row, broadcast over the rows"""
        return j

    return (Operand(locate_a, fetch_a, k_contiguous=not transpose_a),
            Operand(locate_b, fetch_b, k_contiguous=transpose_b),
            Output(row_at, column_at, bias_of_column))


BATCHES = 5         # p[5]: batch positions (the b offsets follow the a offsets)


def matmul_kernel(tiling, transpose_a, transpose_b, dtype):
    operand_a, operand_b, output = matmul_functions(transpose_a, transpose_b)
    return tiled_gemm(tiling, operand_a, operand_b, output, numba.from_dtype(np.dtype(dtype)))


def _matmul_signature(f):
    return (f[::1], f[::1], f[::1], f[::1], types.int64[::1], types.int32[::1], types.UniTuple(types.int64, P_SIZE))


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


def product_launch(out, a, b, bias, transpose_a, transpose_b, tiling, epilogue):
    m, n, k = matmul_sizes(shape_of(a), shape_of(b), transpose_a, transpose_b)
    batch_shape = shape_of(out)[:-2]
    batches = int(np.prod(batch_shape, dtype=np.int64))
    tiling = tiling or choose_tiling(m, n, batches)
    offsets = cuda.to_device(batch_offsets(shape_of(a), shape_of(b), batch_shape))
    no_table = cuda.to_device(np.zeros(1, dtype=np.int32))     # matmul's addresses need no per-k table
    kernel = matmul_kernel(tiling, transpose_a, transpose_b, out.dtype)
    p = pack([m, n, k, 1, epilogue, batches])
    return BoundLaunch(kernel, tiling.grid(m, n, batches), tiling.threads,
                       [flat(out), flat(a), flat(b), flat(bias), offsets, no_table, p])


@step_kernel
def matmul(out, a, b, *, transpose_a, transpose_b, tiling=None, algorithm=None):
    """out = op(a) @ op(b), batched"""
    return [product_launch(out, a, b, out, transpose_a, transpose_b, tiling, 0)]    # out stands in for a bias


@step_kernel
def dense(out, a, b, bias, *, transpose_a, transpose_b, tiling=None, algorithm=None):
    """out = op(a) @ op(b) + bias (one row, broadcast over the rows): the fused matmul → add"""
    return [product_launch(out, a, b, bias, transpose_a, transpose_b, tiling, ADD_BIAS)]


@step_kernel
def matmul_relu_grad(out, a, b, relu_y, *, transpose_a, transpose_b, tiling=None, algorithm=None):
    """out = (op(a) @ op(b)) · [relu_y > 0]: the fused matmul → relu_grad (relu_y: the relu's output)"""
    return [product_launch(out, a, b, relu_y, transpose_a, transpose_b, tiling, RELU_GRAD)]


@step_kernel
def dense_relu(out, a, b, bias, *, transpose_a, transpose_b, tiling=None, algorithm=None):
    """out = max(op(a) @ op(b) + bias, 0): the fused matmul → add → relu"""
    return [product_launch(out, a, b, bias, transpose_a, transpose_b, tiling, ADD_BIAS | RELU)]


SPECIALIZE = {MatMul: specialize_matmul, Dense: specialize_matmul, DenseRelu: specialize_matmul,
              MatMulReluGrad: specialize_matmul}


KERNELS = {MatMul: matmul, Dense: dense, DenseRelu: dense_relu, MatMulReluGrad: matmul_relu_grad}
