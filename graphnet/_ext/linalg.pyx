# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Matrix products of the cpu backend: matmul, the fused dense layers (matmul + bias, matmul + bias + ReLU) and
the fused gradient entering a ReLU (matmul → relu_grad).

    matmul             out[..., i, j] = Σ_p op(a)[..., i, p] · op(b)[..., p, j]    op(x) = x or xᵀ (last two axes)
    dense              out[i, j] = Σ_p op(a)[i, p] · op(b)[p, j] + bias[j]
    dense_relu         out[i, j] = max(Σ_p op(a)[i, p] · op(b)[p, j] + bias[j], 0)
    matmul_relu_grad   out[..., i, j] = (Σ_p op(a)[..., i, p] · op(b)[..., p, j]) · [relu_y[..., i, j] > 0]
    matmul_sgd_update  w[i, j] ← w[i, j] − scale · Σ_p op(a)[i, p] · op(b)[p, j]     (out is w's storage)

Every product is one BLAS GEMM per matrix (sgemm or dgemm through scipy.linalg.cython_blas; the row-major call is
explained in _blas.pxd), never a loop of ours. Leading (batch) axes broadcast like NumPy's: a batch axis of size 1
in one operand is reused against every index of the other (the matrix offsets are worked out once per call).

Threads: a 2-D product of at least PARALLEL_MIN_FLOPS is cut into one block of rows (or of columns, whichever
side is longer) per OpenMP thread, each block one single-threaded GEMM; a batch of products gives each thread
whole products. The dense layers add the bias and apply the ReLU to each block right after its GEMM, while the
block is still in cache (the epilogue), so the fused step writes its output once and reads it once more in cache,
where the unfused schedule would write it three times and read it twice from memory; matmul_relu_grad's epilogue
multiplies the block by the ReLU's mask, relu_grad's formula dy · [y > 0] to the bit. matmul_sgd_update is the
GEMM's own C ← alpha·op(A)·op(B) + beta·C with alpha = −scale and beta = 1 on the weight: the gradient is never
written, and the update costs no pass of its own.

Fusion (the fused ops Dense and DenseRelu of graphnet/ops/fused.py): the compiler rewrites the chains matmul → add
and matmul → add → relu into them only when the matmul is 2-D and the add's second input is one bias row — a
vector of length n, or (1, n) — broadcast over the rows (anything else, like adding a full matrix, stays an
ordinary add).
"""
from cython.parallel cimport prange
cimport numpy as cnp
cimport openmp

import numpy as np

from graphnet._ext._blas cimport (BlasThreads, blas_threads_known, find_blas_threads, gemm, pin_blas_to_one_thread,
                                  restore_blas_threads)
from graphnet._ext._buffers cimport data, real, require_floats
from graphnet.ops.linalg import MatMul
from graphnet.ops.fused import Dense, DenseRelu, MatMulReluGrad, MatMulSgdUpdate

cnp.import_array()

cdef BlasThreads BLAS = find_blas_threads()

cdef enum:
    PARALLEL_MIN_FLOPS = 1 << 21       # ~20 µs of one core: below this, waking a second thread costs more than it saves
    BLOCK_MULTIPLE = 16                # block edges on multiples of BLAS's register tile

cdef enum Epilogue:
    NO_EPILOGUE, ADD_BIAS, ADD_BIAS_RELU, RELU_MASK


cdef struct Product:                   # one row-major C (m×n) = alpha·op(A) (m×k)·op(B) (k×n) + beta·C; ld*: row strides
    int m, n, k
    bint transpose_a, transpose_b
    int lda, ldb, ldc
    double alpha, beta                 # 1 and 0 (C = op(A)·op(B)) but in matmul_sgd_update


# ----------------------------------------------------------------------------------------------------------------
# the C loops

cdef inline real relu_of(real v) noexcept nogil:
    """max(v, 0) with NaN kept, like np.maximum(v, 0)."""
    return 0 if v < 0 else v


cdef void epilogue(real* c, int ldc, int row0, int row1, int col0, int col1, const real* operand,
                   Epilogue kind) noexcept nogil:
    """Over the block rows [row0, row1) × columns [col0, col1): c[i, j] += bias[j] (then ReLU), the operand being
    the bias row; or c[i, j] ·= [relu_y[i, j] > 0], the operand being relu_y (of c's shape)."""
    cdef int i, j
    cdef real* row
    cdef const real* mask
    if kind == NO_EPILOGUE:
        return
    for i in range(row0, row1):
        row = c + <Py_ssize_t>i * ldc
        if kind == ADD_BIAS:
            for j in range(col0, col1):
                row[j] = row[j] + operand[j]
        elif kind == ADD_BIAS_RELU:
            for j in range(col0, col1):
                row[j] = relu_of(row[j] + operand[j])
        else:                              # the ternary in the loop, as relu_grad's: GCC vectorizes it
            mask = operand + <Py_ssize_t>i * ldc
            for j in range(col0, col1):
                row[j] = row[j] * (<real>1 if mask[j] > 0 else <real>0)


cdef inline int block_edge(int part, int parts, int size) noexcept nogil:
    """Where block `part` of `parts` starts when `size` is cut into near-equal blocks on multiples of 16."""
    cdef int block = (size + parts - 1) // parts
    block = (block + BLOCK_MULTIPLE - 1) // BLOCK_MULTIPLE * BLOCK_MULTIPLE
    return min(part * block, size)


cdef void product_block(Product p, bint by_rows, int lo, int hi, const real* a, const real* b, real* c,
                        const real* operand, Epilogue kind) noexcept nogil:
    """Rows [lo, hi) of C (by_rows) or its columns [lo, hi): one GEMM, then the epilogue on that block."""
    cdef Py_ssize_t a_offset, b_offset
    if hi <= lo:
        return
    if by_rows:        # rows lo.. of op(A): row offset of A, or column offset of a stored Aᵀ
        a_offset = lo if p.transpose_a else <Py_ssize_t>lo * p.lda
        gemm(p.transpose_a, p.transpose_b, hi - lo, p.n, p.k, <real>p.alpha, a + a_offset, p.lda, b, p.ldb,
             <real>p.beta, c + <Py_ssize_t>lo * p.ldc, p.ldc)
        epilogue(c, p.ldc, lo, hi, 0, p.n, operand, kind)
    else:              # columns lo.. of op(B): column offset of B, or row offset of a stored Bᵀ
        b_offset = <Py_ssize_t>lo * p.ldb if p.transpose_b else lo
        gemm(p.transpose_a, p.transpose_b, p.m, hi - lo, p.k, <real>p.alpha, a, p.lda, b + b_offset, p.ldb,
             <real>p.beta, c + lo, p.ldc)
        epilogue(c, p.ldc, 0, p.m, lo, hi, operand, kind)


cdef void product(Product p, const real* a, const real* b, real* c, const real* operand, Epilogue kind,
                  int threads) noexcept nogil:
    """C = op(A)·op(B) (+ epilogue), cut into one block per thread along the longer side of C when it pays."""
    cdef int part, parts = threads
    cdef bint by_rows = p.m >= p.n
    cdef int size = p.m if by_rows else p.n
    if 2.0 * p.m * p.n * p.k < PARALLEL_MIN_FLOPS or size < 2 * BLOCK_MULTIPLE:
        parts = 1
    if parts <= 1:
        product_block(p, True, 0, p.m, a, b, c, operand, kind)
        return
    for part in prange(parts, num_threads=parts, schedule="static"):
        product_block(p, by_rows, block_edge(part, parts, size), block_edge(part + 1, parts, size), a, b, c,
                      operand, kind)


cdef void batched_product(Product p, Py_ssize_t count, const Py_ssize_t* a_index, const Py_ssize_t* b_index,
                          const real* a, const real* b, real* c, int threads) noexcept nogil:
    """C[i] = op(A[a_index[i]])·op(B[b_index[i]]) for i < count: whole products per thread, or split ones."""
    cdef Py_ssize_t i
    cdef Py_ssize_t a_size = <Py_ssize_t>p.m * p.k, b_size = <Py_ssize_t>p.k * p.n, c_size = <Py_ssize_t>p.m * p.n
    if count >= threads and threads > 1 and 2.0 * count * c_size * p.k >= PARALLEL_MIN_FLOPS:
        for i in prange(count, num_threads=threads, schedule="dynamic"):
            gemm(p.transpose_a, p.transpose_b, p.m, p.n, p.k, <real>1, a + a_index[i] * a_size, p.lda,
                 b + b_index[i] * b_size, p.ldb, <real>0, c + i * c_size, p.ldc)
    else:
        for i in range(count):
            product(p, a + a_index[i] * a_size, b + b_index[i] * b_size, c + i * c_size, NULL, NO_EPILOGUE,
                    threads)


# ----------------------------------------------------------------------------------------------------------------
# shapes, checks and the kernels

cdef Product plan_product(str kernel, tuple out_mn, tuple a_shape, tuple b_shape, bint transpose_a,
                          bint transpose_b) except *:
    """The BLAS view of out = op(a)·op(b) for the last two axes of each shape; explains a mismatch."""
    cdef Product p
    m_a, k_a = (a_shape[1], a_shape[0]) if transpose_a else (a_shape[0], a_shape[1])
    k_b, n_b = (b_shape[1], b_shape[0]) if transpose_b else (b_shape[0], b_shape[1])
    if k_a != k_b or (m_a, n_b) != out_mn:
        raise ValueError(f"cpu.{kernel}: op(a) is {m_a}x{k_a} and op(b) is {k_b}x{n_b} (transpose_a={transpose_a}, "
                         f"transpose_b={transpose_b}), so the product is {m_a}x{n_b} only if the inner sizes agree; "
                         f"the output is {out_mn[0]}x{out_mn[1]}")
    p.m, p.n, p.k = m_a, n_b, k_a
    p.transpose_a, p.transpose_b = transpose_a, transpose_b
    p.lda, p.ldb, p.ldc = max(a_shape[1], 1), max(b_shape[1], 1), max(p.n, 1)
    p.alpha, p.beta = 1, 0
    return p


cdef inline int loop_threads() noexcept nogil:
    """OpenMP threads for loops that call BLAS: all of them when BLAS can be pinned to one thread, else one."""
    return openmp.omp_get_max_threads() if blas_threads_known(&BLAS) else 1


cdef void run_product(cnp.ndarray out, cnp.ndarray a, cnp.ndarray b, cnp.ndarray operand, Product p,
                      Epilogue kind):
    cdef int threads = loop_threads()
    cdef int pinned
    cdef void* a_data = data(a)
    cdef void* b_data = data(b)
    cdef void* out_data = data(out)
    cdef void* operand_data = NULL if operand is None else data(operand)
    cdef bint single = cnp.PyArray_TYPE(out) == cnp.NPY_FLOAT32
    with nogil:
        pinned = pin_blas_to_one_thread(&BLAS)
        if single:
            product(p, <float*>a_data, <float*>b_data, <float*>out_data, <float*>operand_data, kind, threads)
        else:
            product(p, <double*>a_data, <double*>b_data, <double*>out_data, <double*>operand_data, kind, threads)
        restore_blas_threads(&BLAS, pinned)


def matmul(cnp.ndarray out, cnp.ndarray a, cnp.ndarray b, *, bint transpose_a=False, bint transpose_b=False,
           algorithm=None):
    """out = op(a) @ op(b) over the last two axes, batch axes broadcast (the reference's np.matmul)."""
    require_floats("matmul", out, (a, b))
    if out.ndim == 2 and a.ndim == 2 and b.ndim == 2:
        p = plan_product("matmul", (out.shape[0], out.shape[1]), (a.shape[0], a.shape[1]),
                         (b.shape[0], b.shape[1]), transpose_a, transpose_b)
        if p.k == 0:
            out[...] = 0
            return
        run_product(out, a, b, None, p, NO_EPILOGUE)
        return
    _batched_matmul(out, a, b, transpose_a, transpose_b)


def _batched_matmul(cnp.ndarray out, cnp.ndarray a, cnp.ndarray b, bint transpose_a, bint transpose_b):
    out_shape, a_shape, b_shape = (<object>out).shape, (<object>a).shape, (<object>b).shape
    if a.ndim < 2 or b.ndim < 2 or out.ndim < 2:
        raise ValueError(f"cpu.matmul: operands need at least 2 axes, got {a_shape}, {b_shape} -> {out_shape}")
    batch = out_shape[:out.ndim - 2]
    cdef Product p = plan_product("matmul", out_shape[out.ndim - 2:], a_shape[a.ndim - 2:], b_shape[b.ndim - 2:],
                                  transpose_a, transpose_b)
    a_index = matrix_indices(a_shape[:a.ndim - 2], batch, "a")
    b_index = matrix_indices(b_shape[:b.ndim - 2], batch, "b")
    cdef Py_ssize_t count = a_index.shape[0]
    if count == 0 or p.m == 0 or p.n == 0:
        return
    if p.k == 0:
        out[...] = 0
        return
    cdef const Py_ssize_t[::1] a_rows = a_index
    cdef const Py_ssize_t[::1] b_rows = b_index
    cdef int threads = loop_threads()
    cdef int pinned
    cdef void* a_data = data(a)
    cdef void* b_data = data(b)
    cdef void* out_data = data(out)
    cdef bint single = cnp.PyArray_TYPE(out) == cnp.NPY_FLOAT32
    with nogil:
        pinned = pin_blas_to_one_thread(&BLAS)
        if single:
            batched_product(p, count, &a_rows[0], &b_rows[0], <float*>a_data, <float*>b_data, <float*>out_data,
                            threads)
        else:
            batched_product(p, count, &a_rows[0], &b_rows[0], <double*>a_data, <double*>b_data,
                            <double*>out_data, threads)
        restore_blas_threads(&BLAS, pinned)


def matrix_indices(operand_batch, out_batch, name):
    """For each output matrix (row-major over the batch axes), the index of the operand's matrix it reads."""
    operand_batch, out_batch = tuple(operand_batch), tuple(out_batch)
    if len(operand_batch) > len(out_batch):
        raise ValueError(f"cpu.matmul: {name} has batch axes {operand_batch}, more than the output's {out_batch}")
    padded = (1,) * (len(out_batch) - len(operand_batch)) + operand_batch
    if any(o != 1 and o != t for o, t in zip(padded, out_batch)):
        raise ValueError(f"cpu.matmul: {name}'s batch axes {operand_batch} do not broadcast to {out_batch}")
    indices = np.arange(int(np.prod(padded, dtype=np.int64)), dtype=np.intp).reshape(padded)
    return np.ascontiguousarray(np.broadcast_to(indices, out_batch).reshape(-1))


cdef void run_dense(str kernel, cnp.ndarray out, cnp.ndarray a, cnp.ndarray b, cnp.ndarray bias,
                    bint transpose_a, bint transpose_b, Epilogue kind):
    require_floats(kernel, out, (a, b, bias))
    if out.ndim != 2 or a.ndim != 2 or b.ndim != 2:
        raise ValueError(f"cpu.{kernel}: a dense layer multiplies 2-D matrices, got {(<object>a).shape} @ "
                         f"{(<object>b).shape} -> {(<object>out).shape}")
    cdef Product p = plan_product(kernel, (out.shape[0], out.shape[1]), (a.shape[0], a.shape[1]),
                                  (b.shape[0], b.shape[1]), transpose_a, transpose_b)
    if cnp.PyArray_SIZE(bias) != p.n:
        raise ValueError(f"cpu.{kernel}: the bias must hold one value per output column ({p.n}), got shape "
                         f"{(<object>bias).shape}")
    if p.k == 0:                            # no terms to sum: out is the bias (then the ReLU)
        out[...] = bias.reshape(1, -1)
        if kind == ADD_BIAS_RELU:
            np.maximum(out, 0, out=out)
        return
    run_product(out, a, b, bias, p, kind)


def dense(cnp.ndarray out, cnp.ndarray a, cnp.ndarray b, cnp.ndarray bias, *, bint transpose_a=False,
          bint transpose_b=False, algorithm=None):
    """out = op(a) @ op(b) + bias (a row broadcast over the rows): the fused matmul → add."""
    run_dense("dense", out, a, b, bias, transpose_a, transpose_b, ADD_BIAS)


def dense_relu(cnp.ndarray out, cnp.ndarray a, cnp.ndarray b, cnp.ndarray bias, *, bint transpose_a=False,
               bint transpose_b=False, algorithm=None):
    """out = max(op(a) @ op(b) + bias, 0): the fused matmul → add → relu."""
    run_dense("dense_relu", out, a, b, bias, transpose_a, transpose_b, ADD_BIAS_RELU)


def matmul_relu_grad(cnp.ndarray out, cnp.ndarray a, cnp.ndarray b, cnp.ndarray relu_y, *,
                     bint transpose_a=False, bint transpose_b=False, algorithm=None):
    """out = (op(a) @ op(b)) · [relu_y > 0]: the fused matmul → relu_grad; relu_y has out's shape."""
    require_floats("matmul_relu_grad", out, (a, b, relu_y))
    if (<object>relu_y).shape != (<object>out).shape:
        raise ValueError(f"cpu.matmul_relu_grad: relu_y {(<object>relu_y).shape} must have out's shape "
                         f"{(<object>out).shape}")
    if out.ndim == 2 and a.ndim == 2 and b.ndim == 2:
        p = plan_product("matmul_relu_grad", (out.shape[0], out.shape[1]), (a.shape[0], a.shape[1]),
                         (b.shape[0], b.shape[1]), transpose_a, transpose_b)
        if p.k > 0:
            run_product(out, a, b, relu_y, p, RELU_MASK)
            return
    matmul(out, a, b, transpose_a=transpose_a, transpose_b=transpose_b)
    np.multiply(out, relu_y > 0, out=out)                # a batch, or no terms to sum: the mask after the product


def matmul_sgd_update(cnp.ndarray out, cnp.ndarray a, cnp.ndarray b, cnp.ndarray scale, cnp.ndarray u,
                      cnp.ndarray variable, *, bint transpose_a=False, bint transpose_b=False, algorithm=None):
    """variable ← u − scale·(op(a) @ op(b)), out the variable's storage (u is the variable: MatMulSgdUpdate): one
    GEMM with alpha = −scale, beta = 1."""
    require_floats("matmul_sgd_update", out, (a, b, scale, u))
    if out.ndim != 2 or a.ndim != 2 or b.ndim != 2 or cnp.PyArray_SIZE(scale) != 1:
        raise ValueError(f"cpu.matmul_sgd_update: a 2-D product {(<object>a).shape} @ {(<object>b).shape} into "
                         f"{(<object>out).shape}, scaled by one number (got shape {(<object>scale).shape})")
    cdef Product p = plan_product("matmul_sgd_update", (out.shape[0], out.shape[1]), (a.shape[0], a.shape[1]),
                                  (b.shape[0], b.shape[1]), transpose_a, transpose_b)
    if (<object>u).shape != (<object>out).shape:
        raise ValueError(f"cpu.matmul_sgd_update: u {(<object>u).shape} must have the variable's shape "
                         f"{(<object>out).shape}")
    if data(u) != data(out):
        np.copyto(out, u)
    p.alpha, p.beta = -float(scale.reshape(-1)[0]), 1
    if p.k > 0:
        run_product(out, a, b, None, p, NO_EPILOGUE)


# ----------------------------------------------------------------------------------------------------------------
# what the cpu backend reads

def blas_name(dtype):
    return "sgemm" if np.dtype(dtype) == np.float32 else "dgemm"


def label_gemm(params, in_shapes, out_shape, dtype):
    """The schedule shows which BLAS routine runs the step: cpu.matmul[sgemm]."""
    return dict(params, algorithm=blas_name(dtype))


KERNELS = {MatMul: matmul, Dense: dense, DenseRelu: dense_relu, MatMulReluGrad: matmul_relu_grad,
           MatMulSgdUpdate: matmul_sgd_update}
SPECIALIZE = {MatMul: label_gemm, Dense: label_gemm, DenseRelu: label_gemm, MatMulReluGrad: label_gemm,
              MatMulSgdUpdate: label_gemm}
