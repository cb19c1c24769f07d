# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""im2col and col2im for the cpu backend: the same layout as graphnet.backends.reference.conv, in parallel C.

x is (N, C, H, W); cols is (N, C*KH*KW, OH, OW) — the same memory as the (N, C*KH*KW, OH*OW) matrix of the
reference im2col (`cols.reshape(N, C*KH*KW, OH, OW)` is a free view of a contiguous buffer). The output size
comes from cols' shape, so the bottom/right padding need not be passed:

    OH = floor((H + pt + pb - dh*(KH-1) - 1) / sh) + 1,   OW likewise with W, pl, pr, dw, KW, sw
    cols[n, (c*KH + r)*KW + s, oh, ow] = x[n, c, oh*sh + r*dh - pt, ow*sw + s*dw - pl]   (0 outside x)

col2im is the adjoint: it zero-fills dx, then adds each cols entry back to the position of x it was read from.
Both run over the N*C image planes in parallel (OpenMP); each plane is written by one thread only.
Types: float32 or float64 (fused), the same for both arrays; both C-contiguous.
"""
from cython.parallel cimport prange

import numpy as np

ctypedef fused real:
    float
    double


cdef inline Py_ssize_t _first_inside(Py_ssize_t base, Py_ssize_t stride) noexcept nogil:
    """Smallest o >= 0 with o*stride + base >= 0, i.e. ceil(-base / stride) (divisions of non-negatives only)."""
    if base >= 0:
        return 0
    return (-base + stride - 1) // stride


cdef inline Py_ssize_t _stop_inside(Py_ssize_t base, Py_ssize_t stride, Py_ssize_t size,
                                    Py_ssize_t count, Py_ssize_t first) noexcept nogil:
    """One past the largest o < count with o*stride + base < size, i.e. min(count, ceil((size - base) / stride))."""
    cdef Py_ssize_t stop = 0
    if size - base > 0:
        stop = (size - base + stride - 1) // stride
    if stop > count:
        stop = count
    if stop < first:
        stop = first
    return stop


def _im2col(const real[:, :, :, ::1] x, real[:, :, :, ::1] cols, Py_ssize_t kh, Py_ssize_t kw,
            Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t pt, Py_ssize_t pl, Py_ssize_t dh, Py_ssize_t dw):
    cdef Py_ssize_t n_images = x.shape[0], channels = x.shape[1], height = x.shape[2], width = x.shape[3]
    cdef Py_ssize_t out_h = cols.shape[2], out_w = cols.shape[3]
    cdef Py_ssize_t plane, n, c, r, s, row, oh, ow, h, oh_first, oh_stop, ow_first, ow_stop
    for plane in prange(n_images * channels, nogil=True, schedule="static"):
        n = plane // channels
        c = plane % channels
        for r in range(kh):
            oh_first = _first_inside(r * dh - pt, sh)
            oh_stop = _stop_inside(r * dh - pt, sh, height, out_h, oh_first)
            for s in range(kw):
                ow_first = _first_inside(s * dw - pl, sw)
                ow_stop = _stop_inside(s * dw - pl, sw, width, out_w, ow_first)
                row = (c * kh + r) * kw + s
                for oh in range(out_h):
                    if oh < oh_first or oh >= oh_stop:          # the whole output row reads padding
                        for ow in range(out_w):
                            cols[n, row, oh, ow] = 0
                        continue
                    h = oh * sh + r * dh - pt
                    for ow in range(ow_first):
                        cols[n, row, oh, ow] = 0
                    for ow in range(ow_first, ow_stop):
                        cols[n, row, oh, ow] = x[n, c, h, ow * sw + s * dw - pl]
                    for ow in range(ow_stop, out_w):
                        cols[n, row, oh, ow] = 0


def _col2im(const real[:, :, :, ::1] cols, real[:, :, :, ::1] dx, Py_ssize_t kh, Py_ssize_t kw,
            Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t pt, Py_ssize_t pl, Py_ssize_t dh, Py_ssize_t dw):
    cdef Py_ssize_t n_images = dx.shape[0], channels = dx.shape[1], height = dx.shape[2], width = dx.shape[3]
    cdef Py_ssize_t out_h = cols.shape[2], out_w = cols.shape[3]
    cdef Py_ssize_t plane, n, c, r, s, row, oh, ow, h, w, oh_first, oh_stop, ow_first, ow_stop
    for plane in prange(n_images * channels, nogil=True, schedule="static"):
        n = plane // channels
        c = plane % channels
        for h in range(height):
            for w in range(width):
                dx[n, c, h, w] = 0
        for r in range(kh):
            oh_first = _first_inside(r * dh - pt, sh)
            oh_stop = _stop_inside(r * dh - pt, sh, height, out_h, oh_first)
            for s in range(kw):
                ow_first = _first_inside(s * dw - pl, sw)
                ow_stop = _stop_inside(s * dw - pl, sw, width, out_w, ow_first)
                row = (c * kh + r) * kw + s
                for oh in range(oh_first, oh_stop):
                    h = oh * sh + r * dh - pt
                    for ow in range(ow_first, ow_stop):
                        dx[n, c, h, ow * sw + s * dw - pl] = dx[n, c, h, ow * sw + s * dw - pl] + cols[n, row, oh, ow]


def _check(image, cols, kh, kw, sh, sw, pt, pl, dh, dw, image_name):
    if image.ndim != 4:
        raise ValueError(f"{image_name} must be (N, C, H, W), got shape {image.shape}")
    if cols.ndim != 4:
        raise ValueError(f"cols must be the (N, C*KH*KW, OH, OW) view of the column buffer, got shape {cols.shape}; "
                         "pass cols.reshape(N, C*KH*KW, OH, OW) (free for a contiguous buffer)")
    if image.dtype != cols.dtype or image.dtype not in (np.float32, np.float64):
        raise TypeError(f"{image_name} and cols must both be float32 or both float64, "
                        f"got {image.dtype} and {cols.dtype}")
    n, c = image.shape[0], image.shape[1]
    if cols.shape[0] != n or cols.shape[1] != c * kh * kw:
        raise ValueError(f"cols has shape {cols.shape}, expected ({n}, {c}*{kh}*{kw} = {c * kh * kw}, OH, OW) "
                         f"for {image_name} of shape {image.shape} and a {kh}x{kw} kernel")
    if min(kh, kw, sh, sw, dh, dw) < 1 or min(pt, pl) < 0:
        raise ValueError(f"kernel, stride and dilation must be >= 1 and padding >= 0, got kernel ({kh}, {kw}), "
                         f"stride ({sh}, {sw}), dilation ({dh}, {dw}), padding top {pt} left {pl}")


def im2col(x, cols, kh, kw, sh, sw, pt, pl, dh, dw):
    """Fill cols (N, C*KH*KW, OH, OW) with cols[n, (c*KH + r)*KW + s, oh, ow] = x[n, c, oh*sh + r*dh - pt, ...]."""
    _check(x, cols, kh, kw, sh, sw, pt, pl, dh, dw, "x")
    _im2col(x, cols, kh, kw, sh, sw, pt, pl, dh, dw)


def col2im(cols, dx, kh, kw, sh, sw, pt, pl, dh, dw):
    """Overwrite dx (N, C, H, W) with the scatter-add of cols (N, C*KH*KW, OH, OW): the adjoint of im2col."""
    _check(dx, cols, kh, kw, sh, sw, pt, pl, dh, dw, "dx")
    _col2im(cols, dx, kh, kw, sh, sw, pt, pl, dh, dw)
