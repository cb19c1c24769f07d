"""2-D convolution in NumPy, the textbook way: im2col, then one matrix product per group.

Layout NCHW. x has shape (N, C, H, W), the weight w has shape (K, C/G, R, S) for G groups, the output
y has shape (N, K, OH, OW) with

    OH = floor((H + pt + pb - dh*(R-1) - 1) / sh) + 1        (and OW likewise with W, pl, pr, dw, S, sw)
    y[n, k, oh, ow] = sum_{c, r, s} w[k, c, r, s] * xpad[n, g*C/G + c, oh*sh + r*dh, ow*sw + s*dw]

where g = k // (K/G) is the group of output channel k and xpad is x with zeros around it.

Every kernel is called as `fn(out, *inputs, **params)` and writes its result into the preallocated `out`.
The parameters arrive normalized: stride=(sh, sw), padding=((pt, pb), (pl, pr)), dilation=(dh, dw), groups=G.
"""
import numpy as np

from ...ops.conv import Conv2d, Conv2dGradInput, Conv2dGradWeight


def output_hw(in_hw, kernel_hw, stride, padding, dilation):
    """(OH, OW): floor((H + pt + pb - dh*(R-1) - 1) / sh) + 1 along each axis (sizes already checked)."""
    return tuple((size + lo + hi - d * (k - 1) - 1) // s + 1
                 for size, k, s, (lo, hi), d in zip(in_hw, kernel_hw, stride, padding, dilation))


def offset_window(padded, r, s, out_hw, stride, dilation):
    """The view padded[..., oh*sh + r*dh, ow*sw + s*dw] over all (oh, ow): what kernel offset (r, s) sees."""
    (oh, ow), (sh, sw), (dh, dw) = out_hw, stride, dilation
    top, left = r * dh, s * dw
    return padded[..., top:top + sh * (oh - 1) + 1:sh, left:left + sw * (ow - 1) + 1:sw]


def im2col(x, kernel_hw, stride, padding, dilation):
    """Unfold x (N, C, H, W) into columns of shape (N, C*R*S, OH*OW).

        cols[n, (c*R + r)*S + s, oh*OW + ow] = xpad[n, c, oh*sh + r*dh, ow*sw + s*dw]

    Rows run over (c, r, s) with c slowest, then r, then s — the order of w.reshape(K, C*R*S) — and columns over
    output positions in row-major order, so that y[n] = w.reshape(K, -1) @ cols[n] for one group.
    """
    n, c, h, w = x.shape
    (r_size, s_size), ((pt, pb), (pl, pr)) = kernel_hw, padding
    out_hw = output_hw((h, w), kernel_hw, stride, padding, dilation)
    padded = np.pad(x, ((0, 0), (0, 0), (pt, pb), (pl, pr)))
    cols = np.empty((n, c, r_size, s_size) + out_hw, dtype=x.dtype)
    for r in range(r_size):
        for s in range(s_size):
            cols[:, :, r, s] = offset_window(padded, r, s, out_hw, stride, dilation)
    return cols.reshape(n, c * r_size * s_size, out_hw[0] * out_hw[1])


def col2im(cols, x_shape, kernel_hw, stride, padding, dilation):
    """The adjoint of im2col: scatter-add each column entry back to the input position it was read from.

        dx[n, c, h, w] = sum of cols[n, (c*R + r)*S + s, oh*OW + ow] over all (r, s, oh, ow) that read (h, w)

    Entries that were read from the padding are dropped.
    """
    n, c, h, w = x_shape
    (r_size, s_size), ((pt, pb), (pl, pr)) = kernel_hw, padding
    out_hw = output_hw((h, w), kernel_hw, stride, padding, dilation)
    cols = cols.reshape((n, c, r_size, s_size) + out_hw)
    padded = np.zeros((n, c, h + pt + pb, w + pl + pr), dtype=cols.dtype)
    for r in range(r_size):
        for s in range(s_size):
            # within one offset (r, s) every output position reads a different input position: += is safe
            offset_window(padded, r, s, out_hw, stride, dilation)[...] += cols[:, :, r, s]
    return padded[:, :, pt:pt + h, pl:pl + w]


def conv2d(out, x, w, b=None, *, stride, padding, dilation, groups):
    """y = conv(x, w) + b: for each group g, y_g[n] = w_g.reshape(K/G, C/G*R*S) @ cols_g[n]."""
    n = x.shape[0]
    k, c_per_group, r_size, s_size = w.shape
    k_per_group = k // groups
    cols = im2col(x, (r_size, s_size), stride, padding, dilation)             # (N, C*R*S, OH*OW)
    cols = cols.reshape(n, groups, c_per_group * r_size * s_size, cols.shape[-1])   # rows of group g contiguous
    weights = w.reshape(groups, k_per_group, c_per_group * r_size * s_size)
    y = np.empty((n, groups, k_per_group, cols.shape[-1]), dtype=out.dtype)
    for g in range(groups):
        y[:, g] = weights[g] @ cols[:, g]
    out[...] = y.reshape(out.shape)
    if b is not None:
        out += b.reshape(1, k, 1, 1)


def conv2d_grad_input(out, dy, w, *, stride, padding, dilation, groups):
    """dx = col2im(w_g^T @ dy_g): the gradient with respect to x; out has x's shape and gives H, W."""
    n = dy.shape[0]
    k, c_per_group, r_size, s_size = w.shape
    k_per_group = k // groups
    dy_groups = dy.reshape(n, groups, k_per_group, dy.shape[2] * dy.shape[3])       # (N, G, K/G, OH*OW)
    weights = w.reshape(groups, k_per_group, c_per_group * r_size * s_size)
    dcols = np.empty((n, groups, c_per_group * r_size * s_size, dy_groups.shape[-1]), dtype=out.dtype)
    for g in range(groups):
        dcols[:, g] = weights[g].T @ dy_groups[:, g]
    dcols = dcols.reshape(n, groups * c_per_group * r_size * s_size, dy_groups.shape[-1])
    out[...] = col2im(dcols, out.shape, (r_size, s_size), stride, padding, dilation)


def conv2d_grad_weight(out, dy, x, *, stride, padding, dilation, groups):
    """dw_g = sum_n dy_g[n] @ cols_g[n]^T: the gradient with respect to w; out has w's shape."""
    n = x.shape[0]
    k, c_per_group, r_size, s_size = out.shape
    k_per_group = k // groups
    cols = im2col(x, (r_size, s_size), stride, padding, dilation)
    cols = cols.reshape(n, groups, c_per_group * r_size * s_size, cols.shape[-1])   # (N, G, C/G*R*S, OH*OW)
    dy_groups = dy.reshape(n, groups, k_per_group, cols.shape[-1])                 # (N, G, K/G, OH*OW)
    dw = np.empty((groups, k_per_group, c_per_group * r_size * s_size), dtype=out.dtype)
    for g in range(groups):
        # contract over the batch and the output positions at once
        dw[g] = np.tensordot(dy_groups[:, g], cols[:, g], axes=([0, 2], [0, 2]))
    out[...] = dw.reshape(out.shape)


KERNELS = {Conv2d: conv2d, Conv2dGradInput: conv2d_grad_input, Conv2dGradWeight: conv2d_grad_weight}
