# cython: language_level=3
"""Sliding windows over one image plane: the geometry, and im2col / col2im of a single plane (C, nogil).

A window of kh×kw taps, stride (sh, sw), dilation (dh, dw) and top/left padding (pt, pl) slides over an input plane
of height×width; output position (oh, ow) reads the taps

    plane[oh·sh + r·dh − pt, ow·sw + s·dw − pl]        0 ≤ r < kh, 0 ≤ s < kw   (outside the plane: padding)

and out_h = floor((height + pt + pb − dh·(kh − 1) − 1) / sh) + 1 (out_w likewise), so the bottom/right padding is
implied by out_h and out_w. The same struct describes convolution windows and pooling windows (dilation 1).

im2col_plane writes the kh·kw rows of one input channel, row r·kw + s holding what tap (r, s) sees at every output
position (oh·out_w + ow), 0 where it sees padding; col2im_plane is its adjoint (scatter-add back, padding dropped).
Rows are `ld` elements apart, so callers can lay them out as they like (ld = out_h·out_w for a dense matrix).
"""
from libc.string cimport memcpy, memset

from graphnet._ext._buffers cimport real


cdef struct Window:
    Py_ssize_t height, width        # the input plane
    Py_ssize_t out_h, out_w         # the output plane
    Py_ssize_t kh, kw               # taps
    Py_ssize_t sh, sw               # stride
    Py_ssize_t pt, pl               # top and left padding
    Py_ssize_t dh, dw               # dilation


cdef inline Py_ssize_t first_inside(Py_ssize_t base, Py_ssize_t stride) noexcept nogil:
    """Smallest o ≥ 0 with o·stride + base ≥ 0, i.e. ceil(−base / stride) (divisions of non-negatives only)."""
    if base >= 0:
        return 0
    return (-base + stride - 1) // stride


cdef inline Py_ssize_t stop_inside(Py_ssize_t base, Py_ssize_t stride, Py_ssize_t size, Py_ssize_t count,
                                   Py_ssize_t first) noexcept nogil:
    """One past the largest o < count with o·stride + base < size: min(count, ceil((size − base) / stride))."""
    cdef Py_ssize_t stop = 0
    if size - base > 0:
        stop = (size - base + stride - 1) // stride
    if stop > count:
        stop = count
    if stop < first:
        stop = first
    return stop


cdef inline void copy_row(real* to, const real* source, Py_ssize_t count, Py_ssize_t stride) noexcept nogil:
    """to[i] = source[i·stride] for i < count."""
    cdef Py_ssize_t i
    if stride == 1:
        memcpy(to, source, count * sizeof(real))
    else:
        for i in range(count):
            to[i] = source[i * stride]


cdef inline void zero_row(real* to, Py_ssize_t count) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(count):
        to[i] = 0


cdef inline void im2col_plane_rows(const real* plane, real* rows, Py_ssize_t ld, const Window* win,
                                   Py_ssize_t oh_begin, Py_ssize_t oh_end) noexcept nogil:
    """The output rows oh_begin ≤ oh < oh_end only (a tile of the unfolded plane):
    rows[(r·kw + s)·ld + (oh − oh_begin)·out_w + ow] = plane[oh·sh + r·dh − pt, ow·sw + s·dw − pl]."""
    cdef Py_ssize_t r, s, oh, h, oh_first, oh_stop, ow_first, ow_stop, column, out_w = win.out_w
    cdef real* row
    cdef real* out_row
    for r in range(win.kh):
        oh_first = first_inside(r * win.dh - win.pt, win.sh)
        oh_stop = stop_inside(r * win.dh - win.pt, win.sh, win.height, win.out_h, oh_first)
        oh_first = min(max(oh_first, oh_begin), oh_end)
        oh_stop = min(max(oh_stop, oh_first), oh_end)
        for s in range(win.kw):
            column = s * win.dw - win.pl
            ow_first = min(first_inside(column, win.sw), out_w)     # a tap may see nothing but left padding
            ow_stop = stop_inside(column, win.sw, win.width, out_w, ow_first)
            row = rows + (r * win.kw + s) * ld - oh_begin * out_w          # row + oh·out_w: output row oh
            zero_row(row + oh_begin * out_w, (oh_first - oh_begin) * out_w)   # rows that read the top padding
            for oh in range(oh_first, oh_stop):
                h = oh * win.sh + r * win.dh - win.pt
                out_row = row + oh * out_w
                zero_row(out_row, ow_first)
                copy_row(out_row + ow_first, plane + h * win.width + column + ow_first * win.sw,
                         ow_stop - ow_first, win.sw)
                zero_row(out_row + ow_stop, out_w - ow_stop)
            zero_row(row + oh_stop * out_w, (oh_end - oh_stop) * out_w)     # ... and the bottom padding


