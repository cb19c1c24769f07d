"""Reference conv/pool kernels against naive loops and adjoint identities; Cython im2col/col2im against reference.

The naive implementations below are direct transcriptions of the definitions, one output element at a time.
Every kernel writes into an `out` prefilled with NaN, so a kernel that leaves part of it unwritten fails.
"""
import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from graphnet.backends.reference import conv, pool

SETTINGS = settings(deadline=None, max_examples=40)


def nan_array(shape, dtype=np.float64):
    return np.full(shape, np.nan, dtype=dtype)


# ----------------------------------------------------------------------------------------------------------------
# naive definitions


def output_size(size, kernel, pad_lo, pad_hi, stride, dilation=1):
    """How many windows fit: count the start positions directly instead of using the closed formula."""
    span = dilation * (kernel - 1) + 1
    return len(range(0, size + pad_lo + pad_hi - span + 1, stride))


def naive_conv2d(x, w, b, stride, padding, dilation, groups):
    n_images, channels, height, width = x.shape
    out_channels, c_per_group, kh, kw = w.shape
    (sh, sw), ((pt, pb), (pl, pr)), (dh, dw) = stride, padding, dilation
    oh_size = output_size(height, kh, pt, pb, sh, dh)
    ow_size = output_size(width, kw, pl, pr, sw, dw)
    y = np.zeros((n_images, out_channels, oh_size, ow_size))
    k_per_group = out_channels // groups
    for n, k, oh, ow in itertools.product(range(n_images), range(out_channels), range(oh_size), range(ow_size)):
        group = k // k_per_group
        total = 0.0 if b is None else b[k]
        for c, r, s in itertools.product(range(c_per_group), range(kh), range(kw)):
            h, col = oh * sh + r * dh - pt, ow * sw + s * dw - pl
            if 0 <= h < height and 0 <= col < width:
                total += x[n, group * c_per_group + c, h, col] * w[k, c, r, s]
        y[n, k, oh, ow] = total
    return y


def pool_output_size(size, kernel, pad_lo, pad_hi, stride, ceil_mode):
    """Windows that fit (counted one start at a time); with ceil_mode also the next one, where the fitting ones
    leave part of the padded input over and that window starts inside the input or the top/left padding."""
    fitting = output_size(size, kernel, pad_lo, pad_hi, stride)
    leftover = (size + pad_lo + pad_hi - kernel) % stride != 0
    return fitting + int(ceil_mode and leftover and fitting * stride < size + pad_lo)


def pool_windows(x_shape, kernel_size, stride, padding, ceil_mode=False):
    """For each output position (n, c, oh, ow): the real input positions (h, w) of its window, row-major, and the
    number of its positions inside the padded input (padding included, what lies past it not)."""
    n_images, channels, height, width = x_shape
    (kh, kw), (sh, sw), ((pt, pb), (pl, pr)) = kernel_size, stride, padding
    oh_size = pool_output_size(height, kh, pt, pb, sh, ceil_mode)
    ow_size = pool_output_size(width, kw, pl, pr, sw, ceil_mode)
    for n, c, oh, ow in itertools.product(range(n_images), range(channels), range(oh_size), range(ow_size)):
        positions = [(oh * sh + r - pt, ow * sw + s - pl) for r in range(kh) for s in range(kw)]
        padded = [(h, w) for h, w in positions if h < height + pb and w < width + pr]
        yield (n, c, oh, ow), [(h, w) for h, w in positions if 0 <= h < height and 0 <= w < width], len(padded)


def pool_out_shape(x_shape, kernel_size, stride, padding, ceil_mode=False, count_include_pad=True):
    (kh, kw), (sh, sw), ((pt, pb), (pl, pr)) = kernel_size, stride, padding
    return x_shape[:2] + (pool_output_size(x_shape[2], kh, pt, pb, sh, ceil_mode),
                          pool_output_size(x_shape[3], kw, pl, pr, sw, ceil_mode))


def naive_max_pool2d(x, kernel_size, stride, padding, ceil_mode=False):
    y = np.zeros(pool_out_shape(x.shape, kernel_size, stride, padding, ceil_mode))
    for (n, c, oh, ow), window, _ in pool_windows(x.shape, kernel_size, stride, padding, ceil_mode):
        y[n, c, oh, ow] = max(x[n, c, h, w] for h, w in window)
    return y


