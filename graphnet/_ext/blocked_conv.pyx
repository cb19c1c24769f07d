# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Register-blocked direct convolution for the thin float32 layers of the cpu backend (NCHW, one group, any
stride, padding and dilation): the `blocked` algorithm of conv.pyx's forward pass, with bias and ReLU fused.

    y[n, k, oh, ow] = b[k] + Σ_{c, r, s} w[k, c, r, s] · x[n, c, oh·sh + r·dh − pt, ow·sw + s·dw − pl]

The C kernels are in blocked_conv.h (vectors of output channels, a tile of output columns held in registers, no
im2col matrix; the header explains them) and are compiled for AVX-512 and for AVX2 + FMA; `LANES` says which one
this processor runs (16 or 8 floats per vector), 0 where it has neither or graphnet was built without gcc on x86-64
— then `applies` is False and conv.pyx keeps im2col + sgemm.

Why it exists. im2col + GEMM copies every input value R·S times before multiplying; in a thin layer — few input
channels, or a stride — the copying takes as long as the multiply-adds. Measured on the 2-core Intel Xeon (AVX-512),
one thread, 64 images (benchmarks/bench_cpu.py): LeNet's 6 → 16 5×5 layer at 14×14 ran in 0.87 ms by im2col +
sgemm, half of it unfolding, against PyTorch's 0.29 ms; the 16 → 32 3×3 stride-2 layer at 32×32 in 4.9 ms against
1.7 ms. The blocked kernels run those at 100–120 GFLOP/s (see `worthwhile` for where conv.pyx chooses them).