cdef inline void im2col_plane(const real* plane, real* rows, Py_ssize_t ld, const Window* win) noexcept nogil:
    """rows[(r·kw + s)·ld + oh·out_w + ow] = plane[oh·sh + r·dh − pt, ow·sw + s·dw − pl], 0 in the padding."""
    im2col_plane_rows(plane, rows, ld, win, 0, win.out_h)


cdef inline void col2im_plane(const real* rows, Py_ssize_t ld, real* plane, const Window* win) noexcept nogil:
    """plane = the scatter-add of the kh·kw rows back to the positions they were read from (the adjoint)."""
    cdef Py_ssize_t r, s, oh, ow, h, oh_first, oh_stop, ow_first, ow_stop, column
    cdef const real* row
    cdef const real* in_row
    cdef real* out_row
    memset(plane, 0, win.height * win.width * sizeof(real))
    for r in range(win.kh):
        oh_first = first_inside(r * win.dh - win.pt, win.sh)
        oh_stop = stop_inside(r * win.dh - win.pt, win.sh, win.height, win.out_h, oh_first)
        for s in range(win.kw):
            column = s * win.dw - win.pl
            ow_first = first_inside(column, win.sw)
            ow_stop = stop_inside(column, win.sw, win.width, win.out_w, ow_first)
            row = rows + (r * win.kw + s) * ld
            for oh in range(oh_first, oh_stop):
                h = oh * win.sh + r * win.dh - win.pt
                in_row = row + oh * win.out_w
                out_row = plane + h * win.width + column
                if win.sw == 1:
                    for ow in range(ow_first, ow_stop):
                        out_row[ow] += in_row[ow]
                else:
                    for ow in range(ow_first, ow_stop):
                        out_row[ow * win.sw] += in_row[ow]


cdef inline void im2col_image_rows(const real* image, Py_ssize_t channels, real* cols, Py_ssize_t ld,
                                   const Window* win, Py_ssize_t oh_begin, Py_ssize_t oh_end) noexcept nogil:
    """All channels of one image, output rows oh_begin ≤ oh < oh_end: cols row (c·kh + r)·kw + s (c slowest), the
    order of w.reshape(K, C·kh·kw)."""
    cdef Py_ssize_t c
    for c in range(channels):
        im2col_plane_rows(image + c * win.height * win.width, cols + c * win.kh * win.kw * ld, ld, win, oh_begin,
                          oh_end)


cdef inline void im2col_image(const real* image, Py_ssize_t channels, real* cols, Py_ssize_t ld,
                              const Window* win) noexcept nogil:
    im2col_image_rows(image, channels, cols, ld, win, 0, win.out_h)


cdef inline void col2im_image(const real* cols, Py_ssize_t ld, Py_ssize_t channels, real* image,
                              const Window* win) noexcept nogil:
    cdef Py_ssize_t c
    for c in range(channels):
        col2im_plane(cols + c * win.kh * win.kw * ld, ld, image + c * win.height * win.width, win)