def naive_max_pool2d_grad(dy, x, kernel_size, stride, padding, ceil_mode=False):
    dx = np.zeros(x.shape)
    for (n, c, oh, ow), window, _ in pool_windows(x.shape, kernel_size, stride, padding, ceil_mode):
        values = [x[n, c, h, w] for h, w in window]
        h, w = window[values.index(max(values))]   # list.index: the first position attaining the max
        dx[n, c, h, w] += dy[n, c, oh, ow]
    return dx


def naive_avg_pool2d(x, kernel_size, stride, padding, ceil_mode=False, count_include_pad=True):
    """The sum of the window's real positions over their count, or over the count of its positions inside the
    padded input (count_include_pad)."""
    y = np.zeros(pool_out_shape(x.shape, kernel_size, stride, padding, ceil_mode))
    for (n, c, oh, ow), window, padded in pool_windows(x.shape, kernel_size, stride, padding, ceil_mode):
        y[n, c, oh, ow] = sum(x[n, c, h, w] for h, w in window) / (padded if count_include_pad else len(window))
    return y


def naive_avg_pool2d_grad(dy, x_shape, kernel_size, stride, padding, ceil_mode=False, count_include_pad=True):
    dx = np.zeros(x_shape)
    for (n, c, oh, ow), window, padded in pool_windows(x_shape, kernel_size, stride, padding, ceil_mode):
        for h, w in window:
            dx[n, c, h, w] += dy[n, c, oh, ow] / (padded if count_include_pad else len(window))
    return dx


# ----------------------------------------------------------------------------------------------------------------
# strategies


@st.composite
def conv_configs(draw, max_groups=3):
    """A small valid convolution: shapes, stride, asymmetric padding, dilation and groups."""
    groups = draw(st.integers(1, max_groups))
    c_per_group, k_per_group = draw(st.integers(1, 2)), draw(st.integers(1, 3))
    kernel_hw = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    padding = tuple((draw(st.integers(0, 2)), draw(st.integers(0, 2))) for _ in range(2))
    in_hw = []
    for kernel, d, (lo, hi) in zip(kernel_hw, dilation, padding):
        smallest = max(1, d * (kernel - 1) + 1 - lo - hi)   # the padded input must hold the dilated kernel
        in_hw.append(draw(st.integers(smallest, smallest + 5)))
    return dict(x_shape=(draw(st.integers(1, 2)), groups * c_per_group) + tuple(in_hw),
                w_shape=(groups * k_per_group, c_per_group) + kernel_hw,
                params=dict(stride=stride, padding=padding, dilation=dilation, groups=groups),
                seed=draw(st.integers(0, 2**32 - 1)))