Threads and workspace. The weights (and bias) are packed once per call into the start of the workspace; then the
images are handed out to OpenMP threads one at a time (dynamic schedule). When the layer has padding each thread
has a slot holding a zero-padded copy of one image: zeroed once per call, each image then copies only its own
values into it (while the previous image's tiles ran, its values were asked into the cache); without padding the
kernels read x in place. Each output value is computed by one thread, in one order: the result does not depend
on the thread count.
"""
from cython.parallel cimport prange, threadid
cimport numpy as cnp
cimport openmp
from libc.string cimport memset

import numpy as np

from graphnet._ext._buffers cimport data, require_floats
from graphnet._ext._sizes import CACHE_LINE, aligned, output_shape

cnp.import_array()


cdef extern from "blocked_conv.h" nogil:
    ctypedef struct BlockedConv:
        Py_ssize_t channels, kernels
        Py_ssize_t kh, kw, sh, sw, dh, dw
        Py_ssize_t plane, row
        Py_ssize_t out_h, out_w, out_plane
        Py_ssize_t height, width, pt, pl
        Py_ssize_t padded_h, padded_w
    int blocked_lanes()
    void blocked_pad(int lanes, const BlockedConv* cv, const float* plane, float* padded)   # the values, not the 0s
    void blocked_pack(const BlockedConv* cv, const float* w, const float* bias, int lanes, float* packed,
                      float* packed_bias)
    void blocked_image(int lanes, const BlockedConv* cv, const float* x, const float* packed,
                       const float* packed_bias, int relu, float* y, const float* next, Py_ssize_t ahead)


PROCESSOR_LANES = blocked_lanes()      # floats per vector on this processor: 16, 8, or 0 (the kernels do not run)
LANES = PROCESSOR_LANES                # the width the kernels run at (PROCESSOR_LANES unless use_lanes changed it);
                                       # a call reads it once, into its plan


def use_lanes(lanes):
    """Run the kernels of another vector width than the processor's best, e.g. the AVX2 ones (8) on an AVX-512
    processor, for tests and benchmarks; returns the width used before. The processor must have that width."""
    global LANES
    if lanes not in (0, 8, 16) or lanes > PROCESSOR_LANES:
        raise ValueError(f"use_lanes({lanes!r}): this processor runs the blocked kernels at "
                         f"{' or '.join(str(n) for n in (16, 8) if n <= PROCESSOR_LANES) or 'no'} lanes (0: off)")
    before, LANES = LANES, lanes
    return before

cdef enum:
    ROW_ALIGNMENT = 16                 # floats: the padded copy's rows are this many floats apart (a multiple), and
                                       # each row's copy of x starts on a 64-byte line: aligned vector stores

MIN_FILL = 0.7                         # worthwhile: the share of vector lanes the output channels must fill ...
MIN_COLUMNS = 4                        # ... the output columns a row must have
MIN_TAPS = 32                          # ... and the products C·R·S each output sums


cdef struct Plan:
    int lanes                          # the vector width every kernel of the call runs at (LANES when planned)
    BlockedConv cv                     # for x read in place (no padding), or for the padded copy
    Py_ssize_t images, image_size
    bint pads                          # the windows read padding: each image is copied zero-padded first ...
    Py_ssize_t shift                   # ... from this float of the slot on, so that column pl is 64-byte aligned
    Py_ssize_t weight_floats            # the packed weights: blocks · LANES · C·R·S (the packed bias follows)
    Py_ssize_t packed_bytes, slot_bytes
    int threads


def why_not(x_shape, w_shape, groups, dtype):
    """None where the blocked kernels compute this layer's forward pass, else the reason."""
    if LANES == 0:
        return "this processor has neither AVX-512 nor AVX2 with FMA (or graphnet was built without gcc on x86-64)"
    if np.dtype(dtype) != np.float32:
        return f"they are float32 only, got {np.dtype(dtype)}"
    if groups != 1:
        return f"they take one group, got groups={groups}"
    if len(x_shape) != 4 or len(w_shape) != 4 or x_shape[1] != w_shape[1]:
        return f"x {tuple(x_shape)} and w {tuple(w_shape)} are not (N, C, H, W) and (K, C, R, S)"
    return None


def applies(x_shape, w_shape, groups, dtype):
    return why_not(x_shape, w_shape, groups, dtype) is None


def worthwhile(x_shape, w_shape, y_shape):
    """Whether the blocked kernels beat im2col + sgemm on this layer (where Winograd and 1×1 GEMMs do not apply;
    conv.pyx asks those first): where the output channels fill at least MIN_FILL of the vector lanes they take
    (K / (⌈K / LANES⌉ · LANES)), an output row gives a tile of at least MIN_COLUMNS columns, and each output sums
    at least MIN_TAPS products C·R·S. Measured with benchmarks/bench_blocked_conv.py (2-core Intel Xeon, one
    thread; the AVX2 kernels by use_lanes(8) on the same machine), blocked against im2col + sgemm: 16 of 16 lanes
    filled (LeNet's 6 → 16 5×5) 3x faster, 24 of 32 (16 → 24 3×3 at 8×8) 2x, 50 of 64 (20 → 50 5×5) 1.7x, the
    16 → 32 3×3 stride-2 layer 2.2x; 6 of 16 (LeNet's 1 → 6 5×5) 1.3x slower; 3 → 32 3×3 (27 taps) even at 16 lanes
    and 1.4x slower at 8."""
    if LANES == 0:
        return False
    kernels, out_w = w_shape[0], y_shape[3]
    fill = kernels / (-(-kernels // LANES) * LANES)
    taps = w_shape[1] * w_shape[2] * w_shape[3]
    return fill >= MIN_FILL and out_w >= MIN_COLUMNS and taps >= MIN_TAPS


cdef int make_plan(str kernel, tuple x_shape, tuple w_shape, tuple y_shape, stride, padding, dilation,
                   Plan* p) except -1:
    n, c, h, w = x_shape
    k, _, kh, kw = w_shape
    (sh, sw), ((pt, pb), (pl, pr)), (dh, dw) = stride, padding, dilation
    expected = output_shape(x_shape, w_shape, stride, padding, dilation)
    if tuple(y_shape) != expected:
        raise ValueError(f"cpu.{kernel}: x {x_shape} and w {w_shape} with stride {stride}, padding {padding} and "
                         f"dilation {dilation} give y (N, K, floor((H + pt + pb − dh·(R−1) − 1)/sh) + 1, ...) = "
                         f"{expected}; got {tuple(y_shape)}")
    out_h, out_w = expected[2:]
    padded_h, padded_w = (out_h - 1) * sh + (kh - 1) * dh + 1, (out_w - 1) * sw + (kw - 1) * dw + 1
    p.pads = pt > 0 or pl > 0 or padded_h > h or padded_w > w
    p.cv.channels, p.cv.kernels = c, k
    p.cv.kh, p.cv.kw, p.cv.sh, p.cv.sw, p.cv.dh, p.cv.dw = kh, kw, sh, sw, dh, dw
    p.cv.row = -(-padded_w // ROW_ALIGNMENT) * ROW_ALIGNMENT if p.pads else w
    p.cv.plane = padded_h * p.cv.row if p.pads else h * w
    p.shift = (ROW_ALIGNMENT - pl % ROW_ALIGNMENT) % ROW_ALIGNMENT
    p.cv.out_h, p.cv.out_w, p.cv.out_plane = out_h, out_w, out_h * out_w
    p.cv.height, p.cv.width, p.cv.pt, p.cv.pl, p.cv.padded_h, p.cv.padded_w = h, w, pt, pl, padded_h, padded_w
    p.images, p.image_size = n, c * h * w
    p.lanes = LANES
    blocks = (k + p.lanes - 1) // p.lanes
    p.weight_floats = blocks * p.lanes * c * kh * kw
    p.packed_bytes = aligned((p.weight_floats + blocks * p.lanes) * 4)
    p.slot_bytes = aligned((p.shift + c * p.cv.plane) * 4) if p.pads else 0
    return 0


def blocked_workspace_bytes(x_shape, w_shape, y_shape, stride, padding, dilation, threads):
    """Bytes of workspace a call needs with `threads` OpenMP threads: the packed weights and bias, and for a padded
    layer one zero-padded image per thread (and CACHE_LINE − 1 bytes to start them on a cache line)."""
    cdef Plan p
    make_plan("blocked_workspace_bytes", tuple(x_shape), tuple(w_shape), tuple(y_shape), stride, padding, dilation,
              &p)
    return int(CACHE_LINE - 1 + p.packed_bytes + max(1, min(int(threads), p.images)) * p.slot_bytes)


cdef void run_batch(const Plan* p, const float* x, const float* packed, const float* packed_bias, bint relu,
                    float* y, char* slots) noexcept nogil:
    """Every image; a padded layer first copies the image into the thread's slot, whose padding is zeroed once,
    before the images (copying only the image's own values into a padded copy that stays zero elsewhere halved the
    copy's cost: it is row by row, and a row is short)."""
    cdef Py_ssize_t n, c, ahead
    cdef const float* image
    cdef float* padded
    if p.pads:
        memset(slots, 0, p.threads * p.slot_bytes)
    for n in prange(p.images, num_threads=p.threads, schedule="dynamic"):
        image = x + n * p.image_size
        ahead = 0
        if p.pads:
            padded = <float*>(slots + threadid() * p.slot_bytes) + p.shift
            for c in range(p.cv.channels):
                blocked_pad(p.lanes, &p.cv, image + c * p.cv.height * p.cv.width, padded + c * p.cv.plane)
            image = padded
            if n + 1 < p.images:
                ahead = p.image_size
        blocked_image(p.lanes, &p.cv, image, packed, packed_bias, relu, y + n * p.cv.kernels * p.cv.out_plane,
                      x + (n + 1) * p.image_size, ahead)


def blocked_conv2d(cnp.ndarray out, cnp.ndarray x, cnp.ndarray w, cnp.ndarray b=None, *, stride, padding, dilation,
                   groups=1, relu=False, workspace=None):
    """out = conv(x, w) + b (then max(·, 0) if relu): x (N, C, H, W), w (K, C, R, S), b (K,) or None, out
    (N, K, OH, OW), all float32; stride and dilation pairs, padding ((pt, pb), (pl, pr)). workspace: uint8,
    blocked_workspace_bytes(...) long (None: allocate)."""
    cdef Plan p
    reason = why_not((<object>x).shape, (<object>w).shape, groups, out.dtype)
    if reason is not None:
        raise ValueError(f"cpu.conv2d: the blocked convolution does not apply: {reason}")
    require_floats("conv2d", out, (x, w) if b is None else (x, w, b))
    if b is not None and cnp.PyArray_SIZE(b) != w.shape[0]:
        raise ValueError(f"cpu.conv2d: the bias needs one value per output channel ({w.shape[0]}), got "
                         f"{(<object>b).shape}")
    make_plan("conv2d", (<object>x).shape, (<object>w).shape, (<object>out).shape, stride, padding, dilation, &p)
    if cnp.PyArray_SIZE(out) == 0:
        return
    if workspace is None:
        workspace = np.empty(CACHE_LINE - 1 + p.packed_bytes
                             + min(openmp.omp_get_max_threads(), p.images) * p.slot_bytes, dtype=np.uint8)
    if not isinstance(workspace, np.ndarray) or workspace.dtype != np.uint8 or not workspace.flags.c_contiguous:
        raise TypeError("cpu.conv2d: the workspace must be a C-contiguous uint8 array")
    usable = workspace.nbytes - (CACHE_LINE - 1)
    if usable < p.packed_bytes + p.slot_bytes:
        raise ValueError(f"cpu.conv2d: the workspace holds {workspace.nbytes} bytes; one thread needs "
                         f"{CACHE_LINE - 1 + p.packed_bytes + p.slot_bytes} (blocked_workspace_bytes)")
    slots = (usable - p.packed_bytes) // p.slot_bytes if p.slot_bytes else p.images
    p.threads = max(1, min(slots, openmp.omp_get_max_threads(), p.images))
    cdef const float* x_data = <float*>data(x)
    cdef const float* w_data = <float*>data(w)
    cdef const float* b_data = NULL if b is None else <float*>data(b)
    cdef float* y_data = <float*>data(out)
    cdef char* space = <char*>data(workspace)
    cdef size_t line = CACHE_LINE
    space += (line - <size_t>space % line) % line          # the first cache line in it
    cdef float* packed = <float*>space
    cdef float* packed_bias = packed + p.weight_floats
    cdef bint epilogue_relu = relu
    with nogil:
        blocked_pack(&p.cv, w_data, b_data, p.lanes, packed, packed_bias)
        run_batch(&p, x_data, packed, packed_bias, epilogue_relu, y_data, space + p.packed_bytes)
