"""Forward values of every op on the reference backend, against computations written here: NumPy/SciPy used
directly, Python loops over the definition, or closed forms — never graphnet's kernels.
"""
import itertools
import math

import numpy as np
import pytest
import scipy.signal
import scipy.special
from hypothesis import given, settings
from hypothesis import strategies as st

import graphnet as gn

try:                                   # PyTorch, where installed, is a second oracle for pooling and LRN
    import torch
    import torch.nn.functional as torch_f
except ImportError:
    torch = None

SETTINGS = settings(deadline=None, max_examples=max(30, settings.default.max_examples))
DTYPES = ["float32", "float64"]
TOL = {"float32": dict(rtol=2e-5, atol=2e-5), "float64": dict(rtol=1e-11, atol=1e-11)}


def run(fetches, feeds=None, **kwargs):
    return gn.compile(fetches, device="reference", **kwargs).run(feeds or {})


def rand(rng, shape, dtype="float64", low=None, high=None):
    if low is not None:
        return rng.uniform(low, high, size=shape).astype(dtype)
    return rng.standard_normal(shape).astype(dtype)


def close(actual, expected, dtype):
    np.testing.assert_allclose(actual, expected, **TOL[str(np.dtype(dtype))])


# ----------------------------------------------------------------------------------------------------------------
# elementwise


@st.composite
def broadcast_pairs(draw):
    out = draw(st.lists(st.integers(1, 4), max_size=4))

    def operand():
        dropped = draw(st.integers(0, len(out)))
        return tuple(1 if draw(st.booleans()) else d for d in out[dropped:])

    return operand(), operand()


BINARY = {
    "add": lambda a, b: a + b, "sub": lambda a, b: a - b, "mul": lambda a, b: a * b, "div": lambda a, b: a / b,
    "maximum": lambda a, b: np.where(a >= b, a, b), "minimum": lambda a, b: np.where(a <= b, a, b),
}


