"""Shape inference at the graph level: the static `.shape` of every op follows the rule, computed here without
graphnet, and the compiled program's output has that shape too; impossible configurations raise `ShapeError`
while the graph is built, naming the op, this file's line and the user's numbers.

Oracles: window counts for conv/pool (start positions counted with `range`, not the closed formula), and NumPy
itself (matmul, reshape, concatenate, indexing, reductions, broadcasting) run on arrays of zeros.
"""
import os

import numpy as np
import pytest
from hypothesis import assume, event, given, settings
from hypothesis import strategies as st

import graphnet as gn

# at least these many examples; more under the conftest's 'thorough' profile
SETTINGS = settings(deadline=None, max_examples=max(40, settings.default.max_examples))
FAST = settings(deadline=None, max_examples=max(25, settings.default.max_examples))
THIS_FILE = os.path.basename(__file__)


def windows(size, kernel, pad_lo, pad_hi, stride, dilation=1):
    """How many placements of a dilated window fit in the padded input, counted one start position at a time."""
    span = dilation * (kernel - 1) + 1
    return len(range(0, size + pad_lo + pad_hi - span + 1, stride))


def pair(v):
    return tuple(v) if isinstance(v, (tuple, list)) else (v, v)


def run_shape(tensor, feeds):
    """The shape of `tensor`'s value when a program fetching it runs on the reference backend."""
    return np.shape(gn.compile(tensor, device="reference").run(feeds))


def random_array(rng, shape, dtype="float32"):
    return rng.standard_normal(shape).astype(dtype)


def numpy_shape(fn):
    """fn()'s shape, or None when NumPy refuses it (the configuration must then be refused by graphnet too)."""
    try:
        return np.shape(fn())
    except (ValueError, IndexError, TypeError):
        return None


# ----------------------------------------------------------------------------------------------------------------
# conv2d


@st.composite
def conv_configs(draw):
    groups = draw(st.integers(1, 3))
    config = {
        "n": draw(st.integers(1, 3)),
        "groups": groups,
        "c": groups * draw(st.integers(1, 2)),
        "k": groups * draw(st.integers(1, 2)),
        "h": draw(st.integers(1, 11)),
        "w": draw(st.integers(1, 11)),
        "r": draw(st.integers(1, 5)),
        "s": draw(st.integers(1, 5)),
        "dtype": draw(st.sampled_from(["float32", "float64"])),
        "bias": draw(st.booleans()),
    }
    ints = st.integers(1, 3)
    config["dilation"] = draw(st.one_of(st.integers(1, 2), st.tuples(st.integers(1, 2), st.integers(1, 2))))
    padding = draw(st.one_of(st.integers(0, 3), st.tuples(st.integers(0, 3), st.integers(0, 3)),
                             st.just("same"), st.just("valid")))
    config["padding"] = padding
    config["stride"] = 1 if padding == "same" else draw(st.one_of(ints, st.tuples(ints, ints)))
    return config


def expected_conv_hw(cfg):
    """(OH, OW) as PyTorch defines them; None on an axis where no window fits."""
    (sh, sw), (dh, dw) = pair(cfg["stride"]), pair(cfg["dilation"])
    if cfg["padding"] == "same":
        return cfg["h"], cfg["w"]                  # the definition of "same" at stride 1
    ph, pw = (0, 0) if cfg["padding"] == "valid" else pair(cfg["padding"])
    oh = windows(cfg["h"], cfg["r"], ph, ph, sh, dh)
    ow = windows(cfg["w"], cfg["s"], pw, pw, sw, dw)
    return oh or None, ow or None


