"""The one tiled matrix-product kernel behind matmul and the three convolution kernels.

    C[i, j] = Σ_k A[i, k] · B[k, j]            0 ≤ i < M, 0 ≤ j < N, 0 ≤ k < K

What differs between matmul and convolution is only *where* A[i, k] and B[k, j] are read from and where C[i, j]
is written: matmul reads rows of arrays, convolution reads the input image through the im2col formula without
ever building the columns ("implicit GEMM"). So the kernel is made by a factory from an `Operand` for A, one for
B and an `Output`, each a few device functions.

An element's address splits into a part that depends on its row of A (column of B) and a part that depends on k.
A thread copies the same rows (columns) of every K step into the shared tiles, so the first part is worked out
once per block and only the second changes as K advances:

    locate(offsets, p, z, i)                     -> (w0, w1, w2, w3)   once per block, for the row i (column j)
    fetch(array, table, p, w0, w1, w2, w3, k)    -> A[i, k]            every K step; no division
    Output: row_at(p, z, split, i) + column_at(p, z, j) = where C[i, j] goes; bias_at(p, z, i, j) = its bias

p is a tuple of integers (sizes, strides, paddings), z the batch (matmul) or group (convolution) the block works on,
`offsets` matmul's per-batch offsets and `table` the per-k parts of the convolutions' addresses, both made on the
host once. p[4] is the epilogue, what happens to C[i, j] on its way out: + bias[bias_at] (ADD_BIAS), then the
ReLU (RELU) — the fused conv2d → relu and matmul → add → relu of the schedule; or the ReLU's gradient
(RELU_GRAD: C · [y > 0], y the relu's output, read from `bias` at C's own place) — the fused matmul → relu_grad
and conv2d_grad_input → relu_grad of the backward pass.

Tiling (sizes are compile-time constants — shared arrays need them):

    * a block of THREADS = (BM/TM)·(BN/TN) threads computes a BM × BN tile of C;
    * it walks K in steps of BK: the threads copy an A tile (BM × BK) and a B tile (BK × BN) into shared memory,
      reading consecutive addresses together, wait, and each thread multiplies what it needs for its TM × TN
      outputs, held in registers. While it multiplies, the next step's elements are already on their way from
      global memory into registers (prefetch), so the loads' latency hides behind the arithmetic;
    * a thread owns runs of up to 4 neighbouring rows and columns (ty·4 … ty·4+3, then the same 4·RY further
      on): one 128-bit shared-memory load fetches a run, and neighbouring threads read neighbouring words;
    * grid = (⌈N/BN⌉, ⌈M/BM⌉, batches · splits). With splits > 1 ("split-K") block s takes the s-th slice of K
      and writes a partial result; the caller sums the slices afterwards.

Indices into tiles and arrays are unsigned: Numba wraps a negative signed index around (x[-1] is the last
element), which costs instructions on every access and stops the compiler from merging four neighbouring loads into
one. `python -m graphnet.backends.cuda.sass_report` shows what the inner loop compiles to.

Per block: BM·BN·BK multiply-adds for (BM + BN)·BK loads, so bigger tiles reuse each load more; small tiles waste
less when M or N is small. `choose_tiling` picks per product shape at compile time.
"""
import math
from dataclasses import dataclass
from functools import lru_cache

import numba
from numba import cuda

from ...errors import GraphError
from .activations import f_relu, f_relu_grad
from .launch import SIMULATED

P_SIZE = 24         # integers in p; p[0:5] = M, N, K, splits, epilogue; the layout of p[5:] belongs to each op
ADD_BIAS = 1        # epilogue flags
RELU = 2
RELU_GRAD = 4
SHARED_PAD = 4      # extra columns in the shared tiles: consecutive k of a k-contiguous tile fall in different banks
RUN = 4             # a thread's rows (columns) come in runs of up to 4 neighbours: one 128-bit load each

# Casts of indices, all of values >= 0. The simulator runs kernels as Python, where plain ints are several times
# faster than NumPy's unsigned scalars; I64 stays a NumPy type there, so no sum with an unsigned scalar wraps.
U32 = int if SIMULATED else numba.uint32
U64 = int if SIMULATED else numba.uint64
I64 = numba.int64


