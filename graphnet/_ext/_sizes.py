"""Sizes the convolution kernels share (conv.pyx, winograd.pyx, blocked_conv.pyx): the output of a convolution
and the cache-line alignment of their workspace slots."""

CACHE_LINE = 64          # bytes: each thread's workspace slot starts on its own line


def aligned(nbytes):
    """nbytes rounded up to a whole number of cache lines."""
    return (nbytes + CACHE_LINE - 1) // CACHE_LINE * CACHE_LINE


def output_size(size, taps, lo, hi, stride, dilation):
    """floor((size + lo + hi − dilation·(taps − 1) − 1) / stride) + 1"""
    return (size + lo + hi - dilation * (taps - 1) - 1) // stride + 1


def output_shape(x_shape, w_shape, stride, padding, dilation):
    """(N, K, OH, OW) of the convolution of x (N, C, H, W) by w (K, C/G, R, S)."""
    (sh, sw), ((pt, pb), (pl, pr)), (dh, dw) = stride, padding, dilation
    return (x_shape[0], w_shape[0], output_size(x_shape[2], w_shape[2], pt, pb, sh, dh),
            output_size(x_shape[3], w_shape[3], pl, pr, sw, dw))