@SETTINGS
@given(conv_configs(), st.integers(0, 2 ** 16))
def test_conv2d_static_and_run_time_shapes_follow_the_formula(cfg, seed):
    rng = np.random.default_rng(seed)
    weight = random_array(rng, (cfg["k"], cfg["c"] // cfg["groups"], cfg["r"], cfg["s"]), cfg["dtype"])
    bias = random_array(rng, (cfg["k"],), cfg["dtype"]) if cfg["bias"] else None
    oh, ow = expected_conv_hw(cfg)
    with gn.Graph():
        x = gn.placeholder((None, cfg["c"], cfg["h"], cfg["w"]), dtype=cfg["dtype"], name="x")
        w = gn.variable(weight, name="w")
        b = None if bias is None else gn.variable(bias, name="b")
        kwargs = dict(stride=cfg["stride"], padding=cfg["padding"], dilation=cfg["dilation"],
                      groups=cfg["groups"], name="myconv")
        event("refused" if oh is None or ow is None else "accepted")
        if oh is None or ow is None:
            with pytest.raises(gn.ShapeError) as caught:
                gn.conv2d(x, w, b, **kwargs)
            check_empty_conv_message(str(caught.value), cfg, "height" if oh is None else "width")
            return
        y = gn.conv2d(x, w, b, **kwargs)
    assert y.shape == (None, cfg["k"], oh, ow)
    assert y.dtype == np.dtype(cfg["dtype"])
    n = cfg["n"]
    assert run_shape(y, {x: random_array(rng, (n, cfg["c"], cfg["h"], cfg["w"]), cfg["dtype"])}) == \
        (n, cfg["k"], oh, ow)


def check_empty_conv_message(message, cfg, axis):
    index = 0 if axis == "height" else 1
    size = cfg["h"] if axis == "height" else cfg["w"]
    kernel = cfg["r"] if axis == "height" else cfg["s"]
    stride, dilation = pair(cfg["stride"])[index], pair(cfg["dilation"])[index]
    pad = 0 if cfg["padding"] == "valid" else pair(cfg["padding"])[index]
    assert message.startswith("conv2d 'myconv' (")
    assert f"{THIS_FILE}:" in message
    assert f"output {axis}" in message
    if dilation == 1:
        assert f"floor(({size} - {kernel} + 2*{pad})/{stride}) + 1" in message
    else:
        assert f"floor(({size} + {pad} + {pad} - {dilation}*({kernel}-1) - 1)/{stride}) + 1" in message
    assert "empty" in message


@st.composite
def bad_conv_configs(draw):
    kind = draw(st.sampled_from(["channels", "groups_k", "groups_c", "same_stride", "stride", "dilation"]))
    groups = draw(st.integers(1, 3))
    cfg = {"kind": kind, "groups": groups, "c_per_group": draw(st.integers(1, 3)),
           "k": groups * draw(st.integers(1, 3)), "hw": draw(st.integers(5, 9)), "kernel": draw(st.integers(1, 3)),
           "stride": 1, "padding": 0, "dilation": 1}
    cfg["c"] = groups * cfg["c_per_group"]
    if kind == "channels":                         # the input's channels disagree with the weight
        cfg["c"] = draw(st.integers(1, 9).filter(lambda c: c != groups * cfg["c_per_group"] and c % groups == 0))
    elif kind == "groups_k":                       # groups does not divide the output channels
        cfg["groups"] = draw(st.integers(2, 4))
        cfg["k"] = draw(st.integers(1, 9).filter(lambda k: k % cfg["groups"]))
        cfg["c"] = cfg["groups"] * cfg["c_per_group"]
    elif kind == "groups_c":                       # groups divides K but not C
        cfg["groups"] = draw(st.integers(2, 4))
        cfg["k"] = cfg["groups"] * draw(st.integers(1, 2))
        cfg["c"] = draw(st.integers(1, 9).filter(lambda c: c % cfg["groups"]))
    elif kind == "same_stride":
        cfg["padding"] = "same"
        cfg["stride"] = draw(st.one_of(st.integers(2, 4), st.tuples(st.integers(1, 3), st.integers(2, 3))))
    elif kind == "stride":
        cfg["stride"] = draw(st.integers(-3, 0))
    else:
        cfg["dilation"] = draw(st.integers(-2, 0))
    return cfg


@SETTINGS
@given(bad_conv_configs())
def test_impossible_conv2d_configurations_raise_shape_error_at_build_time(cfg):
    weight = np.zeros((cfg["k"], cfg["c_per_group"], cfg["kernel"], cfg["kernel"]), "float32")
    with gn.Graph():
        x = gn.placeholder((None, cfg["c"], cfg["hw"], cfg["hw"]), name="x")
        w = gn.variable(weight, name="w")
        with pytest.raises(gn.ShapeError) as caught:
            gn.conv2d(x, w, stride=cfg["stride"], padding=cfg["padding"], dilation=cfg["dilation"],
                      groups=cfg["groups"], name="badconv")
    message = str(caught.value)
    assert message.startswith("conv2d")
    assert f"({THIS_FILE}:" in message
    kind = cfg["kind"]
    if kind == "channels":
        assert f"C={cfg['c']}" in message
        assert str(cfg["c_per_group"] * cfg["groups"]) in message
        assert "channels" in message
    elif kind == "groups_k":
        assert f"groups={cfg['groups']}" in message and f"{cfg['k']} output channels" in message
    elif kind == "groups_c":
        assert f"groups={cfg['groups']}" in message and f"{cfg['c']} input channels" in message
    elif kind == "same_stride":
        assert "'same'" in message and "stride" in message and str(pair(cfg["stride"])) in message
    elif kind == "stride":
        assert "stride" in message and f"got {cfg['stride']}" in message
    else:
        assert "dilation" in message and f"got {cfg['dilation']}" in message


def test_conv2d_input_that_looks_nhwc_gets_a_hint():
    with gn.Graph():
        x = gn.placeholder((None, 28, 28, 1), name="x")
        w = gn.variable(np.zeros((6, 1, 5, 5), "float32"), name="w")
        with pytest.raises(gn.ShapeError, match=r"input looks NHWC: graphnet expects NCHW"):
            gn.conv2d(x, w, padding=2)


# ----------------------------------------------------------------------------------------------------------------
# pooling


@st.composite
def pool_configs(draw):
    kernel = draw(st.one_of(st.integers(1, 4), st.tuples(st.integers(1, 4), st.integers(1, 4))))
    kh, kw = pair(kernel)
    stride = draw(st.one_of(st.none(), st.integers(1, 3), st.tuples(st.integers(1, 3), st.integers(1, 3))))
    padding = draw(st.one_of(st.integers(0, min(kh, kw) // 2),
                             st.tuples(st.integers(0, kh // 2), st.integers(0, kw // 2))))
    return {"kernel": kernel, "stride": stride, "padding": padding, "n": draw(st.integers(1, 2)),
            "c": draw(st.integers(1, 3)), "h": draw(st.integers(1, 9)), "w": draw(st.integers(1, 9)),
            "op": draw(st.sampled_from(["max_pool2d", "avg_pool2d"])),
            "dtype": draw(st.sampled_from(["float32", "float64"]))}


@SETTINGS
@given(pool_configs(), st.integers(0, 2 ** 16))
def test_pooling_static_and_run_time_shapes_follow_the_formula(cfg, seed):
    rng = np.random.default_rng(seed)
    (kh, kw), (ph, pw) = pair(cfg["kernel"]), pair(cfg["padding"])
    sh, sw = (kh, kw) if cfg["stride"] is None else pair(cfg["stride"])    # stride defaults to the window
    oh, ow = windows(cfg["h"], kh, ph, ph, sh), windows(cfg["w"], kw, pw, pw, sw)
    pool = getattr(gn, cfg["op"])
    with gn.Graph():
        x = gn.placeholder((None, cfg["c"], cfg["h"], cfg["w"]), dtype=cfg["dtype"], name="x")
        event("refused" if oh == 0 or ow == 0 else "accepted")
        if oh == 0 or ow == 0:
            with pytest.raises(gn.ShapeError) as caught:
                pool(x, cfg["kernel"], stride=cfg["stride"], padding=cfg["padding"], name="mypool")
            message = str(caught.value)
            axis, size, k, p, s = ("height", cfg["h"], kh, ph, sh) if oh == 0 else ("width", cfg["w"], kw, pw, sw)
            assert message.startswith(f"{cfg['op']} 'mypool' ({THIS_FILE}:")
            assert f"output {axis}" in message and f"floor(({size} - {k} + 2*{p})/{s}) + 1" in message
            return
        y = pool(x, cfg["kernel"], stride=cfg["stride"], padding=cfg["padding"], name="mypool")
    assert y.shape == (None, cfg["c"], oh, ow)
    assert y.dtype == np.dtype(cfg["dtype"])
    feeds = {x: random_array(rng, (cfg["n"], cfg["c"], cfg["h"], cfg["w"]), cfg["dtype"])}
    assert run_shape(y, feeds) == (cfg["n"], cfg["c"], oh, ow)


@FAST
@given(st.integers(1, 5), st.integers(0, 2), st.sampled_from(["max_pool2d", "avg_pool2d"]),
       st.sampled_from(["height", "width"]))
def test_pooling_padding_beyond_half_the_window_is_refused(kernel, excess, op, axis):
    pad = kernel // 2 + 1 + excess
    padding = (pad, 0) if axis == "height" else (0, pad)
    with gn.Graph():
        x = gn.placeholder((None, 2, 16, 16), name="x")
        with pytest.raises(gn.ShapeError) as caught:
            getattr(gn, op)(x, kernel, padding=padding)
    message = str(caught.value)
    assert message.startswith(f"{op} ") and f"({THIS_FILE}:" in message
    assert f"padding before the {axis} is {pad}" in message
    assert f"at most {kernel // 2}" in message


@FAST
@given(st.integers(-2, 0), st.sampled_from(["max_pool2d", "avg_pool2d"]), st.sampled_from(["stride", "kernel"]))
def test_pooling_non_positive_stride_or_window_is_refused(value, op, what):
    with gn.Graph():
        x = gn.placeholder((None, 2, 8, 8), name="x")
        with pytest.raises(gn.ShapeError) as caught:
            if what == "stride":
                getattr(gn, op)(x, 2, stride=value)
            else:
                getattr(gn, op)(x, value)
    message = str(caught.value)
    assert f"({THIS_FILE}:" in message and f"got {value}" in message


def ceil_windows(size, kernel, pad_lo, pad_hi, stride):
    """ceil_mode: the windows that fit, then the next one if it overhangs the padded input by less than a stride
    and starts inside the input or its top/left padding."""
    padded, count = size + pad_lo + pad_hi, windows(size, kernel, pad_lo, pad_hi, stride)
    if count * stride + kernel - padded < stride and count * stride < size + pad_lo:
        count += 1
    return count


@st.composite
def ceil_pool_configs(draw):
    """Pooling with ceil_mode drawn and the padding given as ((top, bottom), (left, right)) or (ph, pw)."""
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    padding = tuple((draw(st.integers(0, k // 2)), draw(st.integers(0, k // 2))) for k in (kh, kw))
    if draw(st.booleans()) and all(lo == hi for lo, hi in padding):
        padding = (padding[0][0], padding[1][0])
    return {"kernel": (kh, kw), "stride": draw(st.one_of(st.none(), st.tuples(st.integers(1, 4), st.integers(1, 4)))),
            "padding": padding, "ceil_mode": draw(st.booleans()), "h": draw(st.integers(1, 9)),
            "w": draw(st.integers(1, 9)), "op": draw(st.sampled_from(["max_pool2d", "avg_pool2d"]))}


@SETTINGS
@given(ceil_pool_configs(), st.integers(0, 2 ** 16))
def test_pooling_with_ceil_mode_and_asymmetric_padding_follows_the_formula(cfg, seed):
    (kh, kw), stride = cfg["kernel"], cfg["stride"] or cfg["kernel"]
    padding = cfg["padding"] if isinstance(cfg["padding"][0], tuple) else tuple((p, p) for p in cfg["padding"])
    count = ceil_windows if cfg["ceil_mode"] else windows
    oh = count(cfg["h"], kh, *padding[0], stride[0])
    ow = count(cfg["w"], kw, *padding[1], stride[1])
    pool = getattr(gn, cfg["op"])
    with gn.Graph():
        x = gn.placeholder((None, 2, cfg["h"], cfg["w"]), name="x")
        event("refused" if oh == 0 or ow == 0 else "accepted")
        if oh == 0 or ow == 0:
            with pytest.raises(gn.ShapeError) as caught:
                pool(x, cfg["kernel"], stride=cfg["stride"], padding=cfg["padding"], ceil_mode=cfg["ceil_mode"],
                     name="mypool")
            message = str(caught.value)
            assert message.startswith(f"{cfg['op']} 'mypool' ({THIS_FILE}:")
            axis = "height" if oh == 0 else "width"
            assert f"output {axis} {'ceil' if cfg['ceil_mode'] else 'floor'}((" in message and "empty" in message
            return
        y = pool(x, cfg["kernel"], stride=cfg["stride"], padding=cfg["padding"], ceil_mode=cfg["ceil_mode"],
                 name="mypool")
    assert y.shape == (None, 2, oh, ow)
    feeds = {x: random_array(np.random.default_rng(seed), (2, 2, cfg["h"], cfg["w"]))}
    assert run_shape(y, feeds) == (2, 2, oh, ow)


@pytest.mark.parametrize("op, kwargs, message", [
    ("max_pool2d", dict(padding=(1, 2, 1, 2)), r"padding \(1, 2, 1, 2\) has 4 entries.*\(\(1, 1\), \(2, 2\)\)"),
    ("avg_pool2d", dict(padding=((1, 0), (2, 0))), r"padding before the width is 2, more than half the 3-wide"),
    ("max_pool2d", dict(ceil_mode=1), r"ceil_mode must be True or False, got 1"),
    ("avg_pool2d", dict(count_include_pad="no"), r"count_include_pad must be True or False, got 'no'"),
    ("avg_pool2d", dict(padding="same"), r"pooling takes an int, a pair \(ph, pw\) or \(\(top, bottom\), "),
])
def test_pooling_arguments_that_cannot_be_meant_are_refused_naming_them(op, kwargs, message):
    with gn.Graph():
        x = gn.placeholder((None, 2, 8, 8), name="x")
        with pytest.raises(gn.ShapeError, match=message) as caught:
            getattr(gn, op)(x, 3, **kwargs)
    assert str(caught.value).startswith(f"{op} ") and f"({THIS_FILE}:" in str(caught.value)


def test_ceil_mode_keeps_googlenets_partial_windows():
    """GoogLeNet's max pools (3×3/2, ceil_mode) at 224: 112 → 56 → 28 → 14 → 7, where floor mode gives 55 and 27."""
    with gn.Graph():
        x = gn.placeholder((None, 64, 112, 112), name="x")
        assert gn.max_pool2d(x, 3, stride=2, ceil_mode=True).shape == (None, 64, 56, 56)
        assert gn.max_pool2d(x, 3, stride=2).shape == (None, 64, 55, 55)
        y = gn.placeholder((None, 480, 28, 28), name="y")
        assert gn.max_pool2d(y, 3, stride=2, ceil_mode=True).shape == (None, 480, 14, 14)
        assert gn.max_pool2d(y, 3, stride=2).shape == (None, 480, 13, 13)


# ----------------------------------------------------------------------------------------------------------------
# local response norm


@FAST
@given(st.lists(st.integers(1, 4), min_size=3, max_size=5).map(tuple), st.integers(1, 7))
def test_local_response_norm_keeps_the_shape(shape, size):
    with gn.Graph():
        x = gn.placeholder((None,) + shape[1:], name="x")
        y = gn.local_response_norm(x, size)
    assert y.shape == (None,) + shape[1:]
    assert run_shape(y, {x: np.ones(shape, "float32")}) == shape


@pytest.mark.parametrize("shape, kwargs, message", [
    ((None, 6), dict(size=3), r"input must be \(N, C, ...\) with at least one axis after the channels.*got "
                              r"\(None, 6\); for \(N, C\) features reshape to \(N, C, 1\)"),
    ((None, 6, 2, 2), dict(size=0), r"size must be a positive integer .*got 0"),
    ((None, 6, 2, 2), dict(size=2.0), r"size must be a positive integer .*got 2.0"),
    ((None, 6, 2, 2), dict(size=3, k=0), r"alpha >= 0 and k > 0 are needed, got alpha=0.0001, k=0"),
    ((None, 6, 2, 2), dict(size=3, alpha=-1.0), r"alpha >= 0 and k > 0 are needed, got alpha=-1.0"),
    ((None, 6, 2, 2), dict(size=3, beta=float("nan")), r"beta must be a finite number, got nan"),
    ((None, 6, 2, 2), dict(size=4, channels_before=4), r"channels_before must be an integer in 0 … size − 1 = 3"),
])
def test_local_response_norm_refuses_what_cannot_be_meant(shape, kwargs, message):
    with gn.Graph():
        x = gn.placeholder(shape, name="x")
        with pytest.raises(gn.ShapeError, match=message) as caught:
            gn.local_response_norm(x, **kwargs)
    assert str(caught.value).startswith(f"local_response_norm ") and f"({THIS_FILE}:" in str(caught.value)


def test_global_avg_pool_shape():
    with gn.Graph():
        x = gn.placeholder((None, 5, 3, 4), name="x")
        y = gn.global_avg_pool2d(x)
        with pytest.raises(gn.ShapeError, match=r"4-D"):
            gn.global_avg_pool2d(gn.placeholder((None, 5), name="flat"))
    assert y.shape == (None, 5)
    assert run_shape(y, {x: np.ones((2, 5, 3, 4), "float32")}) == (2, 5)


# ----------------------------------------------------------------------------------------------------------------
# matmul


@st.composite
def matmul_configs(draw):
    batch = draw(st.lists(st.integers(1, 3), max_size=3))
    m, k, n = draw(st.integers(1, 4)), draw(st.integers(1, 4)), draw(st.integers(1, 4))

    def batch_of():
        # drop some leading axes and set some sizes to 1: a shape that broadcasts against `batch`
        dropped = draw(st.integers(0, len(batch)))
        return [1 if draw(st.booleans()) else d for d in batch[dropped:]]

    ta, tb = draw(st.booleans()), draw(st.booleans())
    a = tuple(batch_of()) + ((k, m) if ta else (m, k))
    b = tuple(batch_of()) + ((n, k) if tb else (k, n))
    return a, b, ta, tb


@SETTINGS
@given(matmul_configs(), st.integers(0, 2 ** 16))
def test_matmul_shapes_broadcast_batches_like_numpy(config, seed):
    a_shape, b_shape, ta, tb = config
    rng = np.random.default_rng(seed)
    a_val, b_val = random_array(rng, a_shape), random_array(rng, b_shape)
    expected = np.matmul(np.swapaxes(a_val, -1, -2) if ta else a_val,
                         np.swapaxes(b_val, -1, -2) if tb else b_val).shape
    with gn.Graph():
        a = gn.placeholder(a_shape, name="a")
        b = gn.placeholder(b_shape, name="b")
        c = gn.matmul(a, b, transpose_a=ta, transpose_b=tb)
    assert c.shape == expected
    assert run_shape(c, {a: a_val, b: b_val}) == expected


@SETTINGS
@given(st.integers(1, 5), st.integers(1, 6), st.integers(1, 6), st.integers(1, 5), st.booleans(), st.booleans())
def test_matmul_inner_size_mismatch_names_both_sizes(m, k, k2, n, ta, tb):
    assume(k != k2)
    with gn.Graph():
        a = gn.placeholder((None, k, m) if ta else (None, m, k), name="a")
        b = gn.placeholder((n, k2) if tb else (k2, n), name="b")
        with pytest.raises(gn.ShapeError) as caught:
            gn.matmul(a, b, transpose_a=ta, transpose_b=tb, name="mm")
    message = str(caught.value)
    assert message.startswith(f"matmul 'mm' ({THIS_FILE}:")
    assert f"columns ({k})" in message and f"rows ({k2})" in message


@FAST
@given(st.integers(2, 4), st.integers(2, 4))
def test_matmul_batch_axes_that_do_not_broadcast_are_refused(b1, b2):
    assume(b1 != b2)
    with gn.Graph():
        a = gn.placeholder((b1, 2, 3), name="a")
        b = gn.placeholder((b2, 3, 4), name="b")
        with pytest.raises(gn.ShapeError) as caught:
            a @ b
    message = str(caught.value)
    assert f"({THIS_FILE}:" in message and "batch" in message and str(b1) in message and str(b2) in message


@pytest.mark.parametrize("a_shape, b_shape", [((3,), (3, 2)), ((2, 3), (3,)), ((3,), (3,)), ((3,), (4, 3, 2)),
                                              ((4, 2, 3), (3,)), ((None, 3), (3,)), ((3,), (None, 3, 5))])
def test_matmul_of_vectors_follows_numpy(a_shape, b_shape):
    """A 1-D operand is a row (left) or a column (right) whose axis leaves the result, as NumPy's @ does."""
    rng = np.random.default_rng(0)
    fed = [tuple(2 if d is None else d for d in s) for s in (a_shape, b_shape)]
    av, bv = (rng.standard_normal(s) for s in fed)
    with gn.Graph():
        a = gn.placeholder(a_shape, dtype="float64", name="a")
        b = gn.placeholder(b_shape, dtype="float64", name="b")
        y = a @ b
        expected = np.zeros(a_shape and tuple(1 if d is None else d for d in a_shape)) @ \
            np.zeros(tuple(1 if d is None else d for d in b_shape))
        assert len(y.shape) == expected.ndim
        got = gn.compile(y, device="cpu").run({a: av, b: bv})
    assert got.shape == (av @ bv).shape
    np.testing.assert_allclose(got, av @ bv, rtol=1e-12)


def test_matmul_of_a_scalar_is_refused():
    with gn.Graph():
        a = gn.placeholder((), name="a")
        b = gn.placeholder((3, 2), name="b")
        with pytest.raises(gn.ShapeError, match=r"at least 2 axes"):
            a @ b


# ----------------------------------------------------------------------------------------------------------------
# reshape, concat, getitem


@st.composite
def reshapes(draw):
    shape = tuple(draw(st.lists(st.integers(1, 4), min_size=1, max_size=4)))
    total = int(np.prod(shape))
    possible = draw(st.booleans())
    if possible:
        factors = []
        rest = total
        for _ in range(draw(st.integers(0, 3))):
            f = draw(st.sampled_from([d for d in range(1, rest + 1) if rest % d == 0]))
            factors.append(f)
            rest //= f
        target = factors + [rest]
        target = draw(st.permutations(target))
    else:
        target = draw(st.lists(st.integers(1, 6), min_size=1, max_size=3))
    target = list(target)
    if draw(st.booleans()):
        target[draw(st.integers(0, len(target) - 1))] = -1
    return shape, tuple(target)


@SETTINGS
@given(reshapes())
def test_reshape_infers_minus_one_and_refuses_impossible_shapes(config):
    shape, target = config
    value = np.arange(np.prod(shape), dtype="float32").reshape(shape)
    expected = numpy_shape(lambda: value.reshape(target))
    with gn.Graph():
        x = gn.placeholder(shape, name="x")
        event("refused" if expected is None else "accepted")
        if expected is None:
            with pytest.raises(gn.ShapeError) as caught:
                gn.reshape(x, target, name="rs")
            message = str(caught.value)
            assert message.startswith(f"reshape 'rs' ({THIS_FILE}:")
            assert f"({value.size} elements)" in message
            return
        y = gn.reshape(x, target)
    assert y.shape == expected
    out = gn.compile(y).run({x: value})
    np.testing.assert_array_equal(out, value.reshape(target))


def test_reshape_with_an_unknown_batch_infers_the_rest():
    with gn.Graph():
        x = gn.placeholder((None, 4, 3), name="x")
        y = gn.reshape(x, (-1, 12))
        z = gn.flatten(x)
        with pytest.raises(gn.ShapeError, match=rf"reshape .*{THIS_FILE}:.*\(None, 4, 3\).*\(5, 7\)"):
            gn.reshape(x, (5, 7))        # 35 is not a multiple of 12: impossible whatever the batch
    assert y.shape == (None, 12) and z.shape == (None, 12)
    assert run_shape(y, {x: np.ones((5, 4, 3), "float32")}) == (5, 12)


@st.composite
def concat_configs(draw):
    rank = draw(st.integers(1, 4))
    base = draw(st.lists(st.integers(1, 3), min_size=rank, max_size=rank))
    axis = draw(st.integers(-rank, rank - 1))
    count = draw(st.integers(1, 3))
    shapes = []
    for _ in range(count):
        s = list(base)
        s[axis] = draw(st.integers(1, 3))
        shapes.append(s)
    if draw(st.booleans()) and rank > 1 and count > 1:      # break agreement on another axis
        other = draw(st.sampled_from([a for a in range(rank) if a != axis % rank]))
        shapes[-1][other] += draw(st.integers(1, 2))
    return [tuple(s) for s in shapes], axis


@SETTINGS
@given(concat_configs(), st.integers(0, 2 ** 16))
def test_concat_shapes_like_numpy(config, seed):
    shapes, axis = config
    rng = np.random.default_rng(seed)
    values = [random_array(rng, s) for s in shapes]
    expected = numpy_shape(lambda: np.concatenate(values, axis=axis))
    with gn.Graph():
        xs = [gn.placeholder(s, name=f"x{i}") for i, s in enumerate(shapes)]
        event("refused" if expected is None else "accepted")
        if expected is None:
            with pytest.raises(gn.ShapeError) as caught:
                gn.concat(xs, axis=axis, name="cat")
            message = str(caught.value)
            assert message.startswith(f"concat 'cat' ({THIS_FILE}:")
            ax = axis % len(shapes[0])
            i, a = next((i, a) for i, s in enumerate(shapes[1:], start=2) for a in range(len(s))
                        if a != ax and s[a] != shapes[0][a])
            assert f"input 1 {shapes[0]} and input {i} {shapes[i - 1]} differ on axis {a}" in message
            return
        y = gn.concat(xs, axis=axis)
    assert y.shape == expected
    out = gn.compile(y).run(dict(zip(xs, values)))
    np.testing.assert_array_equal(out, np.concatenate(values, axis=axis))


@FAST
@given(st.integers(1, 3), st.integers(0, 3))
def test_concat_axis_out_of_range(rank, excess):
    with gn.Graph():
        x = gn.placeholder((2,) * rank, name="x")
        with pytest.raises(gn.ShapeError) as caught:
            gn.concat([x, x], axis=rank + excess)
    assert f"({THIS_FILE}:" in str(caught.value) and f"axis {rank + excess}" in str(caught.value)


@st.composite
def indexings(draw):
    shape = tuple(draw(st.lists(st.integers(1, 4), min_size=1, max_size=4)))
    count = draw(st.integers(1, len(shape)))
    items = []
    for axis in range(count):
        size = shape[axis]
        if draw(st.booleans()):
            items.append(draw(st.integers(-size - 2, size + 1)))   # sometimes out of range
        else:
            start = draw(st.one_of(st.none(), st.integers(-size - 1, size + 1)))
            stop = draw(st.one_of(st.none(), st.integers(-size - 1, size + 1)))
            step = draw(st.one_of(st.none(), st.integers(1, 3), st.integers(-3, -1)))
            items.append(slice(start, stop, step))
    if draw(st.booleans()):
        items.insert(draw(st.integers(0, len(items))), None)
    if draw(st.booleans()):
        items.insert(draw(st.integers(0, len(items))), Ellipsis)
    return shape, tuple(items)


@SETTINGS
@given(indexings(), st.integers(0, 2 ** 16))
def test_getitem_shapes_like_numpy_and_out_of_range_is_refused(config, seed):
    shape, index = config
    value = random_array(np.random.default_rng(seed), shape)
    expected = numpy_shape(lambda: value[index])
    with gn.Graph():
        x = gn.placeholder(shape, name="x")
        event("refused" if expected is None else "accepted")
        if expected is None:
            with pytest.raises(gn.ShapeError) as caught:
                x[index]
            message = str(caught.value)
            assert message.startswith(f"getitem 'getitem' ({THIS_FILE}:")
            consuming = [i for i in index if i is not None]        # the items that take up an axis
            if Ellipsis in consuming:
                at = consuming.index(Ellipsis)
                consuming[at:at + 1] = [slice(None)] * (len(shape) - len(consuming) + 1)
            bad = next(i for a, i in enumerate(consuming) if isinstance(i, int) and not -shape[a] <= i < shape[a])
            assert f"index {bad} is out of bounds" in message
            return
        y = x[index]
    assert y.shape == expected
    np.testing.assert_array_equal(gn.compile(y).run({x: value}), value[index])


def test_getitem_with_too_many_indices_is_refused():
    with gn.Graph():
        x = gn.placeholder((None, 3), name="x")
        with pytest.raises(gn.GraphError, match=r"3 indices for 2 axes"):
            x[0, 1, 2]


# ----------------------------------------------------------------------------------------------------------------
# reductions and broadcasting


@st.composite
def reductions(draw):
    shape = tuple(draw(st.lists(st.integers(1, 4), min_size=1, max_size=4)))
    rank = len(shape)
    axis = draw(st.one_of(st.none(), st.integers(-rank - 2, rank + 1),
                          st.lists(st.integers(-rank - 1, rank), min_size=1, max_size=3).map(tuple)))
    return shape, axis, draw(st.booleans()), draw(st.sampled_from(["sum", "mean", "max"]))


@SETTINGS
@given(reductions(), st.integers(0, 2 ** 16))
def test_reductions_shapes_like_numpy_and_bad_axes_are_refused(config, seed):
    shape, axis, keepdims, op = config
    value = random_array(np.random.default_rng(seed), shape)
    numpy_op = {"sum": np.sum, "mean": np.mean, "max": np.max}[op]
    try:
        expected = numpy_op(value, axis=axis, keepdims=keepdims)
    except (ValueError, IndexError):            # AxisError is both
        expected = None
    with gn.Graph():
        x = gn.placeholder(shape, name="x")
        event("refused" if expected is None else "accepted")
        if expected is None:
            with pytest.raises(gn.ShapeError) as caught:
                getattr(gn, op)(x, axis=axis, keepdims=keepdims)
            message = str(caught.value)
            assert message.startswith(f"{op} ({THIS_FILE}:")
            assert "out of range" in message or "repeats" in message
            assert f"rank {len(shape)}" in message or "repeats" in message
            return
        y = getattr(gn, op)(x, axis=axis, keepdims=keepdims)
    assert y.shape == np.shape(expected)
    np.testing.assert_allclose(gn.compile(y).run({x: value}), expected, rtol=1e-5, atol=1e-5)


@st.composite
def shape_pairs(draw, conflict=False):
    """Two shapes that broadcast (leading axes dropped, sizes set to 1), or with `conflict` two that do not."""
    out = draw(st.lists(st.integers(1, 4), min_size=int(conflict), max_size=4))

    def operand():
        dropped = draw(st.integers(0, len(out)))
        return tuple(1 if draw(st.booleans()) else d for d in out[dropped:])

    a, b = operand(), operand()
    if conflict:                                 # one axis where the sizes differ and neither is 1
        a = a if a else tuple(out)
        i = draw(st.integers(0, len(a) - 1))
        size = draw(st.integers(2, 4))
        a = a[:i] + (size,) + a[i + 1:]
        b = a[:i] + (draw(st.integers(2, 5).filter(lambda d: d != size)),) + a[i + 1:]
        b = b[draw(st.integers(0, i)):]          # b may lack leading axes
        if draw(st.booleans()):
            a, b = b, a
    return a, b


ELEMENTWISE = st.sampled_from(["add", "sub", "mul", "div", "maximum", "minimum"])


@SETTINGS
@given(shape_pairs(), ELEMENTWISE, st.integers(0, 2 ** 16))
def test_elementwise_broadcasting_like_numpy(shapes, op, seed):
    a_shape, b_shape = shapes
    rng = np.random.default_rng(seed)
    a_val, b_val = random_array(rng, a_shape), random_array(rng, b_shape) + 3
    expected = np.broadcast_shapes(a_shape, b_shape)
    with gn.Graph():
        a = gn.placeholder(a_shape, name="a")
        b = gn.placeholder(b_shape, name="b")
        c = getattr(gn, op)(a, b)
    assert c.shape == expected
    assert run_shape(c, {a: a_val, b: b_val}) == expected


@FAST
@given(shape_pairs(conflict=True), ELEMENTWISE)
def test_elementwise_shapes_that_do_not_broadcast_are_refused(shapes, op):
    a_shape, b_shape = shapes
    with pytest.raises(ValueError):
        np.broadcast_shapes(a_shape, b_shape)    # the strategy really made a conflict
    with gn.Graph():
        a = gn.placeholder(a_shape, name="a")
        b = gn.placeholder(b_shape, name="b")
        with pytest.raises(gn.ShapeError) as caught:
            getattr(gn, op)(a, b, name="bc")
    message = str(caught.value)
    assert message.startswith(f"{op} 'bc' ({THIS_FILE}:")
    assert "do not broadcast" in message
    assert str(a_shape) in message and str(b_shape) in message


def test_broadcasting_with_unknown_sizes():
    with gn.Graph():
        x = gn.placeholder((None, 3), name="x")
        bias = gn.placeholder((3,), name="bias")
        column = gn.placeholder((None, 1), name="column")
        y = x + bias
        z = x * column
        with pytest.raises(gn.ShapeError, match=r"\(None, 3\) and \(None, 4\) do not broadcast"):
            x + gn.placeholder((None, 4), name="other")
    assert y.shape == (None, 3) and z.shape == (None, 3)
    assert gn.compile([y, z]).run({x: np.ones((5, 3)), bias: np.ones(3), column: np.ones((5, 1))})[1].shape == (5, 3)


# ----------------------------------------------------------------------------------------------------------------
# losses


@FAST
@given(st.one_of(st.none(), st.integers(1, 8)))
def test_mse_of_a_column_against_a_vector_fails_with_a_hint(n):
    with gn.Graph():
        pred = gn.placeholder((n, 1), name="pred")
        target = gn.placeholder((n,), name="target")
        with pytest.raises(gn.ShapeError) as caught:
            gn.mse(pred, target)
        with pytest.raises(gn.ShapeError) as caught_reversed:
            gn.mse(target, pred)
    for error, p, t in ((caught, (n, 1), (n,)), (caught_reversed, (n,), (n, 1))):
        message = str(error.value)
        fmt = lambda s: "(" + ", ".join(str(d) for d in s) + ("," if len(s) == 1 else "") + ")"   # noqa: E731
        assert message.startswith(f"mse 'mse") and f"({THIS_FILE}:" in message
        assert f"prediction {fmt(p)} and target {fmt(t)}" in message
        # the hint says how to make them agree: reshape to a (n, 1) column or to a (n,) vector
        assert "reshape" in message and f"{fmt((n, 1))}" in message.split("reshape", 1)[1]


@FAST
@given(st.integers(1, 6), st.integers(1, 6))
def test_losses_refuse_different_shapes(n, m):
    assume(n != m)
    with gn.Graph():
        z = gn.placeholder((n, 2), name="z")
        t = gn.placeholder((m, 2), name="t")
        for loss in (gn.mse, gn.binary_cross_entropy_with_logits):
            with pytest.raises(gn.ShapeError, match=rf"\({n}, 2\) and target \({m}, 2\)"):
                loss(z, t)


@FAST
@given(st.one_of(st.none(), st.integers(1, 8)), st.integers(2, 10), st.sampled_from(["float32", "int64"]))
def test_softmax_cross_entropy_with_one_hot_labels_fails_with_a_hint(n, classes, label_dtype):
    with gn.Graph():
        logits = gn.placeholder((n, classes), name="logits")
        one_hot = gn.placeholder((n, classes), dtype=label_dtype, name="one_hot")
        with pytest.raises(gn.ShapeError) as caught:
            gn.softmax_cross_entropy(logits, one_hot)
    message = str(caught.value)
    assert f"({THIS_FILE}:" in message and "one-hot" in message and "argmax(1)" in message


@FAST
@given(st.integers(1, 6), st.integers(1, 6))
def test_softmax_cross_entropy_batch_mismatch(n, m):
    assume(n != m)
    with gn.Graph():
        logits = gn.placeholder((n, 4), name="logits")
        labels = gn.placeholder((m,), dtype="int64", name="labels")
        with pytest.raises(gn.ShapeError, match=rf"batch sizes differ: logits \({n}, 4\), labels \({m},\)"):
            gn.softmax_cross_entropy(logits, labels)
        with pytest.raises(gn.ShapeError, match=r"logits must be \(batch, classes\).*flatten"):
            gn.softmax_cross_entropy(gn.placeholder((n, 4, 2), name="l3"), labels)