def _inside_python(value, size):
    return 0 <= value < size


@cuda.jit(device=True)
def _inside_gpu(value, size):
    return numba.uint32(value) < numba.uint32(size)


# 0 <= value < size; on the GPU one unsigned comparison (a negative value wraps to a huge one)
inside = _inside_python if SIMULATED else _inside_gpu


@dataclass(frozen=True)
class Operand:
    """How A (or B) is read: `locate` once per row (column) a thread loads, `fetch` once per K step.
    k_contiguous: whether consecutive k are neighbours in memory (then consecutive threads take consecutive k)."""
    locate: object
    fetch: object
    k_contiguous: bool


@dataclass(frozen=True)
class Output:
    """Where C[i, j] goes (row_at + column_at) and which bias it gets when the epilogue adds one (bias_at)."""
    row_at: object
    column_at: object
    bias_at: object


@dataclass(frozen=True)
class Tiling:
    block_m: int
    block_n: int
    block_k: int
    thread_m: int
    thread_n: int

    @property
    def threads(self):
        return (self.block_m // self.thread_m) * (self.block_n // self.thread_n)

    @property
    def label(self):
        return f"{self.block_m}x{self.block_n}"

    def grid(self, m, n, depth):
        return (math.ceil(n / self.block_n), math.ceil(m / self.block_m), depth)


TILINGS = (                           # in order of preference for large products
    Tiling(128, 128, 8, 8, 8),
    Tiling(64, 64, 8, 4, 4),
    Tiling(16, 128, 8, 2, 4),
    Tiling(128, 16, 8, 4, 2),
    Tiling(32, 32, 16, 2, 2),
)
BLOCKS_PER_SM = 2   # float32: the compiler keeps registers to what two blocks per multiprocessor leave (128 for 256
                    # threads); float64 needs twice the registers per value, and gets one block
BIG_ENOUGH = 132    # blocks that keep every multiprocessor of a large GPU busy (an H100 has 132)


def choose_tiling(m, n, depth=1):
    """The first tile (in TILINGS' order) that wastes at most a quarter of its work on padding and still fills the
    GPU; failing that, the one that wastes least, and among those the one with most blocks. An empty product
    (m or n is 0: an empty batch) has nothing to tile; it gets the first, and launches nothing."""
    if m == 0 or n == 0:
        return TILINGS[0]

    def efficiency(t):
        return (m * n) / (math.ceil(m / t.block_m) * t.block_m * math.ceil(n / t.block_n) * t.block_n)

    def blocks(t):
        return math.ceil(m / t.block_m) * math.ceil(n / t.block_n) * depth

    for t in TILINGS:
        if efficiency(t) >= 0.75 and blocks(t) >= BIG_ENOUGH:
            return t
    return max(TILINGS, key=lambda t: (efficiency(t), blocks(t)))


def check_tiling(t):
    runs_fit = all(size % min(RUN, per) == 0 and per % min(RUN, per) == 0
                   for size, per in ((t.block_m, t.thread_m), (t.block_n, t.thread_n)))
    if t.threads > 1024 or t.block_m % t.thread_m or t.block_n % t.thread_n or not runs_fit:
        raise GraphError(f"tiling {t}: a thread's TM x TN outputs must divide the tile in runs of up to {RUN}, "
                         "and at most 1024 threads")


def owned(thread, u, threads_along, per_thread):
    """The tile row (column) of a thread's u-th output along an axis: runs of up to RUN neighbours, the runs of
    all `threads_along` threads side by side. 16 threads with 8 each: thread t owns 4t…4t+3 and 64+4t…64+4t+3."""
    run = min(RUN, per_thread)
    return U32((u // run) * (threads_along * run) + u % run) + thread * U32(run)


@lru_cache(maxsize=None)
def tiled_gemm(tiling, operand_a, operand_b, output, dtype):
    """The kernel(out, a, b, bias, offsets, table, p) for one tiling, the two operands, the output and one dtype
    (a Numba type)."""
    check_tiling(tiling)
    BM, BN, BK, TM, TN = tiling.block_m, tiling.block_n, tiling.block_k, tiling.thread_m, tiling.thread_n
    THREADS = tiling.threads
    RX = BN // TN                    # threads along a row of the tile
    RY = BM // TM                    # threads along a column
    A_SIZE, B_SIZE = BM * BK, BK * BN
    A_LOADS = -(-A_SIZE // THREADS)  # elements of the A tile each thread copies (rounded up)
    B_LOADS = -(-B_SIZE // THREADS)
    A_COLUMNS = BM + SHARED_PAD
    B_COLUMNS = BN + SHARED_PAD
    owned_jit = cuda.jit(device=True)(owned)
    place_slots_a = slot_placer(operand_a, A_LOADS, THREADS, BM, BK)
    place_slots_b = slot_placer(operand_b, B_LOADS, THREADS, BN, BK)
    load_slots_a = slot_loader(operand_a.fetch, A_LOADS)
    load_slots_b = slot_loader(operand_b.fetch, B_LOADS)
    row_at, column_at, bias_at = output.row_at, output.column_at, output.bias_at

    blocks_per_sm = BLOCKS_PER_SM if dtype.bitwidth <= 32 else 1

    @cuda.jit(**({} if SIMULATED else {"launch_bounds": (THREADS, blocks_per_sm)}))
    def gemm(out, a, b, bias, offsets, table, p):
        tile_a = cuda.shared.array((BK, A_COLUMNS), dtype)      # tile_a[k, i] = A[row0 + i, k0 + k]
        tile_b = cuda.shared.array((BK, B_COLUMNS), dtype)      # tile_b[k, j] = B[k0 + k, col0 + j]
        acc = cuda.local.array((TM, TN), dtype)
        a_regs = cuda.local.array(TM, dtype)
        b_regs = cuda.local.array(TN, dtype)
        # the elements this thread copies: slot l is element t + l·THREADS of a tile, at (a_kk[l], a_ii[l])
        a_next = cuda.local.array(A_LOADS, dtype)
        a_kk = cuda.local.array(A_LOADS, numba.uint32)
        a_ii = cuda.local.array(A_LOADS, numba.uint32)
        a_ok = cuda.local.array(A_LOADS, numba.boolean)
        a_w = cuda.local.array((A_LOADS, 4), numba.int64)
        b_next = cuda.local.array(B_LOADS, dtype)
        b_kk = cuda.local.array(B_LOADS, numba.uint32)
        b_jj = cuda.local.array(B_LOADS, numba.uint32)
        b_ok = cuda.local.array(B_LOADS, numba.boolean)
        b_w = cuda.local.array((B_LOADS, 4), numba.int64)
        rows = cuda.local.array(TM, numba.uint32)        # the tile rows and columns this thread's outputs are in
        columns = cuda.local.array(TN, numba.uint32)
        column_offset = cuda.local.array(TN, numba.int64)

        t = U32(cuda.threadIdx.x)
        tx = t % U32(RX)
        ty = t // U32(RX)
        row0 = I64(cuda.blockIdx.y) * BM
        col0 = I64(cuda.blockIdx.x) * BN
        m, n, k_total, splits, epilogue = p[0], p[1], p[2], p[3], p[4]
        z = I64(cuda.blockIdx.z) // splits
        split = I64(cuda.blockIdx.z) % splits
        k_chunk = ((k_total + splits - 1) // splits + BK - 1) // BK * BK
        k_start = split * k_chunk
        k_stop = min(k_total, k_start + k_chunk)

        place_slots_a(a_kk, a_ii, a_ok, a_w, t, row0, m, offsets, p, z)
        place_slots_b(b_kk, b_jj, b_ok, b_w, t, col0, n, offsets, p, z)
        for u in range(TM):
            rows[u] = owned_jit(ty, u, RY, TM)
            for v in range(TN):
                acc[u, v] = 0
        for v in range(TN):
            columns[v] = owned_jit(tx, v, RX, TN)

        load_slots_a(a_next, a, table, p, a_ok, a_kk, a_w, k_start, k_stop)
        load_slots_b(b_next, b, table, p, b_ok, b_kk, b_w, k_start, k_stop)
        for k0 in range(k_start, k_stop, BK):
            for l in range(A_LOADS):
                if t + U32(l * THREADS) < U32(A_SIZE):
                    tile_a[a_kk[l], a_ii[l]] = a_next[l]
            for l in range(B_LOADS):
                if t + U32(l * THREADS) < U32(B_SIZE):
                    tile_b[b_kk[l], b_jj[l]] = b_next[l]
            cuda.syncthreads()
            if k0 + BK < k_stop:     # the next step's elements travel while this step multiplies
                load_slots_a(a_next, a, table, p, a_ok, a_kk, a_w, k0 + BK, k_stop)
                load_slots_b(b_next, b, table, p, b_ok, b_kk, b_w, k0 + BK, k_stop)
            kk = U32(0)
            while kk < U32(BK):
                for u in range(TM):
                    a_regs[u] = tile_a[kk, rows[u]]
                for v in range(TN):
                    b_regs[v] = tile_b[kk, columns[v]]
                for u in range(TM):
                    for v in range(TN):
                        acc[u, v] += a_regs[u] * b_regs[v]
                kk += U32(1)
            cuda.syncthreads()

        for v in range(TN):
            column_offset[v] = column_at(p, z, col0 + columns[v])
        for u in range(TM):
            i = row0 + rows[u]
            if i < m:
                at_row = row_at(p, z, split, i)
                for v in range(TN):
                    j = col0 + columns[v]
                    if j < n:
                        value = acc[u, v]
                        if epilogue & ADD_BIAS:
                            value += bias[U64(bias_at(p, z, i, j))]
                        if epilogue & RELU:
                            value = f_relu(value, dtype(0))
                        at = at_row + column_offset[v]
                        if epilogue & RELU_GRAD:
                            value = f_relu_grad(value, bias[U64(at)], 0)
                        out[U64(at)] = value

    return gemm


@lru_cache(maxsize=None)
def slot_placer(operand, loads, threads, span, block_k):
    """place(kk, index, ok, where, t, origin, limit, offsets, p, z): for each slot l of thread t, its place in the
    tile (kk[l] along k, index[l] along the `span` rows of A or columns of B), whether its row (column) is inside
    the product (ok[l]) and `where` it is, from the operand's locate — once per block."""
    size = span * block_k
    locate, k_contiguous = operand.locate, operand.k_contiguous

    @cuda.jit(device=True)
    def place(kk, index, ok, where, t, origin, limit, offsets, p, z):
        for l in range(loads):
            e = t + U32(l * threads)
            if k_contiguous:        # consecutive threads take consecutive k
                kk[l], index[l] = e % U32(block_k), e // U32(block_k)
            else:
                index[l], kk[l] = e % U32(span), e // U32(span)
            i = origin + index[l]              # the row of A (column of B) in the whole product
            ok[l] = e < U32(size) and i < limit
            where[l, 0], where[l, 1], where[l, 2], where[l, 3] = locate(offsets, p, z, i)

    return place


@lru_cache(maxsize=None)
def slot_loader(fetch, loads):
    """load(regs, array, table, p, ok, kk, where, k0, k_stop): regs[l] = the element of slot l at K step k0,
    zero past k_stop and for a row (column) outside the product."""

    @cuda.jit(device=True)
    def load(regs, array, table, p, ok, kk, where, k0, k_stop):
        for l in range(loads):
            k = k0 + kk[l]
            if ok[l] and k < k_stop:
                regs[l] = fetch(array, table, p, where[l, 0], where[l, 1], where[l, 2], where[l, 3], k)
            else:
                regs[l] = 0

    return load


def pack(values):
    """p: the integers a GEMM's device functions read, padded to P_SIZE."""
    values = [int(v) for v in values]
    if len(values) > P_SIZE:
        raise GraphError(f"internal: {len(values)} GEMM parameters, at most {P_SIZE}")
    return tuple(values + [0] * (P_SIZE - len(values)))