@SETTINGS
@given(broadcast_pairs(), st.sampled_from(sorted(BINARY)), st.sampled_from(DTYPES), st.integers(0, 2 ** 16))
def test_binary_elementwise_with_broadcasting(shapes, op, dtype, seed):
    rng = np.random.default_rng(seed)
    a_val = rand(rng, shapes[0], dtype)
    b_val = rand(rng, shapes[1], dtype, 0.5, 2.0) * rng.choice([-1, 1], size=shapes[1])   # no division by ~0
    with gn.Graph():
        a = gn.placeholder(shapes[0], dtype=dtype, name="a")
        b = gn.placeholder(shapes[1], dtype=dtype, name="b")
        c = getattr(gn, op)(a, b)
    out = run(c, {a: a_val, b: b_val})
    expected = BINARY[op](np.broadcast_to(a_val, np.broadcast_shapes(a_val.shape, b_val.shape)),
                          np.broadcast_to(b_val, np.broadcast_shapes(a_val.shape, b_val.shape)))
    assert out.dtype == np.dtype(dtype) and c.dtype == np.dtype(dtype)
    close(out, expected, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_unary_elementwise_and_python_operators(dtype):
    rng = np.random.default_rng(0)
    value = rand(rng, (3, 4), dtype, 0.1, 3.0)
    with gn.Graph():
        x = gn.placeholder((None, 4), dtype=dtype, name="x")
        fetches = [gn.neg(x), gn.exp(x), gn.log(x), gn.sqrt(x), gn.pow(x, 3), x ** 2, x ** 0.5, x ** -1,
                   -x, x * 2, 2 * x, x + 1, 1 - x, x / 4, 1 / x, x - x * x]
    outs = run(fetches, {x: value})
    v = value.astype(np.float64)
    expected = [-v, np.vectorize(math.exp)(v), np.vectorize(math.log)(v), np.vectorize(math.sqrt)(v), v * v * v,
                v * v, np.vectorize(math.sqrt)(v), 1 / v, -v, 2 * v, 2 * v, v + 1, 1 - v, v / 4, 1 / v, v - v * v]
    for out, exp in zip(outs, expected):
        assert out.dtype == np.dtype(dtype)                   # Python scalars keep the tensor's dtype
        close(out, exp, dtype)


def test_maximum_minimum_with_constants_and_ties():
    with gn.Graph():
        x = gn.placeholder((4,), name="x")
        fetches = [gn.maximum(x, 0.0), gn.minimum(x, 1.0), gn.maximum(x, x)]
    outs = run(fetches, {x: np.array([-1.0, 0.0, 0.5, 2.0])})
    np.testing.assert_array_equal(outs[0], [0, 0, 0.5, 2])
    np.testing.assert_array_equal(outs[1], [-1, 0, 0.5, 1])
    np.testing.assert_array_equal(outs[2], [-1, 0, 0.5, 2])


# ----------------------------------------------------------------------------------------------------------------
# matmul


@st.composite
def matmul_cases(draw):
    batch = draw(st.lists(st.integers(1, 3), max_size=2))
    m, k, n = (draw(st.integers(1, 5)) for _ in range(3))

    def batch_of():
        dropped = draw(st.integers(0, len(batch)))
        return tuple(1 if draw(st.booleans()) else d for d in batch[dropped:])

    ta, tb = draw(st.booleans()), draw(st.booleans())
    a = batch_of() + ((k, m) if ta else (m, k))
    b = batch_of() + ((n, k) if tb else (k, n))
    return a, b, ta, tb


def loop_matmul(a, b):
    """(..., m, k) @ (..., k, n) by the definition, one output element at a time, batch axes broadcast."""
    batch = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    a = np.broadcast_to(a, batch + a.shape[-2:])
    b = np.broadcast_to(b, batch + b.shape[-2:])
    m, k, n = a.shape[-2], a.shape[-1], b.shape[-1]
    out = np.zeros(batch + (m, n))
    for idx in itertools.product(*(range(d) for d in batch)):
        for i, j in itertools.product(range(m), range(n)):
            out[idx + (i, j)] = sum(float(a[idx + (i, p)]) * float(b[idx + (p, j)]) for p in range(k))
    return out


@SETTINGS
@given(matmul_cases(), st.sampled_from(DTYPES), st.integers(0, 2 ** 16))
def test_matmul_with_transposes_and_batches(case, dtype, seed):
    a_shape, b_shape, ta, tb = case
    rng = np.random.default_rng(seed)
    a_val, b_val = rand(rng, a_shape, dtype), rand(rng, b_shape, dtype)
    with gn.Graph():
        a = gn.placeholder(a_shape, dtype=dtype, name="a")
        b = gn.placeholder(b_shape, dtype=dtype, name="b")
        c = gn.matmul(a, b, transpose_a=ta, transpose_b=tb)
    out = run(c, {a: a_val, b: b_val})
    expected = loop_matmul(np.swapaxes(a_val, -1, -2) if ta else a_val, np.swapaxes(b_val, -1, -2) if tb else b_val)
    assert out.dtype == np.dtype(dtype)
    close(out, expected, dtype)


def test_matmul_operator_and_transpose_property():
    rng = np.random.default_rng(1)
    a_val, b_val = rand(rng, (3, 4)), rand(rng, (3, 5))
    with gn.Graph():
        a = gn.placeholder((None, 4), dtype="float64", name="a")
        b = gn.placeholder((None, 5), dtype="float64", name="b")
        fetches = [a.T @ b, gn.transpose(a) @ b, a @ a.T]
    outs = run(fetches, {a: a_val, b: b_val})
    close(outs[0], loop_matmul(a_val.T, b_val), "float64")
    close(outs[1], loop_matmul(a_val.T, b_val), "float64")
    close(outs[2], loop_matmul(a_val, a_val.T), "float64")


# ----------------------------------------------------------------------------------------------------------------
# reductions


@st.composite
def reduction_cases(draw):
    shape = tuple(draw(st.lists(st.integers(1, 4), min_size=1, max_size=4)))
    axes = draw(st.one_of(st.none(), st.integers(-len(shape), len(shape) - 1),
                          st.sets(st.integers(0, len(shape) - 1), min_size=1).map(tuple)))
    return shape, axes, draw(st.booleans())


def loop_reduce(value, axes, keepdims, combine):
    """Reduce by visiting every element and combining it into its output cell."""
    ndim = value.ndim
    axes = tuple(range(ndim)) if axes is None else tuple(a % ndim for a in np.atleast_1d(axes))
    out_shape = tuple(1 if a in axes else d for a, d in enumerate(value.shape))
    cells = {}
    for idx in itertools.product(*(range(d) for d in value.shape)):
        key = tuple(0 if a in axes else i for a, i in enumerate(idx))
        cells.setdefault(key, []).append(float(value[idx]))
    out = np.zeros(out_shape)
    for key, items in cells.items():
        out[key] = combine(items)
    if not keepdims:
        out = out.reshape(tuple(d for a, d in enumerate(value.shape) if a not in axes))
    return out


@SETTINGS
@given(reduction_cases(), st.sampled_from(DTYPES), st.integers(0, 2 ** 16))
def test_reductions(case, dtype, seed):
    shape, axes, keepdims = case
    value = rand(np.random.default_rng(seed), shape, dtype)
    with gn.Graph():
        x = gn.placeholder(shape, dtype=dtype, name="x")
        fetches = [gn.sum(x, axes, keepdims), gn.mean(x, axes, keepdims), gn.max(x, axes, keepdims),
                   x.sum(axis=axes, keepdims=keepdims)]
    outs = run(fetches, {x: value})
    combines = [math.fsum, lambda v: math.fsum(v) / len(v), max, math.fsum]
    for out, combine in zip(outs, combines):
        assert out.dtype == np.dtype(dtype)
        close(out, loop_reduce(value, axes, keepdims, combine), dtype)


# ----------------------------------------------------------------------------------------------------------------
# activations


@pytest.mark.parametrize("dtype", DTYPES)
def test_activations_against_their_formulas(dtype):
    rng = np.random.default_rng(2)
    value = rand(rng, (4, 6), dtype) * 3
    value[0, :3] = [0.0, -1000.0, 1000.0]
    with gn.Graph():
        x = gn.placeholder((None, 6), dtype=dtype, name="x")
        fetches = [gn.relu(x), gn.leaky_relu(x, 0.2), gn.elu(x, 1.5), gn.sigmoid(x), gn.tanh(x)]
    outs = run(fetches, {x: value})
    v = value.astype(np.float64)
    with np.errstate(over="ignore"):
        expected = [np.where(v > 0, v, 0), np.where(v > 0, v, 0.2 * v),
                    np.where(v > 0, v, 1.5 * (np.exp(np.minimum(v, 0)) - 1)),
                    scipy.special.expit(v), np.tanh(v)]
    for out, exp in zip(outs, expected):
        assert out.dtype == np.dtype(dtype)
        assert np.all(np.isfinite(out))
        close(out, exp, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_sigmoid_saturates_without_overflow(dtype):
    with gn.Graph():
        x = gn.placeholder((None,), dtype=dtype, name="x")
        y = gn.sigmoid(x)
    with np.errstate(over="raise", invalid="raise", divide="raise"):     # no overflow, no NaN
        out = run(y, {x: np.array([-1000.0, -100.0, -30.0, 0.0, 30.0, 100.0, 1000.0])})
    assert np.all(np.isfinite(out))
    assert out[0] == 0.0 and out[-1] == 1.0 and out[3] == 0.5
    close(out, [0.0, math.exp(-100), 1 / (1 + math.exp(30)), 0.5, 1 / (1 + math.exp(-30)), 1.0, 1.0], dtype)


def direct_softmax(row):
    """exp(x_i)/Σ exp(x_j) in exact-ish arithmetic: Python floats after subtracting the max by hand."""
    m = max(row)
    e = [math.exp(v - m) for v in row]
    s = math.fsum(e)
    return [v / s for v in e], [v - m - math.log(s) for v in row]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("scale,offset", [(1.0, 0.0), (10.0, 0.0), (1.0, 1000.0), (50.0, -1000.0)])
def test_softmax_and_log_softmax_are_stable(dtype, scale, offset):
    rng = np.random.default_rng(3)
    value = (rand(rng, (3, 5, 4)) * scale + offset).astype(dtype)
    with gn.Graph():
        x = gn.placeholder((None, 5, 4), dtype=dtype, name="x")
        fetches = [gn.softmax(x), gn.log_softmax(x), gn.softmax(x, axis=1), gn.log_softmax(x, axis=1)]
    outs = run(fetches, {x: value})
    for out in outs:
        assert out.dtype == np.dtype(dtype) and np.all(np.isfinite(out))
    v = value.astype(np.float64)
    for axis, (soft, log_soft) in ((2, outs[:2]), (1, outs[2:])):
        moved = np.moveaxis(v, axis, -1)
        rows = moved.reshape(-1, moved.shape[-1])
        expected = [direct_softmax(list(r)) for r in rows]
        exp_soft = np.moveaxis(np.array([e[0] for e in expected]).reshape(moved.shape), -1, axis)
        exp_log = np.moveaxis(np.array([e[1] for e in expected]).reshape(moved.shape), -1, axis)
        close(soft, exp_soft, dtype)
        close(log_soft, exp_log, dtype)
        np.testing.assert_allclose(soft.sum(axis=axis), 1.0, rtol=1e-5)


def test_softmax_of_1000_is_uniform_not_nan():
    with gn.Graph():
        x = gn.placeholder((None, 3), name="x")
        fetches = [gn.softmax(x), gn.log_softmax(x)]
    soft, log_soft = run(fetches, {x: np.full((2, 3), 1000.0, "float32")})
    np.testing.assert_allclose(soft, 1 / 3, rtol=1e-6)
    np.testing.assert_allclose(log_soft, -math.log(3), rtol=1e-6)


def loop_maxout(x, pieces, axis):
    moved = np.moveaxis(x, axis, -1)
    out = np.zeros(moved.shape[:-1] + (moved.shape[-1] // pieces,))
    for idx in itertools.product(*(range(d) for d in out.shape)):
        j = idx[-1]
        out[idx] = max(moved[idx[:-1] + (j * pieces + p,)] for p in range(pieces))
    return np.moveaxis(out, -1, axis)


@pytest.mark.parametrize("shape,pieces,axis", [((4, 6), 2, 1), ((4, 6), 3, 1), ((2, 6, 3, 3), 3, 1),
                                               ((3, 5, 8), 4, -1)])
def test_maxout_keeps_the_max_of_consecutive_features(shape, pieces, axis):
    value = rand(np.random.default_rng(4), shape, "float32")
    with gn.Graph():
        x = gn.placeholder((None,) + shape[1:], name="x")
        y = gn.maxout(x, pieces, axis=axis)
    out = run(y, {x: value})
    close(out, loop_maxout(value, pieces, axis % len(shape)), "float32")


# ----------------------------------------------------------------------------------------------------------------
# losses


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("scale", [1.0, 100.0, 1000.0])
def test_softmax_cross_entropy_against_the_direct_formula(dtype, scale):
    rng = np.random.default_rng(5)
    logits_val = (rand(rng, (6, 4)) * scale).astype(dtype)
    labels_val = rng.integers(0, 4, 6)
    with gn.Graph():
        logits = gn.placeholder((None, 4), dtype=dtype, name="logits")
        labels = gn.placeholder((None,), dtype="int64", name="labels")
        loss = gn.softmax_cross_entropy(logits, labels)
    out = run(loss, {logits: logits_val, labels: labels_val})
    assert out.shape == () and out.dtype == np.dtype(dtype) and np.isfinite(out)
    per_example = []
    for row, label in zip(logits_val.astype(np.float64), labels_val):
        m = max(row)
        per_example.append(m + math.log(math.fsum(math.exp(v - m) for v in row)) - row[label])   # -log softmax
    close(out, math.fsum(per_example) / len(per_example), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_mse(dtype):
    rng = np.random.default_rng(6)
    p_val, t_val = rand(rng, (5, 3), dtype), rand(rng, (5, 3), dtype)
    with gn.Graph():
        p = gn.placeholder((None, 3), dtype=dtype, name="p")
        t = gn.placeholder((None, 3), dtype=dtype, name="t")
        loss = gn.mse(p, t)
    out = run(loss, {p: p_val, t: t_val})
    expected = math.fsum((float(a) - float(b)) ** 2 for a, b in zip(p_val.ravel(), t_val.ravel())) / p_val.size
    assert out.dtype == np.dtype(dtype)
    close(out, expected, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_binary_cross_entropy_with_logits(dtype):
    rng = np.random.default_rng(7)
    z_val, t_val = rand(rng, (4, 3), dtype) * 3, rng.uniform(0, 1, (4, 3)).astype(dtype)
    with gn.Graph():
        z = gn.placeholder((None, 3), dtype=dtype, name="z")
        t = gn.placeholder((None, 3), dtype=dtype, name="t")
        loss = gn.binary_cross_entropy_with_logits(z, t)
    out = run(loss, {z: z_val, t: t_val})
    terms = []
    for zi, ti in zip(z_val.astype(np.float64).ravel(), t_val.astype(np.float64).ravel()):
        s = 1 / (1 + math.exp(-zi))
        terms.append(-(ti * math.log(s) + (1 - ti) * math.log(1 - s)))
    assert out.dtype == np.dtype(dtype)
    close(out, math.fsum(terms) / len(terms), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_binary_cross_entropy_with_extreme_logits_is_finite(dtype):
    with gn.Graph():
        z = gn.placeholder((None,), dtype=dtype, name="z")
        t = gn.placeholder((None,), dtype=dtype, name="t")
        loss = gn.binary_cross_entropy_with_logits(z, t)
    # confident and right: ~0; confident and wrong: the loss is |z|
    assert run(loss, {z: np.array([100.0, -100.0]), t: np.array([1.0, 0.0])}) == pytest.approx(0.0, abs=1e-30)
    wrong = run(loss, {z: np.array([100.0, -100.0, 1000.0]), t: np.array([0.0, 1.0, 0.0])})
    assert np.isfinite(wrong) and wrong == pytest.approx((100 + 100 + 1000) / 3, rel=1e-6)


# ----------------------------------------------------------------------------------------------------------------
# convolution


def loop_conv2d(x, w, b, stride, padding, dilation, groups):
    """The definition of conv2d (NCHW, PyTorch semantics), one output element at a time, in float64."""
    n_img, c_in, height, width = x.shape
    k_out, c_per_group, kh, kw = w.shape
    (sh, sw), ((pt, pb), (pl, pr)), (dh, dw) = stride, padding, dilation
    oh = (height + pt + pb - dh * (kh - 1) - 1) // sh + 1
    ow = (width + pl + pr - dw * (kw - 1) - 1) // sw + 1
    out = np.zeros((n_img, k_out, oh, ow))
    k_per_group = k_out // groups
    for n, k, i, j in itertools.product(range(n_img), range(k_out), range(oh), range(ow)):
        g = k // k_per_group
        total = 0.0 if b is None else float(b[k])
        for c, r, s in itertools.product(range(c_per_group), range(kh), range(kw)):
            h, v = i * sh + r * dh - pt, j * sw + s * dw - pl
            if 0 <= h < height and 0 <= v < width:
                total += float(x[n, g * c_per_group + c, h, v]) * float(w[k, c, r, s])
        out[n, k, i, j] = total
    return out


@st.composite
def conv_cases(draw):
    groups = draw(st.integers(1, 3))
    c_in, k_out = groups * draw(st.integers(1, 2)), groups * draw(st.integers(1, 2))
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    padding = (draw(st.integers(0, 2)), draw(st.integers(0, 2)))
    height = draw(st.integers(dilation[0] * (kh - 1) + 1 - 2 * padding[0], 7).filter(lambda v: v >= 1))
    width = draw(st.integers(max(1, dilation[1] * (kw - 1) + 1 - 2 * padding[1]), 7))
    return dict(n=draw(st.integers(1, 2)), c=c_in, k=k_out, kh=kh, kw=kw, h=height, w=width, stride=stride,
                dilation=dilation, padding=padding, groups=groups, bias=draw(st.booleans()),
                dtype=draw(st.sampled_from(DTYPES)))


@SETTINGS
@given(conv_cases(), st.integers(0, 2 ** 16))
def test_conv2d_against_loops_with_stride_padding_dilation_groups(case, seed):
    rng = np.random.default_rng(seed)
    dtype = case["dtype"]
    x_val = rand(rng, (case["n"], case["c"], case["h"], case["w"]), dtype)
    w_val = rand(rng, (case["k"], case["c"] // case["groups"], case["kh"], case["kw"]), dtype)
    b_val = rand(rng, (case["k"],), dtype) if case["bias"] else None
    with gn.Graph():
        x = gn.placeholder((None, case["c"], case["h"], case["w"]), dtype=dtype, name="x")
        w = gn.variable(w_val, name="w")
        b = None if b_val is None else gn.variable(b_val, name="b")
        y = gn.conv2d(x, w, b, stride=case["stride"], padding=case["padding"], dilation=case["dilation"],
                      groups=case["groups"])
    out = run(y, {x: x_val})
    (ph, pw) = case["padding"]
    expected = loop_conv2d(x_val, w_val, b_val, case["stride"], ((ph, ph), (pw, pw)), case["dilation"],
                           case["groups"])
    assert out.dtype == np.dtype(dtype)
    close(out, expected, dtype)


@pytest.mark.parametrize("padding", [0, 1, 2, "same", "valid"])
def test_conv2d_against_scipy_correlate(padding):
    rng = np.random.default_rng(8)
    x_val, w_val, b_val = rand(rng, (2, 3, 9, 8)), rand(rng, (4, 3, 3, 5)), rand(rng, (4,))
    with gn.Graph():
        x = gn.placeholder((None, 3, 9, 8), dtype="float64", name="x")
        y = gn.conv2d(x, gn.variable(w_val), gn.variable(b_val), padding=padding)
    out = run(y, {x: x_val})
    if padding == "same":
        pads = ((1, 1), (2, 2))
    else:
        p = 0 if padding == "valid" else padding
        pads = ((p, p), (p, p))
    padded = np.pad(x_val, ((0, 0), (0, 0)) + pads)
    expected = np.stack([np.stack([sum(scipy.signal.correlate(padded[n, c], w_val[k, c], mode="valid")
                                       for c in range(3)) + b_val[k] for k in range(4)]) for n in range(2)])
    assert out.shape == expected.shape
    close(out, expected, "float64")
    if padding == "same":
        assert out.shape[2:] == (9, 8)


def test_conv2d_same_padding_with_an_even_kernel_pads_more_at_the_bottom_right():
    """PyTorch's 'same' for an even kernel: total padding D*(F-1), the extra row/column after."""
    rng = np.random.default_rng(9)
    x_val, w_val = rand(rng, (1, 1, 5, 6)), rand(rng, (1, 1, 2, 4))
    with gn.Graph():
        x = gn.placeholder((None, 1, 5, 6), dtype="float64", name="x")
        y = gn.conv2d(x, gn.variable(w_val), padding="same")
    out = run(y, {x: x_val})
    expected = loop_conv2d(x_val, w_val, None, (1, 1), ((0, 1), (1, 2)), (1, 1), 1)
    close(out, expected, "float64")


# ----------------------------------------------------------------------------------------------------------------
# pooling


def loop_window_starts(size, kernel, pad_lo, pad_hi, stride, ceil_mode):
    """The first input index of each window: windows at −pad_lo, −pad_lo + S, … that fit in the padded input, and
    with ceil_mode one more that overhangs it by less than a stride, if it starts before size (in the input or the
    top/left padding)."""
    starts, start = [], -pad_lo
    while start + kernel <= size + pad_hi:
        starts.append(start)
        start += stride
    if ceil_mode and start + kernel - (size + pad_hi) < stride and start < size:
        starts.append(start)
    return starts


def loop_pool(x, kernel, stride, padding, kind, ceil_mode=False, count_include_pad=True):
    """Max (padding never wins) or average (padding counts as zero) by loops; the average divides by the window's
    positions inside the padded input (count_include_pad) or inside the input."""
    n_img, chans, height, width = x.shape
    (kh, kw), (sh, sw), ((pt, pb), (pl, pr)) = kernel, stride, padding
    rows = loop_window_starts(height, kh, pt, pb, sh, ceil_mode)
    cols = loop_window_starts(width, kw, pl, pr, sw, ceil_mode)
    out = np.zeros((n_img, chans, len(rows), len(cols)))
    for n, c, (i, top), (j, left) in itertools.product(range(n_img), range(chans), enumerate(rows), enumerate(cols)):
        positions = [(top + r, left + s) for r in range(kh) for s in range(kw)]
        window = [float(x[n, c, h, w]) for h, w in positions if 0 <= h < height and 0 <= w < width]
        padded = [1 for h, w in positions if h < height + pb and w < width + pr]
        divisor = len(padded) if count_include_pad else len(window)
        out[n, c, i, j] = max(window) if kind == "max" else math.fsum(window) / divisor
    return out


@st.composite
def pool_cases(draw):
    """Window, stride, padding (symmetric as (ph, pw), or ((top, bottom), (left, right))), ceil_mode and
    count_include_pad."""
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    stride = draw(st.one_of(st.none(), st.tuples(st.integers(1, 3), st.integers(1, 3))))
    sides = tuple((draw(st.integers(0, k // 2)), draw(st.integers(0, k // 2))) for k in (kh, kw))
    symmetric = draw(st.booleans())
    if symmetric:
        sides = tuple((lo, lo) for lo, _ in sides)
    height = draw(st.integers(max(1, kh - sum(sides[0])), 7))
    width = draw(st.integers(max(1, kw - sum(sides[1])), 7))
    padding = (sides[0][0], sides[1][0]) if symmetric else sides
    return dict(kernel=(kh, kw), stride=stride, padding=padding, shape=(2, 2, height, width),
                dtype=draw(st.sampled_from(DTYPES)), ceil_mode=draw(st.booleans()),
                count_include_pad=draw(st.booleans()))


def explicit(padding):
    return padding if isinstance(padding[0], tuple) else tuple((p, p) for p in padding)


@SETTINGS
@given(pool_cases(), st.integers(0, 2 ** 16))
def test_max_and_avg_pooling_against_loops(case, seed):
    """Against the loops, and against PyTorch where it is installed and the padding is symmetric (PyTorch pads
    both sides alike)."""
    dtype = case["dtype"]
    value = rand(np.random.default_rng(seed), case["shape"], dtype) - 2.0      # mostly negative: padding must lose
    with gn.Graph():
        x = gn.placeholder((None,) + case["shape"][1:], dtype=dtype, name="x")
        kwargs = dict(stride=case["stride"], padding=case["padding"], ceil_mode=case["ceil_mode"])
        fetches = [gn.max_pool2d(x, case["kernel"], **kwargs),
                   gn.avg_pool2d(x, case["kernel"], count_include_pad=case["count_include_pad"], **kwargs)]
    outs = run(fetches, {x: value})
    stride = case["kernel"] if case["stride"] is None else case["stride"]
    for out, kind in zip(outs, ("max", "avg")):
        assert out.dtype == np.dtype(dtype)
        close(out, loop_pool(value, case["kernel"], stride, explicit(case["padding"]), kind, case["ceil_mode"],
                             case["count_include_pad"]), dtype)
    if torch is not None and not isinstance(case["padding"][0], tuple):
        t = torch.tensor(value)
        close(outs[0], torch_f.max_pool2d(t, case["kernel"], stride, case["padding"], ceil_mode=case["ceil_mode"]),
              dtype)
        close(outs[1], torch_f.avg_pool2d(t, case["kernel"], stride, case["padding"], ceil_mode=case["ceil_mode"],
                                          count_include_pad=case["count_include_pad"]), dtype)


def test_ceil_mode_pools_a_partial_last_window():
    """1 … 5 in a row, 1×2 windows with stride 2: floor mode pools (1, 2) and (3, 4); ceil_mode also keeps (5),
    whose average counts one position."""
    with gn.Graph():
        x = gn.placeholder((1, 1, 1, 5), dtype="float64", name="x")
        fetches = [gn.max_pool2d(x, (1, 2)), gn.max_pool2d(x, (1, 2), ceil_mode=True),
                   gn.avg_pool2d(x, (1, 2), ceil_mode=True), gn.avg_pool2d(x, (1, 2), ceil_mode=True,
                                                                           count_include_pad=False)]
    outs = run(fetches, {x: np.arange(1.0, 6.0).reshape(1, 1, 1, 5)})
    np.testing.assert_array_equal(outs[0].ravel(), [2, 4])
    np.testing.assert_array_equal(outs[1].ravel(), [2, 4, 5])
    np.testing.assert_array_equal(outs[2].ravel(), [1.5, 3.5, 5])      # the column past the input is no padding
    np.testing.assert_array_equal(outs[3].ravel(), [1.5, 3.5, 5])


def loop_lrn(x, size, alpha, beta, k, before=None):
    """b_c = a_c / (k + α/n · Σ a_{c'}²)^β, c' over the channels c − before … c − before + n − 1 that exist."""
    before = size // 2 if before is None else before
    out = np.zeros(x.shape)
    channels = x.shape[1]
    for index in itertools.product(*(range(d) for d in x.shape)):
        n, c, rest = index[0], index[1], index[2:]
        total = math.fsum(float(x[(n, other) + rest]) ** 2
                          for other in range(max(0, c - before), min(channels, c - before + size)))
        out[index] = x[index] / (k + alpha / size * total) ** beta
    return out


@SETTINGS
@given(st.lists(st.integers(1, 4), min_size=3, max_size=4).map(tuple), st.integers(1, 6), st.sampled_from(DTYPES),
       st.floats(0.0, 2.0), st.floats(0.1, 1.5), st.floats(0.5, 3.0), st.integers(0, 2 ** 16))
def test_local_response_norm_against_loops(shape, size, dtype, alpha, beta, k, seed):
    """Against the loops, and against PyTorch's F.local_response_norm where it is installed."""
    value = rand(np.random.default_rng(seed), shape, dtype) * 2
    with gn.Graph():
        x = gn.placeholder(shape, dtype=dtype, name="x")
        y = gn.local_response_norm(x, size, alpha=alpha, beta=beta, k=k)
    out = run(y, {x: value})
    assert out.dtype == np.dtype(dtype)
    close(out, loop_lrn(value, size, alpha, beta, k), dtype)
    if torch is not None:
        close(out, torch_f.local_response_norm(torch.tensor(value), size, alpha=alpha, beta=beta, k=k), dtype)


def test_local_response_norm_even_windows_start_where_asked():
    """size 2: PyTorch's window is (c − 1, c), ONNX's (c, c + 1) (channels_before=0); the zero channels beyond the
    edges still count in the divisor n."""
    value = np.array([1.0, 2.0, 3.0]).reshape(1, 3, 1)
    with gn.Graph():
        x = gn.placeholder((1, 3, 1), dtype="float64", name="x")
        pytorch = gn.local_response_norm(x, 2, alpha=2.0, beta=1.0)
        onnx = gn.local_response_norm(x, 2, alpha=2.0, beta=1.0, channels_before=0)
        fetches = [pytorch, onnx]
    pytorch_window, onnx_window = run(fetches, {x: value})
    np.testing.assert_allclose(pytorch_window.ravel(), [1 / (1 + 1), 2 / (1 + 1 + 4), 3 / (1 + 4 + 9)])
    np.testing.assert_allclose(onnx_window.ravel(), [1 / (1 + 1 + 4), 2 / (1 + 4 + 9), 3 / (1 + 9)])


def test_global_avg_pool():
    value = rand(np.random.default_rng(10), (2, 3, 4, 5), "float32")
    with gn.Graph():
        x = gn.placeholder((None, 3, 4, 5), name="x")
        y = gn.global_avg_pool2d(x)
    expected = [[math.fsum(value[n, c].ravel()) / 20 for c in range(3)] for n in range(2)]
    close(run(y, {x: value}), expected, "float32")


# ----------------------------------------------------------------------------------------------------------------
# data movement


def test_reshape_transpose_concat_getitem_flatten_values():
    rng = np.random.default_rng(11)
    a_val, b_val = rand(rng, (2, 3, 4), "float32"), rand(rng, (2, 2, 4), "float32")
    with gn.Graph():
        a = gn.placeholder((None, 3, 4), name="a")
        b = gn.placeholder((None, 2, 4), name="b")
        fetches = [gn.reshape(a, (-1, 12)), gn.transpose(a, (2, 0, 1)), a.transpose(), gn.concat([a, b], axis=1),
                   a[:, 1], a[..., ::-2], a[0, None, 1:3], gn.flatten(a), gn.flatten(a, start_dim=2)]
    outs = run(fetches, {a: a_val, b: b_val})
    expected = [a_val.reshape(2, 12), a_val.transpose(2, 0, 1), a_val.transpose(2, 1, 0),
                np.concatenate([a_val, b_val], axis=1), a_val[:, 1], a_val[..., ::-2], a_val[0, None, 1:3],
                a_val.reshape(2, 12), a_val]
    for out, exp in zip(outs, expected):
        np.testing.assert_array_equal(out, exp)


def test_constants_and_variables_as_values():
    with gn.Graph():
        c = gn.constant([[1.0, 2.0]])
        v = gn.variable(np.array([3.0, 4.0]), name="v")       # a float64 array stays float64
        fetches = [c + 1, v * 2, c * v]
    outs = run(fetches)
    assert c.dtype == np.float32 and v.dtype == np.float64
    np.testing.assert_array_equal(outs[0], [[2.0, 3.0]])
    np.testing.assert_array_equal(outs[1], [6.0, 8.0])
    assert outs[2].dtype == np.float64                         # float32 * float64 promotes, as in NumPy


# ----------------------------------------------------------------------------------------------------------------
# dropout


def dropout_graph(rate, seed=None, shape=(400, 500), dtype="float32"):
    g = gn.Graph()
    with g:
        x = gn.placeholder(shape, dtype=dtype, name="x")
        y = gn.dropout(x, rate, seed=seed)
    return x, y


def test_dropout_in_inference_is_the_identity():
    with gn.Graph():
        x = gn.placeholder((None, 5), name="x")
        y = gn.dropout(x, 0.5, training=False)
        z = gn.dropout(x, 0.0)
        fetches = [y * 1, z * 1]
    value = rand(np.random.default_rng(12), (3, 5), "float32")
    for out in run(fetches, {x: value}):
        np.testing.assert_array_equal(out, value)


@pytest.mark.parametrize("rate", [0.1, 0.5, 0.8])
def test_dropout_training_zeroes_a_fraction_rate_and_scales_the_rest(rate):
    x, y = dropout_graph(rate)
    value = np.random.default_rng(13).uniform(1.0, 2.0, (400, 500)).astype("float32")   # never 0 by itself
    out = run(y, {x: value})
    dropped = out == 0
    assert abs(dropped.mean() - rate) < 0.01                 # 200 000 draws: std of the fraction < 0.0012
    np.testing.assert_allclose(out[~dropped], value[~dropped] / (1 - rate), rtol=1e-6)
    assert out.dtype == np.float32


def test_dropout_masks_are_fresh_per_run_and_reproducible_per_seed_and_run():
    x, y = dropout_graph(0.5, seed=1234, shape=(64, 64))
    value = np.ones((64, 64), "float32")
    prog_a = gn.compile(y)
    prog_b = gn.compile(y)                                   # same graph, same seed: same sequence of masks
    a1, a2, a3 = (prog_a.run({x: value}) for _ in range(3))
    b1, b2 = (prog_b.run({x: value}) for _ in range(2))
    assert not np.array_equal(a1, a2) and not np.array_equal(a2, a3)
    np.testing.assert_array_equal(a1, b1)
    np.testing.assert_array_equal(a2, b2)
    # a separate graph with the same seed draws the same first mask
    x2, y2 = dropout_graph(0.5, seed=1234, shape=(64, 64))
    np.testing.assert_array_equal(gn.compile(y2).run({x2: value}), a1)
    # a different seed draws a different one
    x3, y3 = dropout_graph(0.5, seed=4321, shape=(64, 64))
    assert not np.array_equal(gn.compile(y3).run({x3: value}), a1)


def test_dropouts_without_a_seed_draw_independent_masks():
    with gn.Graph():
        x = gn.placeholder((64, 64), name="x")
        fetches = [gn.dropout(x, 0.5), gn.dropout(x, 0.5)]
    m1, m2 = run(fetches, {x: np.ones((64, 64), "float32")})
    assert not np.array_equal(m1 == 0, m2 == 0)


def test_dropout_gradient_uses_the_forward_mask():
    with gn.Graph():
        x = gn.placeholder((50, 40), dtype="float64", name="x")
        w = gn.variable(np.ones((50, 40)), name="w")
        y = gn.dropout(x * w, 0.3)
        dw = gn.gradients(gn.sum(y), w)
    value = np.random.default_rng(14).uniform(1.0, 2.0, (50, 40))
    out, grad = run([y, dw], {x: value})
    kept = out != 0
    np.testing.assert_allclose(grad, np.where(kept, value / 0.7, 0.0), rtol=1e-12)


# ----------------------------------------------------------------------------------------------------------------
# batch norm


def bn_graph(shape, dtype, training, momentum=0.1, eps=1e-5, rm0=None, rv0=None, seed=15):
    rng = np.random.default_rng(seed)
    c = shape[1]
    gamma_val, beta_val = rand(rng, (c,), dtype) + 1, rand(rng, (c,), dtype)
    rm0 = np.zeros(c, dtype) if rm0 is None else rm0.astype(dtype)
    rv0 = np.ones(c, dtype) if rv0 is None else rv0.astype(dtype)
    with gn.Graph():
        x = gn.placeholder((None,) + shape[1:], dtype=dtype, name="x")
        rm = gn.variable(rm0, name="running_mean", trainable=False)
        rv = gn.variable(rv0, name="running_var", trainable=False)
        y = gn.batch_norm(x, gn.variable(gamma_val, name="gamma"), gn.variable(beta_val, name="beta"), rm, rv,
                          training=training, momentum=momentum, eps=eps)
    return x, y, rm, rv, gamma_val, beta_val


def per_channel_stats(value):
    """Mean, biased and unbiased variance per channel (axis 1), by explicit sums over every other axis."""
    moved = np.moveaxis(value.astype(np.float64), 1, 0).reshape(value.shape[1], -1)
    m = moved.shape[1]
    mean = np.array([math.fsum(row) / m for row in moved])
    sq = np.array([math.fsum((v - mu) ** 2 for v in row) for row, mu in zip(moved, mean)])
    return mean, sq / m, sq / (m - 1)


def channel(v, ndim):
    return v.reshape((1, -1) + (1,) * (ndim - 2))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(8, 3), (4, 3, 5, 2)])
def test_batch_norm_training_and_running_statistics(dtype, shape):
    momentum, eps = 0.2, 1e-3
    x, y, rm, rv, gamma, beta = bn_graph(shape, dtype, training=True, momentum=momentum, eps=eps)
    prog = gn.compile(y)
    rng = np.random.default_rng(16)
    running_mean, running_var = np.zeros(shape[1]), np.ones(shape[1])
    for step in range(3):
        value = (rand(rng, shape, dtype) * (step + 1) + step).astype(dtype)
        out = prog.run({x: value})
        mean, var_biased, var_unbiased = per_channel_stats(value)
        expected = channel(gamma, len(shape)) * (value - channel(mean, len(shape))) \
            / np.sqrt(channel(var_biased, len(shape)) + eps) + channel(beta, len(shape))
        assert out.dtype == np.dtype(dtype)
        close(out, expected, dtype)
        running_mean = (1 - momentum) * running_mean + momentum * mean
        running_var = (1 - momentum) * running_var + momentum * var_unbiased
        close(rm.numpy(), running_mean, dtype)                 # updated after every run
        close(rv.numpy(), running_var, dtype)


@pytest.mark.parametrize("shape", [(8, 3), (4, 3, 5, 2)])
def test_batch_norm_inference_uses_the_running_statistics(shape):
    rm0, rv0 = np.array([0.5, -1.0, 2.0]), np.array([4.0, 0.25, 1.0])
    x, y, rm, rv, gamma, beta = bn_graph(shape, "float64", training=False, rm0=rm0, rv0=rv0, eps=1e-5)
    value = rand(np.random.default_rng(17), shape)
    out = run(y, {x: value})
    nd = len(shape)
    expected = channel(gamma, nd) * (value - channel(rm0, nd)) / np.sqrt(channel(rv0, nd) + 1e-5) + channel(beta, nd)
    close(out, expected, "float64")
    np.testing.assert_array_equal(rm.numpy(), rm0)            # inference leaves them alone
    np.testing.assert_array_equal(rv.numpy(), rv0)


def test_batch_norm_inference_sees_statistics_learned_in_training():
    shape = (16, 3)
    x, y_train, rm, rv, gamma, beta = bn_graph(shape, "float64", training=True, momentum=1.0)
    with y_train.graph:
        y_eval = gn.batch_norm(x, gn.constant(gamma), gn.constant(beta), rm, rv, training=False)
    value = rand(np.random.default_rng(18), shape) * 3 + 1
    gn.compile(y_train).run({x: value})
    mean, _, var_unbiased = per_channel_stats(value)
    out = gn.compile(y_eval).run({x: value})
    close(out, gamma * (value - mean) / np.sqrt(var_unbiased + 1e-5) + beta, "float64")


# ----------------------------------------------------------------------------------------------------------------
# dtypes


@pytest.mark.parametrize("dtype", DTYPES)
def test_every_op_keeps_the_dtype(dtype):
    rng = np.random.default_rng(19)
    with gn.Graph():
        x = gn.placeholder((None, 2, 6, 6), dtype=dtype, name="x")
        labels = gn.placeholder((None,), dtype="int64", name="labels")
        w = gn.variable(rand(rng, (4, 2, 3, 3), dtype), name="w")
        h = gn.conv2d(x, w, gn.variable(np.zeros(4, dtype)), padding=1)
        rm, rv = gn.variable(np.zeros(4, dtype), trainable=False), gn.variable(np.ones(4, dtype), trainable=False)
        h = gn.batch_norm(h, gn.variable(np.ones(4, dtype)), gn.variable(np.zeros(4, dtype)), rm, rv, training=True)
        pooled = [gn.max_pool2d(h, 2), gn.avg_pool2d(h, 2), gn.global_avg_pool2d(h)]
        flat = gn.flatten(pooled[0])
        dense = flat @ gn.variable(rand(rng, (36, 6), dtype))
        acts = [gn.relu(dense), gn.leaky_relu(dense), gn.elu(dense), gn.sigmoid(dense), gn.tanh(dense),
                gn.softmax(dense), gn.log_softmax(dense), gn.maxout(dense, 2), gn.dropout(dense, 0.5)]
        reds = [gn.sum(dense), gn.mean(dense, axis=0), gn.max(dense, axis=1)]
        losses = [gn.softmax_cross_entropy(dense, labels), gn.mse(dense, dense * 0.5),
                  gn.binary_cross_entropy_with_logits(dense, gn.sigmoid(dense))]
        moved = [gn.concat([dense, dense], axis=1), dense[:, 1:3], gn.transpose(dense), gn.reshape(dense, (-1,))]
        grads = gn.gradients(losses[0], [w])
        fetches = pooled + [flat, dense] + acts + reds + losses + moved + grads
    outs = run(fetches, {x: rand(rng, (3, 2, 6, 6), dtype), labels: np.array([0, 5, 2])})
    for tensor, out in zip(fetches, outs):
        assert tensor.dtype == np.dtype(dtype), tensor
        assert out.dtype == np.dtype(dtype), tensor
        assert np.all(np.isfinite(out)), tensor
