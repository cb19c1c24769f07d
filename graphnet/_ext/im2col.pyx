# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""im2col and col2im for the cpu backend: the same layout as graphnet.backends.reference.conv, in parallel C.

x is (N, C, H, W); cols is (N, C*KH*KW, OH, OW) — the same memory as the (N, C*KH*KW, OH*OW) matrix of the
reference im2col (`cols.reshape(N, C*KH*KW, OH, OW)` is a free view of a contiguous buffer). The output size
comes from cols' shape, so the bottom/right padding need not be passed:

    OH = floor((H + pt + pb - dh*(KH-1) - 1) / sh) + 1,   OW likewise with W, pl, pr, dw, KW, sw
    cols[n, (c*KH + r)*KW + s, oh, ow] = x[n, c, oh*sh + r*dh - pt, ow*sw + s*dw - pl]   (0 outside x)

col2im is the adjoint: it zero-fills dx, then adds each cols entry back to the position of x it was read from.
Both run over the N*C image planes in parallel (OpenMP); each plane is written by one thread only. The per-plane
loops live in _windows.pxd, shared with the convolution kernels (conv.pyx), which run them per image.
Types: float32 or float64 (fused), the same for both arrays; both C-contiguous.
"""
from cython.parallel cimport prange

import numpy as np

from graphnet._ext._buffers cimport real
from graphnet._ext._windows cimport Window, col2im_plane, im2col_plane


cdef Window _window(Py_ssize_t height, Py_ssize_t width, Py_ssize_t out_h, Py_ssize_t out_w, Py_ssize_t kh,
                    Py_ssize_t kw, Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t pt, Py_ssize_t pl, Py_ssize_t dh,
                    Py_ssize_t dw):
    cdef Window win
    win.height, win.width, win.out_h, win.out_w = height, width, out_h, out_w
    win.kh, win.kw, win.sh, win.sw, win.pt, win.pl, win.dh, win.dw = kh, kw, sh, sw, pt, pl, dh, dw
    return win


def _im2col(const real[:, :, :, ::1] x, real[:, :, :, ::1] cols, Py_ssize_t kh, Py_ssize_t kw,
            Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t pt, Py_ssize_t pl, Py_ssize_t dh, Py_ssize_t dw):
    cdef Py_ssize_t channels = x.shape[1], plane_size = x.shape[2] * x.shape[3]
    cdef Py_ssize_t out_size = cols.shape[2] * cols.shape[3], taps = kh * kw, plane
    cdef Window win = _window(x.shape[2], x.shape[3], cols.shape[2], cols.shape[3], kh, kw, sh, sw, pt, pl, dh, dw)
    if x.size == 0 or cols.size == 0:
        return
    cdef const real* images = &x[0, 0, 0, 0]
    cdef real* rows = &cols[0, 0, 0, 0]
    for plane in prange(x.shape[0] * channels, nogil=True, schedule="static"):   # plane = n·C + c
        im2col_plane(images + plane * plane_size, rows + plane * taps * out_size, out_size, &win)


def _col2im(const real[:, :, :, ::1] cols, real[:, :, :, ::1] dx, Py_ssize_t kh, Py_ssize_t kw,
            Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t pt, Py_ssize_t pl, Py_ssize_t dh, Py_ssize_t dw):
    cdef Py_ssize_t channels = dx.shape[1], plane_size = dx.shape[2] * dx.shape[3]
    cdef Py_ssize_t out_size = cols.shape[2] * cols.shape[3], taps = kh * kw, plane
    cdef Window win = _window(dx.shape[2], dx.shape[3], cols.shape[2], cols.shape[3], kh, kw, sh, sw, pt, pl, dh,
                              dw)
    if dx.size == 0:
        return
    if cols.size == 0:
        dx[...] = 0
        return
    cdef const real* rows = &cols[0, 0, 0, 0]
    cdef real* images = &dx[0, 0, 0, 0]
    for plane in prange(dx.shape[0] * channels, nogil=True, schedule="static"):
        col2im_plane(rows + plane * taps * out_size, out_size, images + plane * plane_size, &win)


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
