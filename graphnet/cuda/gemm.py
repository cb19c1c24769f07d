"""The one tiled matrix-product kernel behind matmul and the three convolution kernels.

    C[i, j] = Σ_k A[i, k] · B[k, j]            0 ≤ i < M, 0 ≤ j < N, 0 ≤ k < K

What differs between matmul and convolution is only *where* A[i, k] and B[k, j] are read from and where C[i, j]
is written: matmul reads rows of arrays, convolution reads the input image through the im2col formula without
ever building the columns ("implicit GEMM"). So the kernel is made by a factory from three device functions,

    load_a(a, extra, p, z, i, k) -> A[i, k]         load_b(b, extra, p, z, k, j) -> B[k, j]
    store(out, extra, p, z, split, i, j, value)     writes C[i, j]

where p is a tuple of integers (sizes, strides, paddings), z the batch (matmul) or group (convolution) the block
works on, and `extra` an array the op may need (matmul's per-batch offsets, the convolution's bias).

Tiling (sizes are compile-time constants — shared arrays need them):

    * a block of THREADS = (BM/TM)·(BN/TN) threads computes a BM × BN tile of C;
    * it walks K in steps of BK: the threads copy an A tile (BM × BK) and a B tile (BK × BN) into shared memory,
      reading consecutive addresses together (the loaders say which index is the contiguous one), wait, and each
      thread multiplies what it needs for its TM × TN outputs, held in registers;
    * thread (ty, tx) owns rows ty + u·(BM/TM) and columns tx + v·(BN/TN): neighbouring threads read neighbouring
      shared-memory words (no bank conflicts) and write neighbouring columns of C.
    * grid = (⌈N/BN⌉, ⌈M/BM⌉, batches · splits). With splits > 1 ("split-K") block s takes the s-th slice of K
      and the store writes a partial result; the caller sums the slices afterwards.

Per block: BM·BN·BK multiply-adds for (BM + BN)·BK loads, so bigger tiles reuse each load more; small tiles waste
less when M or N is small. `choose_tiling` picks per product shape at compile time.
"""
import math
from dataclasses import dataclass
from functools import lru_cache

from numba import cuda

from ..errors import GraphError

P_SIZE = 20         # integers in p; the layout of p[4:] belongs to each op (p[0:4] = M, N, K, splits)
SHARED_PAD = 4      # extra columns in the shared tiles: consecutive k of a k-contiguous tile fall in different banks


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


TILINGS = (                           # in order of preference for large products (measured on an H100: at 2048³
    Tiling(64, 64, 8, 4, 4),          # 64x64 ran at 13.5 TFLOP/s, 128x128 at 7.8 — its 160 registers per thread
    Tiling(128, 128, 8, 8, 8),        # leave room for one block per multiprocessor)
    Tiling(16, 128, 8, 2, 4),
    Tiling(128, 16, 8, 4, 2),
    Tiling(32, 32, 16, 2, 2),
)
BIG_ENOUGH = 132    # blocks that keep every multiprocessor of a large GPU busy (an H100 has 132)


def choose_tiling(m, n, depth=1):
    """The first tile (in TILINGS' order) that wastes at most a quarter of its work on padding and still fills the
    GPU; failing that, the one that wastes least, and among those the one with most blocks."""
    def efficiency(t):
        return (m * n) / (math.ceil(m / t.block_m) * t.block_m * math.ceil(n / t.block_n) * t.block_n)

    def blocks(t):
        return math.ceil(m / t.block_m) * math.ceil(n / t.block_n) * depth

    for t in TILINGS:
        if efficiency(t) >= 0.75 and blocks(t) >= BIG_ENOUGH:
            return t
    return max(TILINGS, key=lambda t: (efficiency(t), blocks(t)))


def check_tiling(t):
    if t.threads > 1024 or t.block_m % t.thread_m or t.block_n % t.thread_n:
        raise GraphError(f"tiling {t}: a thread's TM x TN outputs must divide the tile, and at most 1024 threads")


@lru_cache(maxsize=None)
def tiled_gemm(tiling, load_a, load_b, store, a_k_contiguous, b_n_contiguous, dtype):
    """The kernel(out, a, b, extra, p) for one tiling, one pair of loaders, one store and one dtype (Numba type)."""
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

    @cuda.jit
    def gemm(out, a, b, extra, p):
        tile_a = cuda.shared.array((BK, A_COLUMNS), dtype)      # tile_a[k, i] = A[row0 + i, k0 + k]
        tile_b = cuda.shared.array((BK, B_COLUMNS), dtype)      # tile_b[k, j] = B[k0 + k, col0 + j]
        acc = cuda.local.array((TM, TN), dtype)
        a_regs = cuda.local.array(TM, dtype)
        b_regs = cuda.local.array(TN, dtype)
        t = cuda.threadIdx.x
        tx = t % RX
        ty = t // RX
        row0 = cuda.blockIdx.y * BM
        col0 = cuda.blockIdx.x * BN
        m, n, k_total, splits = p[0], p[1], p[2], p[3]
        z = cuda.blockIdx.z // splits
        split = cuda.blockIdx.z % splits
        k_chunk = ((k_total + splits - 1) // splits + BK - 1) // BK * BK
        k_start = split * k_chunk
        k_stop = min(k_total, k_start + k_chunk)
        for u in range(TM):
            for v in range(TN):
                acc[u, v] = 0
        for k0 in range(k_start, k_stop, BK):
            for l in range(A_LOADS):
                e = t + l * THREADS
                if e >= A_SIZE:
                    break
                if a_k_contiguous:
                    kk = e % BK
                    ii = e // BK
                else:
                    ii = e % BM
                    kk = e // BM
                i = row0 + ii
                k = k0 + kk
                if i < m and k < k_stop:
                    tile_a[kk, ii] = load_a(a, extra, p, z, i, k)
                else:
                    tile_a[kk, ii] = 0
            for l in range(B_LOADS):
                e = t + l * THREADS
                if e >= B_SIZE:
                    break
                if b_n_contiguous:
                    jj = e % BN
                    kk = e // BN
                else:
                    kk = e % BK
                    jj = e // BK
                j = col0 + jj
                k = k0 + kk
                if j < n and k < k_stop:
                    tile_b[kk, jj] = load_b(b, extra, p, z, k, j)
                else:
                    tile_b[kk, jj] = 0
            cuda.syncthreads()
            for kk in range(BK):
                for u in range(TM):
                    a_regs[u] = tile_a[kk, ty + u * RY]
                for v in range(TN):
                    b_regs[v] = tile_b[kk, tx + v * RX]
                for u in range(TM):
                    for v in range(TN):
                        acc[u, v] += a_regs[u] * b_regs[v]
            cuda.syncthreads()
        for u in range(TM):
            i = row0 + ty + u * RY
            if i < m:
                for v in range(TN):
                    j = col0 + tx + v * RX
                    if j < n:
                        store(out, extra, p, z, split, i, j, acc[u, v])

    return gemm


def pack(values):
    """p: the integers a GEMM's device functions read, padded to P_SIZE."""
    values = [int(v) for v in values]
    if len(values) > P_SIZE:
        raise GraphError(f"internal: {len(values)} GEMM parameters, at most {P_SIZE}")
    return tuple(values + [0] * (P_SIZE - len(values)))
