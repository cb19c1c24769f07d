# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""2-D max and average pooling of the cpu backend (NCHW), forward and backward, like graphnet.backends.reference.pool.

With window (KH, KW), stride (sh, sw) and padding ((pt, pb), (pl, pr)), output position (oh, ow) pools the window

    x[n, c, oh·sh + r − pt, ow·sw + s − pl]        0 ≤ r < KH, 0 ≤ s < KW,    OH = floor((H + pt + pb − KH) / sh) + 1

(with ceil_mode, OH = ceil(...) + 1, less 1 if that window would start in the bottom padding: a last window may
reach past the padded input, and the positions there take part in nothing)

    max_pool2d        y = the largest value of the window's real positions (padding never wins; NaN wins, as in
                      np.maximum)
    max_pool2d_grad   dx[first position p of the window, in row-major order, with x[p] ≡ y] += dy
                      (v ≡ y: v == y, or both NaN — a NaN max's gradient goes to the NaN, as in PyTorch)
    avg_pool2d        y = (sum of the window's real positions) / divisor      (padding counts as 0)
    avg_pool2d_grad   dx[p] += dy / divisor for every real position p of the window

The divisor is KH·KW wherever every window lies inside the padded input and padding counts (PyTorch's
count_include_pad=True): that case divides by one constant, as it always did. Otherwise (a partial ceil_mode window,
or count_include_pad=False with padding) it is rows(oh) · columns(ow), the window's rows and columns inside the
padded input (count_include_pad) or inside the input, from two small tables computed once per call.

Where windows overlap (stride < window) a position collects from every window it belongs to.

The gradients fuse with the relu_grad after them (graphnet/ops/fused.py; the backward pass of a relu → pool layer):

    max_pool2d_grad_relu   dx = max_pool2d_grad(dy, x, y) · [relu_y > 0]
    avg_pool2d_grad_relu   dx = avg_pool2d_grad(dy) · [relu_y > 0]

relu_y is the relu's output: in a compiled program the pool's input x itself (the chain fuses only where the pool
gradient is all of the relu's gradient, so the relu feeds the pool). The values are exactly those of the two
kernels in a row — relu_grad's dy · [y > 0] is a multiplication, so where y > 0 fails a NaN or ±inf gradient
gives NaN and a negative one −0 — but the mask is applied while the plane is in L1, not after a trip through
memory:

    max, windows tiling the plane, relu_y is x   each window's dy is masked by the window's max before it is
                                                 routed: the position it goes to holds x = y, so [x > 0] = [y > 0]
                                                 there, and every other position gets 0, which the mask leaves +0
    avg, 2×2/2                                   each position written as dy / 4 · [relu_y > 0]
    any other (overlapping or padded windows,    the finished plane is multiplied by [relu_y > 0] (a position
    a relu_y that is not x)                      may sum several windows' dy, so only then is its mask applied)

One pass over memory: the N·C planes are handed out to OpenMP threads PLANES_PER_CHUNK at a time, and each plane
is finished (read, and its output written) before the next. Windows that tile the plane exactly (window = stride,
no padding) take the fast path: for the common 2×2/2 window, loops written out per window (max, mean, and the
gradients, which then write every dx position once, with no zero-fill and no read-modify-write). Any other window
runs tap by tap (see "row passes" below); its gradients zero-fill the plane and scatter-add into it while it sits
in L1.

The max gradient finds each window's winner again from x and the forward output y, as cuDNN does, rather than
reading an argmax saved by the forward pass: the graph hands max_pool2d_grad x and y anyway, and the search
costs a few comparisons per window on data already in cache. (An argmax array would replace the reads of x by
reads of a 4-byte index per window — about 30% less memory traffic for the backward of a 2×2 pool — at the price
of a second output of the forward op; see the report of issue 3.)
"""
from cython.parallel cimport prange, threadid
cimport numpy as cnp
cimport openmp
from libc.math cimport INFINITY

import numpy as np

from graphnet._ext._buffers cimport data, real, require_floats
from graphnet._ext._windows cimport Window, first_inside, stop_inside
from graphnet.ops.pool import AvgPool2d, AvgPool2dGrad, MaxPool2d, MaxPool2dGrad
from graphnet.ops.fused import AvgPool2dGradReluGrad, MaxPool2dGradReluGrad

cnp.import_array()

cdef enum:
    PARALLEL_MIN = 16384               # input elements before a second thread pays for waking up
    PLANES_PER_CHUNK = 16              # planes a thread takes at a time (dynamic schedule)

cdef enum Pooling:
    MAX_FORWARD, MAX_BACKWARD, AVG_FORWARD, AVG_BACKWARD


cdef struct Pool:
    Window win
    const Py_ssize_t* col_first        # per window column s: the output columns [col_first[s], col_stop[s])
    const Py_ssize_t* col_stop         # whose tap s lies inside the plane (computed once per call)
    bint tiled                         # the windows tile the plane: window = stride, no padding, none partial
    bint uniform                       # every average divides by KH·KW
    const double* row_size             # else window (oh, ow) divides by row_size[oh] · col_size[ow]
    const double* col_size


cdef struct Span:                      # the real (non-padding) input rows of one window
    Py_ssize_t first, stop


cdef inline Span window_rows(Py_ssize_t oh, const Window* win) noexcept nogil:
    cdef Span span
    span.first = oh * win.sh - win.pt
    span.stop = span.first + win.kh
    if span.first < 0:
        span.first = 0
    if span.stop > win.height:
        span.stop = win.height
    return span


# ----------------------------------------------------------------------------------------------------------------
# row passes. For window row r and window column s, one pass along an output row updates every window that has that
# tap inside the plane (windows whose tap falls in the padding are left out by the column range, so padding never
# takes part). A pass reads the input with the stride sw; the passes are inline functions called with the literal
# stride 1 or 2 where it is one, so that the compiler sees a constant stride and vectorizes them.

cdef inline void max_pass(real* y_row, const real* x_tap, Py_ssize_t first, Py_ssize_t stop,
                          Py_ssize_t stride) noexcept nogil:
    """y_row[ow] = max(y_row[ow], x_tap[ow·stride]); NaN wins and then stays (v != v only for NaN)."""
    cdef Py_ssize_t ow
    cdef real v, best
    for ow in range(first, stop):                  # `|`, not `or`: no branch to mispredict, so it vectorizes
        v = x_tap[ow * stride]
        best = y_row[ow]
        y_row[ow] = v if (v > best) | (v != v) else best


cdef inline void sum_pass(real* y_row, const real* x_tap, Py_ssize_t first, Py_ssize_t stop,
                          Py_ssize_t stride) noexcept nogil:
    cdef Py_ssize_t ow
    for ow in range(first, stop):
        y_row[ow] += x_tap[ow * stride]


cdef inline void spread_pass(real* dx_tap, const real* share, Py_ssize_t first, Py_ssize_t stop,
                             Py_ssize_t stride) noexcept nogil:
    cdef Py_ssize_t ow
    for ow in range(first, stop):
        dx_tap[ow * stride] += share[ow]


cdef inline bint is_max(real v, real best) noexcept nogil:
    """v is where the window's max came from: equal to it, or NaN like it (`|` and `&`: no branch)."""
    return (v == best) | ((v != v) & (best != best))


cdef inline void route_pass(real* dx_tap, const real* x_tap, const real* y_row, const real* dy_row, real* routed,
                            Py_ssize_t first, Py_ssize_t stop, Py_ssize_t stride) noexcept nogil:
    """Windows not routed yet whose tap holds their max take the gradient here (adds 0 otherwise; within one pass
    every window touches a different position, so the adds never collide)."""
    cdef Py_ssize_t ow
    cdef bint take
    for ow in range(first, stop):
        take = (routed[ow] == 0) & is_max(x_tap[ow * stride], y_row[ow])
        dx_tap[ow * stride] += dy_row[ow] if take else 0
        routed[ow] = 1 if take else routed[ow]


cdef inline void zero(real* values, Py_ssize_t count) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(count):
        values[i] = 0


cdef void relu_mask(real* out, const real* gradient, const real* relu_y, Py_ssize_t count) noexcept nogil:
    """out = gradient · [relu_y > 0], relu_grad's formula to the bit (out may not overlap gradient).

    Written as relu_grad's loop is, the ternary inside the loop, and GCC vectorizes it. Put the ternary in an inline
    function of its own (or write the factor as <real>(y > 0)) and GCC turns `· 1` into nothing and `· 0` into a
    branch before it sees the loop; a float multiply may trap, so it will not run it unconditionally, and the loop
    stays scalar and mispredicts: 10× slower on a relu output, measured."""
    cdef Py_ssize_t i
    for i in range(count):
        out[i] = gradient[i] * (<real>1 if relu_y[i] > 0 else <real>0)


cdef void relu_mask_inplace(real* dx, const real* relu_y, Py_ssize_t count) noexcept nogil:
    """dx = dx · [relu_y > 0] (one pointer, so that the loop needs no runtime overlap check)."""
    cdef Py_ssize_t i
    for i in range(count):
        dx[i] = dx[i] * (<real>1 if relu_y[i] > 0 else <real>0)


# ----------------------------------------------------------------------------------------------------------------
# one plane each

cdef void max_plane(const real* x, real* y, const Pool* pool) noexcept nogil:
    cdef const Window* win = &pool.win
    cdef Py_ssize_t oh, ow, top, s, sw = win.sw
    cdef Span rows
    cdef real* y_row
    cdef const real* x_tap
    for oh in range(win.out_h):
        rows = window_rows(oh, win)
        y_row = y + oh * win.out_w
        for ow in range(win.out_w):
            y_row[ow] = -INFINITY
        for top in range(rows.first, rows.stop):
            for s in range(win.kw):
                x_tap = x + top * win.width + s - win.pl
                if sw == 2:
                    max_pass(y_row, x_tap, pool.col_first[s], pool.col_stop[s], 2)
                elif sw == 1:
                    max_pass(y_row, x_tap, pool.col_first[s], pool.col_stop[s], 1)
                else:
                    max_pass(y_row, x_tap, pool.col_first[s], pool.col_stop[s], sw)


cdef void avg_plane(const real* x, real* y, const Pool* pool) noexcept nogil:
    cdef const Window* win = &pool.win
    cdef Py_ssize_t oh, ow, top, s, sw = win.sw
    cdef Span rows
    cdef real* y_row
    cdef const real* x_tap
    cdef real size = win.kh * win.kw
    cdef double window_rows_size
    for oh in range(win.out_h):
        rows = window_rows(oh, win)
        y_row = y + oh * win.out_w
        zero(y_row, win.out_w)
        for top in range(rows.first, rows.stop):
            for s in range(win.kw):
                x_tap = x + top * win.width + s - win.pl
                if sw == 2:
                    sum_pass(y_row, x_tap, pool.col_first[s], pool.col_stop[s], 2)
                elif sw == 1:
                    sum_pass(y_row, x_tap, pool.col_first[s], pool.col_stop[s], 1)
                else:
                    sum_pass(y_row, x_tap, pool.col_first[s], pool.col_stop[s], sw)
        if pool.uniform:
            for ow in range(win.out_w):
                y_row[ow] = y_row[ow] / size
        else:
            window_rows_size = pool.row_size[oh]
            for ow in range(win.out_w):
                y_row[ow] = y_row[ow] / <real>(window_rows_size * pool.col_size[ow])


cdef void avg_grad_plane(const real* dy, real* dx, real* share, const Pool* pool) noexcept nogil:
    """dx = 0, then dy / divisor (one output row of it in `share`) added to every real position of each window."""
    cdef const Window* win = &pool.win
    cdef Py_ssize_t oh, ow, top, s, sw = win.sw
    cdef Span rows
    cdef real* dx_tap
    cdef real size = win.kh * win.kw
    cdef double window_rows_size
    zero(dx, win.height * win.width)
    for oh in range(win.out_h):
        rows = window_rows(oh, win)
        if pool.uniform:
            for ow in range(win.out_w):
                share[ow] = dy[oh * win.out_w + ow] / size
        else:
            window_rows_size = pool.row_size[oh]
            for ow in range(win.out_w):
                share[ow] = dy[oh * win.out_w + ow] / <real>(window_rows_size * pool.col_size[ow])
        for top in range(rows.first, rows.stop):
            for s in range(win.kw):
                dx_tap = dx + top * win.width + s - win.pl
                if sw == 2:
                    spread_pass(dx_tap, share, pool.col_first[s], pool.col_stop[s], 2)
                elif sw == 1:
                    spread_pass(dx_tap, share, pool.col_first[s], pool.col_stop[s], 1)
                else:
                    spread_pass(dx_tap, share, pool.col_first[s], pool.col_stop[s], sw)


cdef void max_grad_plane(const real* dy, const real* x, const real* y, real* dx, real* routed,
                         const Pool* pool) noexcept nogil:
    """dx = 0, then each dy to the first position (row-major) of its window that holds the window's max y.

    `routed` (one output row of flags) marks the windows of the current output row that have given theirs away;
    the taps are visited in row-major order, so the first match wins. A NaN max matches the window's first NaN,
    as in the reference."""
    cdef const Window* win = &pool.win
    cdef Py_ssize_t oh, top, s, sw = win.sw
    cdef Span rows
    cdef const real* x_tap
    cdef real* dx_tap
    zero(dx, win.height * win.width)
    for oh in range(win.out_h):
        rows = window_rows(oh, win)
        zero(routed, win.out_w)
        for top in range(rows.first, rows.stop):
            for s in range(win.kw):
                x_tap = x + top * win.width + s - win.pl
                dx_tap = dx + top * win.width + s - win.pl
                if sw == 2:
                    route_pass(dx_tap, x_tap, y + oh * win.out_w, dy + oh * win.out_w, routed, pool.col_first[s],
                               pool.col_stop[s], 2)
                elif sw == 1:
                    route_pass(dx_tap, x_tap, y + oh * win.out_w, dy + oh * win.out_w, routed, pool.col_first[s],
                               pool.col_stop[s], 1)
                else:
                    route_pass(dx_tap, x_tap, y + oh * win.out_w, dy + oh * win.out_w, routed, pool.col_first[s],
                               pool.col_stop[s], sw)


cdef void route_tiles(const real* dy, const real* x, const real* y, real* dx, const Window* win) noexcept nogil:
    """The max gradient when the windows tile the plane (kh = sh, kw = sw, no padding): window by window, each
    position of the tiled area is written once — dy where the window's first max sits, 0 elsewhere — and the rows
    and columns no window covers are zeroed. No memset, no read-modify-write."""
    cdef Py_ssize_t oh, ow, r, s, position, width = win.width, out_w = win.out_w, kh = win.kh, kw = win.kw
    cdef real best, gradient
    cdef int found, take
    for oh in range(win.out_h):
        for ow in range(out_w):
            best = y[oh * out_w + ow]
            gradient = dy[oh * out_w + ow]
            found = 0
            for r in range(kh):
                for s in range(kw):
                    position = (oh * kh + r) * width + ow * kw + s
                    take = is_max(x[position], best) & (found ^ 1)
                    dx[position] = gradient if take else 0
                    found = found | take
        for r in range(kh):
            zero(dx + (oh * kh + r) * width + out_w * kw, width - out_w * kw)
    zero(dx + win.out_h * kh * width, (win.height - win.out_h * kh) * width)


# ----------------------------------------------------------------------------------------------------------------
# the 2×2 window with stride 2 and no padding, written out. Each window's taps are a b (top row) / c d (bottom
# row). The loops over ow compute every condition into its own variable before any store and combine comparisons
# with `&` and `|` (never `and`/`or`, which branch): then GCC vectorizes them (checked with -fopt-info-vec).

cdef inline real max_with_nan(real a, real b, real c, real d) noexcept nogil:
    """max(a, b, c, d), NaN if any of them is NaN (np.maximum's rule), one comparison at a time."""
    cdef real best = a
    if b > best or b != b:
        best = b
    if c > best or c != c:
        best = c
    if d > best or d != d:
        best = d
    return a if a != a else best


cdef void max_tiles_2x2(const real* x, real* y, const Window* win) noexcept nogil:
    """y = max(a, b, c, d), NaN if any of them is NaN (like np.maximum).

    The vectorized loop takes the larger of each pair (a NaN may be lost there) and returns the sum a + b + c + d
    instead where that sum is NaN — always the case when an input is NaN, but also for +inf with −inf. The outputs
    that came out NaN are then recomputed one at a time: NaN is rare, so that loop costs one predictable branch
    per output."""
    cdef Py_ssize_t oh, ow, width = win.width, out_w = win.out_w
    cdef const real* top
    cdef const real* bottom
    cdef real* y_row
    cdef real a, b, c, d, ab, cd, largest, total
    for oh in range(win.out_h):
        top, bottom = x + 2 * oh * width, x + (2 * oh + 1) * width
        y_row = y + oh * out_w
        for ow in range(out_w):
            a, b, c, d = top[2 * ow], top[2 * ow + 1], bottom[2 * ow], bottom[2 * ow + 1]
            ab = a if a > b else b
            cd = c if c > d else d
            largest = ab if ab > cd else cd
            total = a + b + c + d
            y_row[ow] = total if total != total else largest
        for ow in range(out_w):
            if y_row[ow] != y_row[ow]:
                y_row[ow] = max_with_nan(top[2 * ow], top[2 * ow + 1], bottom[2 * ow], bottom[2 * ow + 1])


cdef void avg_tiles_2x2(const real* x, real* y, const Window* win) noexcept nogil:
    """y = (a + b + c + d) / 4, summed in the reference's order."""
    cdef Py_ssize_t oh, ow, width = win.width, out_w = win.out_w
    cdef const real* top
    cdef const real* bottom
    for oh in range(win.out_h):
        top, bottom = x + 2 * oh * width, x + (2 * oh + 1) * width
        for ow in range(out_w):
            y[oh * out_w + ow] = (top[2 * ow] + top[2 * ow + 1] + bottom[2 * ow] + bottom[2 * ow + 1]) / 4


cdef void route_tiles_2x2(const real* dy, const real* x, const real* y, real* dx, const Window* win) noexcept nogil:
    """The max gradient: dy goes to the first of a b c d that is the max (is_max), 0 to the others; every
    position is written once (no zero-fill, no read-modify-write), and the rows and columns no window covers are
    zeroed."""
    cdef Py_ssize_t oh, ow, width = win.width, out_w = win.out_w
    cdef const real* top
    cdef const real* bottom
    cdef real* dx_top
    cdef real* dx_bottom
    cdef real a, b, c, d, best, g
    cdef int take_a, take_b, take_c, take_d
    for oh in range(win.out_h):
        top, bottom = x + 2 * oh * width, x + (2 * oh + 1) * width
        dx_top, dx_bottom = dx + 2 * oh * width, dx + (2 * oh + 1) * width
        for ow in range(out_w):
            a, b, c, d = top[2 * ow], top[2 * ow + 1], bottom[2 * ow], bottom[2 * ow + 1]
            best, g = y[oh * out_w + ow], dy[oh * out_w + ow]
            take_a = is_max(a, best)
            take_b = is_max(b, best) & (take_a ^ 1)
            take_c = is_max(c, best) & ((take_a | take_b) ^ 1)
            take_d = is_max(d, best) & ((take_a | take_b | take_c) ^ 1)
            dx_top[2 * ow] = g if take_a else 0
            dx_top[2 * ow + 1] = g if take_b else 0
            dx_bottom[2 * ow] = g if take_c else 0
            dx_bottom[2 * ow + 1] = g if take_d else 0
        zero(dx_top + 2 * out_w, width - 2 * out_w)
        zero(dx_bottom + 2 * out_w, width - 2 * out_w)
    zero(dx + 2 * win.out_h * width, (win.height - 2 * win.out_h) * width)


cdef void spread_tiles_2x2(const real* dy, real* dx, const Window* win) noexcept nogil:
    """The average gradient: dy / 4 to each of a b c d, every position written once."""
    cdef Py_ssize_t oh, ow, width = win.width, out_w = win.out_w
    cdef real* dx_top
    cdef real* dx_bottom
    cdef real share
    for oh in range(win.out_h):
        dx_top, dx_bottom = dx + 2 * oh * width, dx + (2 * oh + 1) * width
        for ow in range(out_w):
            share = dy[oh * out_w + ow] / 4
            dx_top[2 * ow] = share
            dx_top[2 * ow + 1] = share
            dx_bottom[2 * ow] = share
            dx_bottom[2 * ow + 1] = share
        zero(dx_top + 2 * out_w, width - 2 * out_w)
        zero(dx_bottom + 2 * out_w, width - 2 * out_w)
    zero(dx + 2 * win.out_h * width, (win.height - 2 * win.out_h) * width)


cdef void spread_tiles_2x2_relu(const real* dy, const real* relu_y, real* dx, real* shares,
                                const Window* win) noexcept nogil:
    """avg_pool2d_grad_relu for the 2×2 window: dy / 4 · [relu_y > 0] to each of a b c d. The mask is per position
    here, so each pair of rows is written through relu_mask from `shares` (2·out_w: each dy / 4 twice), which
    keeps its loop vectorized (see relu_mask); the positions no window covers get 0, which the mask leaves +0."""
    cdef Py_ssize_t oh, ow, width = win.width, out_w = win.out_w
    cdef real share
    for oh in range(win.out_h):
        for ow in range(out_w):
            share = dy[oh * out_w + ow] / 4
            shares[2 * ow] = share
            shares[2 * ow + 1] = share
        relu_mask(dx + 2 * oh * width, shares, relu_y + 2 * oh * width, 2 * out_w)
        relu_mask(dx + (2 * oh + 1) * width, shares, relu_y + (2 * oh + 1) * width, 2 * out_w)
        zero(dx + 2 * oh * width + 2 * out_w, width - 2 * out_w)
        zero(dx + (2 * oh + 1) * width + 2 * out_w, width - 2 * out_w)
    zero(dx + 2 * win.out_h * width, (win.height - 2 * win.out_h) * width)


cdef void pool_planes(Pooling kind, Py_ssize_t planes, const Pool* pool, const real* a, const real* b,
                      const real* c, const real* relu_y, real* out, real* scratch, Py_ssize_t scratch_size,
                      int threads) noexcept nogil:
    """Every plane p < planes (p = n·C + c); the inputs a, b, c are (x), (dy, x, y), (x) or (dy) by kind.
    `scratch` holds scratch_size elements per thread: one output row (the routed flags, or the shares
    dy / (KH·KW)), then for a fused gradient (relu_y not NULL) one output plane (the masked dy)."""
    cdef const Window* win = &pool.win
    cdef Py_ssize_t p, in_plane = win.height * win.width, out_plane = win.out_h * win.out_w
    cdef bint two_by_two = pool.tiled and win.kh == 2 and win.kw == 2
    cdef bint relu_by_window = relu_y != NULL and relu_y == b and kind == MAX_BACKWARD and pool.tiled
    cdef bint relu_by_positions = relu_y != NULL and kind == AVG_BACKWARD and two_by_two
    cdef bint relu_by_plane = relu_y != NULL and not relu_by_window and not relu_by_positions
    cdef real* masked_dy
    for p in prange(planes, num_threads=threads, schedule="dynamic", chunksize=PLANES_PER_CHUNK):
        if relu_by_window:                             # dy · [y > 0], routed as the plain gradient routes dy
            masked_dy = scratch + threadid() * scratch_size + win.out_w
            relu_mask(masked_dy, a + p * out_plane, c + p * out_plane, out_plane)
            if two_by_two:
                route_tiles_2x2(masked_dy, b + p * in_plane, c + p * out_plane, out + p * in_plane, win)
            else:
                route_tiles(masked_dy, b + p * in_plane, c + p * out_plane, out + p * in_plane, win)
            continue
        if kind == MAX_FORWARD:
            if two_by_two:
                max_tiles_2x2(a + p * in_plane, out + p * out_plane, win)
            else:
                max_plane(a + p * in_plane, out + p * out_plane, pool)
        elif kind == AVG_FORWARD:
            if two_by_two:
                avg_tiles_2x2(a + p * in_plane, out + p * out_plane, win)
            else:
                avg_plane(a + p * in_plane, out + p * out_plane, pool)
        elif kind == AVG_BACKWARD:
            if relu_by_positions:
                spread_tiles_2x2_relu(a + p * out_plane, relu_y + p * in_plane, out + p * in_plane,
                                      scratch + threadid() * scratch_size, win)
            elif two_by_two:
                spread_tiles_2x2(a + p * out_plane, out + p * in_plane, win)
            else:
                avg_grad_plane(a + p * out_plane, out + p * in_plane, scratch + threadid() * scratch_size, pool)
        elif two_by_two:
            route_tiles_2x2(a + p * out_plane, b + p * in_plane, c + p * out_plane, out + p * in_plane, win)
        elif pool.tiled:
            route_tiles(a + p * out_plane, b + p * in_plane, c + p * out_plane, out + p * in_plane, win)
        else:
            max_grad_plane(a + p * out_plane, b + p * in_plane, c + p * out_plane, out + p * in_plane,
                           scratch + threadid() * scratch_size, pool)
        if relu_by_plane:                              # the plane just written, still in L1
            relu_mask_inplace(out + p * in_plane, relu_y + p * in_plane, in_plane)


# ----------------------------------------------------------------------------------------------------------------
# the kernels

def output_size(size, taps, lo, hi, stride, ceil_mode=False):
    """floor((size + lo + hi − taps) / stride) + 1; with ceil_mode ceil(...) + 1, less 1 if that last window would
    start in the bottom/right padding ((out − 1)·stride ≥ size + lo)."""
    if not ceil_mode:
        return (size + lo + hi - taps) // stride + 1
    out = -(-(size + lo + hi - taps) // stride) + 1
    return out - 1 if (out - 1) * stride >= size + lo else out


def window_sizes(size, out, taps, lo, hi, stride, count_include_pad):
    """Per output index along one axis: the window's positions inside the padded input (count_include_pad) or
    inside the input — the divisor's factor along that axis."""
    first = np.arange(out) * stride - lo
    stop = np.minimum(first + taps, size + hi if count_include_pad else size)
    return (stop - (first if count_include_pad else np.maximum(first, 0))).astype(np.float64)


cdef Window pool_window(str kernel, tuple x_shape, tuple y_shape, kernel_size, stride, padding,
                        bint ceil_mode) except *:
    cdef Window win
    (kh, kw), (sh, sw), ((pt, pb), (pl, pr)) = kernel_size, stride, padding
    if len(x_shape) != 4 or len(y_shape) != 4:
        raise ValueError(f"cpu.{kernel}: x and y must be 4-D (N, C, H, W), got {x_shape} and {y_shape}")
    expected = x_shape[:2] + (output_size(x_shape[2], kh, pt, pb, sh, ceil_mode),
                              output_size(x_shape[3], kw, pl, pr, sw, ceil_mode))
    if tuple(y_shape) != expected or min(kh, kw, sh, sw) < 1 or min(pt, pb, pl, pr) < 0:
        rounding = "ceil" if ceil_mode else "floor"
        raise ValueError(f"cpu.{kernel}: a {kh}x{kw} window with stride ({sh}, {sw}) and padding {padding} turns "
                         f"{x_shape} into (N, C, {rounding}((H + pt + pb − KH)/sh) + 1, ...) = {expected}, not "
                         f"{y_shape}")
    win.height, win.width, win.out_h, win.out_w = x_shape[2], x_shape[3], y_shape[2], y_shape[3]
    win.kh, win.kw, win.sh, win.sw, win.pt, win.pl, win.dh, win.dw = kh, kw, sh, sw, pt, pl, 1, 1
    return win


cdef run(Pooling kind, cnp.ndarray out, tuple x_shape, tuple y_shape, cnp.ndarray a, cnp.ndarray b,
         cnp.ndarray c, str kernel, kernel_size, stride, padding, bint ceil_mode=False, bint count_include_pad=True,
         cnp.ndarray relu_y=None):
    cdef Pool pool
    pool.win = pool_window(kernel, x_shape, y_shape, kernel_size, stride, padding, ceil_mode)
    cdef Window* win = &pool.win
    pool.tiled = (win.kh == win.sh and win.kw == win.sw and tuple(padding) == ((0, 0), (0, 0))
                  and win.out_h * win.kh <= win.height and win.out_w * win.kw <= win.width)
    if cnp.PyArray_SIZE(out) == 0:
        return
    (pt, pb), (pl, pr) = padding
    cdef bint inside_padded = ((win.out_h - 1) * win.sh + win.kh <= win.height + pt + pb
                               and (win.out_w - 1) * win.sw + win.kw <= win.width + pl + pr)
    pool.uniform = inside_padded and (count_include_pad or (pt, pb, pl, pr) == (0, 0, 0, 0))
    cdef double[::1] row_sizes, col_sizes
    pool.row_size = pool.col_size = NULL
    if not pool.uniform:                                     # the divisor's tables (see the top of this file)
        row_sizes = window_sizes(win.height, win.out_h, win.kh, pt, pb, win.sh, count_include_pad)
        col_sizes = window_sizes(win.width, win.out_w, win.kw, pl, pr, win.sw, count_include_pad)
        pool.row_size, pool.col_size = &row_sizes[0], &col_sizes[0]
    columns = np.empty((2, win.kw), dtype=np.intp)           # the column range of every window column s
    cdef Py_ssize_t[:, ::1] ranges = columns
    cdef Py_ssize_t s
    for s in range(win.kw):
        ranges[0, s] = first_inside(s - win.pl, win.sw)
        ranges[1, s] = stop_inside(s - win.pl, win.sw, win.width, win.out_w, ranges[0, s])
    pool.col_first, pool.col_stop = &ranges[0, 0], &ranges[1, 0]
    cdef Py_ssize_t planes = x_shape[0] * x_shape[1]
    cdef int threads = openmp.omp_get_max_threads()
    if planes * win.height * win.width < PARALLEL_MIN:
        threads = 1
    cdef Py_ssize_t scratch_size = win.out_w + (0 if relu_y is None else win.out_h * win.out_w)
    scratch = np.empty(threads * scratch_size, dtype=out.dtype)
    cdef void* a_data = data(a)
    cdef void* b_data = NULL if b is None else data(b)
    cdef void* c_data = NULL if c is None else data(c)
    cdef void* relu_data = NULL if relu_y is None else data(relu_y)
    cdef void* out_data = data(out)
    cdef void* scratch_data = data(scratch)
    cdef bint single = cnp.PyArray_TYPE(out) == cnp.NPY_FLOAT32
    with nogil:
        if single:
            pool_planes(kind, planes, &pool, <float*>a_data, <float*>b_data, <float*>c_data, <float*>relu_data,
                        <float*>out_data, <float*>scratch_data, scratch_size, threads)
        else:
            pool_planes(kind, planes, &pool, <double*>a_data, <double*>b_data, <double*>c_data,
                        <double*>relu_data, <double*>out_data, <double*>scratch_data, scratch_size, threads)


def max_pool2d(cnp.ndarray out, cnp.ndarray x, *, kernel_size, stride, padding, ceil_mode=False):
    """out = the max over each window of x (padding never wins)."""
    require_floats("max_pool2d", out, (x,))
    run(MAX_FORWARD, out, (<object>x).shape, (<object>out).shape, x, None, None, "max_pool2d", kernel_size, stride,
        padding, ceil_mode)


def max_pool2d_grad(cnp.ndarray out, cnp.ndarray dy, cnp.ndarray x, cnp.ndarray y, *, kernel_size, stride,
                    padding, ceil_mode=False):
    """out = dx: each dy routed to the first position (row-major) of its window where x equals the max y."""
    require_floats("max_pool2d_grad", out, (dy, x, y))
    x_shape, y_shape = (<object>x).shape, (<object>y).shape
    if (<object>dy).shape != y_shape or (<object>out).shape != x_shape:
        raise ValueError(f"cpu.max_pool2d_grad: dy {(<object>dy).shape} must have y's shape {y_shape} and out "
                         f"{(<object>out).shape} x's shape {x_shape}")
    run(MAX_BACKWARD, out, x_shape, y_shape, dy, x, y, "max_pool2d_grad", kernel_size, stride, padding, ceil_mode)


def avg_pool2d(cnp.ndarray out, cnp.ndarray x, *, kernel_size, stride, padding, ceil_mode=False,
               count_include_pad=True):
    """out = the mean over each window of x, padding counted as zeros (the divisor: see the top of this file)."""
    require_floats("avg_pool2d", out, (x,))
    run(AVG_FORWARD, out, (<object>x).shape, (<object>out).shape, x, None, None, "avg_pool2d", kernel_size, stride,
        padding, ceil_mode, count_include_pad)


def avg_pool2d_grad(cnp.ndarray out, cnp.ndarray dy, *, kernel_size, stride, padding, ceil_mode=False,
                    count_include_pad=True):
    """out = dx: every real position of a window receives dy / divisor; out has x's shape."""
    require_floats("avg_pool2d_grad", out, (dy,))
    run(AVG_BACKWARD, out, (<object>out).shape, (<object>dy).shape, dy, None, None, "avg_pool2d_grad", kernel_size,
        stride, padding, ceil_mode, count_include_pad)


def max_pool2d_grad_relu(cnp.ndarray out, cnp.ndarray dy, cnp.ndarray x, cnp.ndarray y, cnp.ndarray relu_y, *,
                         kernel_size, stride, padding, ceil_mode=False):
    """out = max_pool2d_grad(dy, x, y) · [relu_y > 0]: the fused max_pool2d_grad → relu_grad; relu_y, of x's shape,
    is the relu's output (in a compiled program, x itself)."""
    require_floats("max_pool2d_grad_relu", out, (dy, x, y, relu_y))
    x_shape, y_shape = (<object>x).shape, (<object>y).shape
    if (<object>dy).shape != y_shape or (<object>out).shape != x_shape or (<object>relu_y).shape != x_shape:
        raise ValueError(f"cpu.max_pool2d_grad_relu: dy {(<object>dy).shape} must have y's shape {y_shape}, out "
                         f"{(<object>out).shape} and relu_y {(<object>relu_y).shape} x's shape {x_shape}")
    run(MAX_BACKWARD, out, x_shape, y_shape, dy, x, y, "max_pool2d_grad_relu", kernel_size, stride, padding,
        ceil_mode, True, relu_y)


def avg_pool2d_grad_relu(cnp.ndarray out, cnp.ndarray dy, cnp.ndarray relu_y, *, kernel_size, stride, padding,
                         ceil_mode=False, count_include_pad=True):
    """out = avg_pool2d_grad(dy) · [relu_y > 0]: the fused avg_pool2d_grad → relu_grad; relu_y is the relu's
    output (the pool's input), of out's shape."""
    require_floats("avg_pool2d_grad_relu", out, (dy, relu_y))
    if (<object>relu_y).shape != (<object>out).shape:
        raise ValueError(f"cpu.avg_pool2d_grad_relu: relu_y {(<object>relu_y).shape} must have out's shape "
                         f"{(<object>out).shape}")
    run(AVG_BACKWARD, out, (<object>out).shape, (<object>dy).shape, dy, None, None, "avg_pool2d_grad_relu",
        kernel_size, stride, padding, ceil_mode, count_include_pad, relu_y)


KERNELS = {MaxPool2d: max_pool2d, MaxPool2dGrad: max_pool2d_grad, AvgPool2d: avg_pool2d,
           AvgPool2dGrad: avg_pool2d_grad, MaxPool2dGradReluGrad: max_pool2d_grad_relu,
           AvgPool2dGradReluGrad: avg_pool2d_grad_relu}