@st.composite
def pool_configs(draw):
    """A small valid pooling: each padding at most half the window (PyTorch's rule), asymmetric allowed; ceil_mode
    and count_include_pad drawn (max pooling ignores the latter)."""
    kernel_size = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    padding = tuple((draw(st.integers(0, k // 2)), draw(st.integers(0, k // 2))) for k in kernel_size)
    in_hw = tuple(draw(st.integers(max(1, k - lo - hi), 7)) for k, (lo, hi) in zip(kernel_size, padding))
    return dict(x_shape=(draw(st.integers(1, 2)), draw(st.integers(1, 2))) + in_hw,
                params=dict(kernel_size=kernel_size, stride=stride, padding=padding, ceil_mode=draw(st.booleans())),
                count_include_pad=draw(st.booleans()), ties=draw(st.booleans()),
                seed=draw(st.integers(0, 2**32 - 1)))


def conv_out_shape(config):
    n, _, height, width = config["x_shape"]
    k, _, kh, kw = config["w_shape"]
    p = config["params"]
    (sh, sw), ((pt, pb), (pl, pr)), (dh, dw) = p["stride"], p["padding"], p["dilation"]
    return (n, k, output_size(height, kh, pt, pb, sh, dh), output_size(width, kw, pl, pr, sw, dw))


# ----------------------------------------------------------------------------------------------------------------
# reference convolution


@SETTINGS
@given(conv_configs(), st.booleans())
def test_conv2d_matches_naive_loops(config, with_bias):
    rng = np.random.default_rng(config["seed"])
    x, w = rng.standard_normal(config["x_shape"]), rng.standard_normal(config["w_shape"])
    b = rng.standard_normal(config["w_shape"][0]) if with_bias else None
    out = nan_array(conv_out_shape(config))
    conv.conv2d(out, x, w, *([] if b is None else [b]), **config["params"])
    np.testing.assert_allclose(out, naive_conv2d(x, w, b, **config["params"]), rtol=1e-12, atol=1e-12)


@SETTINGS
@given(conv_configs())
def test_conv2d_gradients_are_adjoints(config):
    """conv is bilinear: <conv(x, w), dy> = <x, grad_input(dy, w)> = <w, grad_weight(dy, x)>."""
    rng = np.random.default_rng(config["seed"])
    x, w = rng.standard_normal(config["x_shape"]), rng.standard_normal(config["w_shape"])
    y = nan_array(conv_out_shape(config))
    conv.conv2d(y, x, w, **config["params"])
    dy = rng.standard_normal(y.shape)
    dx, dw = nan_array(x.shape), nan_array(w.shape)
    conv.conv2d_grad_input(dx, dy, w, **config["params"])
    conv.conv2d_grad_weight(dw, dy, x, **config["params"])
    forward = np.vdot(y, dy)
    np.testing.assert_allclose(np.vdot(x, dx), forward, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(np.vdot(w, dw), forward, rtol=1e-10, atol=1e-10)


def test_conv2d_float32_stays_float32_and_matches_float64():
    rng = np.random.default_rng(0)
    x, w, b = rng.standard_normal((2, 4, 6, 5)), rng.standard_normal((6, 2, 3, 3)), rng.standard_normal(6)
    params = dict(stride=(2, 1), padding=((1, 0), (2, 1)), dilation=(1, 2), groups=2)
    out_shape = (2, 6, output_size(6, 3, 1, 0, 2), output_size(5, 3, 2, 1, 1, dilation=2))
    out64, out32 = nan_array(out_shape), nan_array(out_shape, np.float32)
    conv.conv2d(out64, x, w, b, **params)
    conv.conv2d(out32, x.astype(np.float32), w.astype(np.float32), b.astype(np.float32), **params)
    assert out32.dtype == np.float32
    np.testing.assert_allclose(out32, out64, rtol=1e-5, atol=1e-5)


@SETTINGS
@given(conv_configs(max_groups=1))
def test_im2col_and_col2im_are_adjoints(config):
    rng = np.random.default_rng(config["seed"])
    x = rng.standard_normal(config["x_shape"])
    p = config["params"]
    kernel_hw = config["w_shape"][2:]
    cols = conv.im2col(x, kernel_hw, p["stride"], p["padding"], p["dilation"])
    dcols = rng.standard_normal(cols.shape)
    dx = conv.col2im(dcols, x.shape, kernel_hw, p["stride"], p["padding"], p["dilation"])
    np.testing.assert_allclose(np.vdot(cols, dcols), np.vdot(x, dx), rtol=1e-10, atol=1e-10)


# ----------------------------------------------------------------------------------------------------------------
# reference pooling


def pool_input(config):
    """Random floats, or small integers so that windows often hold several equal maxima."""
    rng = np.random.default_rng(config["seed"])
    if config["ties"]:
        return rng.integers(-1, 2, config["x_shape"]).astype(np.float64), rng
    return rng.standard_normal(config["x_shape"]), rng


@SETTINGS
@given(pool_configs())
def test_max_pool2d_and_its_gradient_match_naive_loops(config):
    x, rng = pool_input(config)
    p = config["params"]
    y = nan_array(pool_out_shape(x.shape, **p))
    pool.max_pool2d(y, x, **p)
    np.testing.assert_array_equal(y, naive_max_pool2d(x, **p))
    dy = rng.standard_normal(y.shape)
    dx = nan_array(x.shape)
    pool.max_pool2d_grad(dx, dy, x, y, **p)
    np.testing.assert_allclose(dx, naive_max_pool2d_grad(dy, x, **p), rtol=1e-12, atol=1e-12)


@SETTINGS
@given(pool_configs())
def test_avg_pool2d_and_its_gradient_match_naive_loops(config):
    x, rng = pool_input(config)
    p = dict(config["params"], count_include_pad=config["count_include_pad"])
    y = nan_array(pool_out_shape(x.shape, **p))
    pool.avg_pool2d(y, x, **p)
    np.testing.assert_allclose(y, naive_avg_pool2d(x, **p), rtol=1e-12, atol=1e-12)
    dy = rng.standard_normal(y.shape)
    dx = nan_array(x.shape)
    pool.avg_pool2d_grad(dx, dy, **p)
    np.testing.assert_allclose(dx, naive_avg_pool2d_grad(dy, x.shape, **p), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(np.vdot(y, dy), np.vdot(x, dx), rtol=1e-10, atol=1e-10)   # avg pool is linear


def test_max_pool2d_grad_goes_to_the_first_maximum_and_never_to_padding():
    x = np.array([[[[-np.inf, 5.0, 5.0],
                    [-np.inf, 1.0, 5.0]]]])
    params = dict(kernel_size=(2, 2), stride=(1, 1), padding=((0, 0), (1, 1)))
    y = nan_array((1, 1, 1, 4))
    pool.max_pool2d(y, x, **params)
    np.testing.assert_array_equal(y, [[[[-np.inf, 5.0, 5.0, 5.0]]]])
    dx = nan_array(x.shape)
    pool.max_pool2d_grad(dx, np.array([[[[1.0, 10.0, 100.0, 1000.0]]]]), x, y, **params)
    # window 0 is padding and two -inf: its gradient goes to the first real -inf, (0, 0), not to the padding;
    # windows 1 and 2 both see their first 5 at (0, 1); window 3 sees 5 at (0, 2) before (1, 2)
    expected = np.array([[[[1.0, 10.0 + 100.0, 1000.0],
                           [0.0, 0.0, 0.0]]]])
    np.testing.assert_array_equal(dx, expected)


# ----------------------------------------------------------------------------------------------------------------
# Cython im2col / col2im against the reference


@pytest.fixture(scope="module")
def ext():
    """The compiled module; missing means the package was not built (pip install -e . --no-build-isolation)."""
    from graphnet._ext import im2col as compiled
    return compiled


def ext_arguments(config):
    p = config["params"]
    (kh, kw), (sh, sw), ((pt, _), (pl, _)), (dh, dw) = config["w_shape"][2:], p["stride"], p["padding"], p["dilation"]
    return kh, kw, sh, sw, pt, pl, dh, dw


@SETTINGS
@given(conv_configs(max_groups=1), st.sampled_from([np.float32, np.float64]))
def test_cython_im2col_and_col2im_match_reference(ext, config, dtype):
    rng = np.random.default_rng(config["seed"])
    x = rng.standard_normal(config["x_shape"]).astype(dtype)
    p = config["params"]
    kernel_hw = config["w_shape"][2:]
    expected = conv.im2col(x, kernel_hw, p["stride"], p["padding"], p["dilation"])
    n, rows, _ = expected.shape
    out_hw = conv_out_shape(config)[2:]

    cols = nan_array((n, rows) + out_hw, dtype)
    ext.im2col(x, cols, *ext_arguments(config))
    assert cols.dtype == dtype
    np.testing.assert_array_equal(cols.reshape(expected.shape), expected)

    dcols = rng.standard_normal(cols.shape).astype(dtype)
    dx = nan_array(x.shape, dtype)
    ext.col2im(dcols, dx, *ext_arguments(config))
    reference_dx = conv.col2im(dcols.reshape(expected.shape), x.shape, kernel_hw, p["stride"], p["padding"],
                               p["dilation"])
    np.testing.assert_allclose(dx, reference_dx, rtol=1e-6 if dtype == np.float32 else 1e-12, atol=1e-6)


def test_cython_im2col_reads_read_only_input_and_explains_bad_buffers(ext):
    x = np.arange(2 * 3 * 5 * 4, dtype=np.float32).reshape(2, 3, 5, 4)
    x.setflags(write=False)
    cols = nan_array((2, 3 * 2 * 2, 4, 3), np.float32)
    ext.im2col(x, cols, 2, 2, 1, 1, 0, 0, 1, 1)
    np.testing.assert_array_equal(cols.reshape(2, 12, 12), conv.im2col(x, (2, 2), (1, 1), ((0, 0), (0, 0)), (1, 1)))
    with pytest.raises(ValueError, match="reshape"):
        ext.im2col(x, cols.reshape(2, 12, 12), 2, 2, 1, 1, 0, 0, 1, 1)
    with pytest.raises(TypeError, match="float32"):
        ext.im2col(x, cols.astype(np.float64), 2, 2, 1, 1, 0, 0, 1, 1)
    with pytest.raises(ValueError, match="3\\*2\\*2"):
        ext.im2col(x, nan_array((2, 11, 4, 3), np.float32), 2, 2, 1, 1, 0, 0, 1, 1)
