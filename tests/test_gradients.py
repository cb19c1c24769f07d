"""Every op's gradient, with respect to every input that has one, against central finite differences (float64).

Hypothesis draws small shapes and values (at most ~60 elements per input, so the finite differences stay fast);
`gradcheck.check_gradients` builds the op on placeholders, projects its output to a scalar with a fixed random
tensor and compares the analytic gradients with (L(x + ε) − L(x − ε)) / 2ε element by element.

Ops with kinks (relu, leaky_relu, elu, maximum, minimum, max, maxout, max_pool2d) get inputs built so that no
value lies near a kink: `generic` values are a shuffled grid with no two values closer than 0.05 and none closer
than 0.025 to zero, far beyond ε = 1e-6, so a perturbation never changes a sign or which element is the maximum.
"""
import functools
import math
import os

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import graphnet as gn
from gradcheck import Fixed, GradientMismatch, Variable
from gradcheck import check_gradients as check_on

# The device whose kernels are checked; another backend reuses the whole file with GRAPHNET_GRADCHECK_DEVICE=cpu.
DEVICE = os.environ.get("GRAPHNET_GRADCHECK_DEVICE", "reference")
check_gradients = functools.partial(check_on, device=DEVICE)


def examples(n):
    """n examples under the default profile (30), scaled with GRAPHNET_HYPOTHESIS_PROFILE (e.g. 'thorough')."""
    return max(1, round(n * settings.default.max_examples / 30))


def checks(n):
    return settings(deadline=None, max_examples=examples(n))


# ----------------------------------------------------------------------------------------------------------------
# strategies


def floats(low, high):
    return st.floats(low, high, allow_nan=False, allow_infinity=False, allow_subnormal=False)


def arrays(shape, low=-2.0, high=2.0):
    """Any float64 values in [low, high] (Hypothesis likes zeros and repeats: only for smooth ops)."""
    return hnp.arrays(np.float64, shape, elements=floats(low, high))


def positive(shape, low=0.2, high=3.0):
    return arrays(shape, low, high)


def away_from_zero(shape, low=0.5, high=2.0):
    """Values with |v| in [low, high], either sign: denominators, negative powers."""
    return hnp.arrays(np.float64, shape, elements=floats(low, high) | floats(-high, -low))


@st.composite
def generic(draw, shape):
    """Values with no ties and none near zero, by construction: a shuffled grid (k + ½)·spacing, k = −n/2 … n/2,
    each value moved by at most spacing/4. Two values differ by at least spacing/2 ≥ 0.05 and every value is at
    least spacing/4 ≥ 0.025 away from 0; the values stay within about ±3."""
    n = math.prod(shape)
    if n == 0:
        return np.zeros(shape)
    spacing = draw(floats(0.1, max(0.1, 6.0 / n)))
    order = np.array(draw(st.permutations(range(n))), dtype=np.float64)
    jitter = draw(arrays((n,), -spacing / 4, spacing / 4))
    return ((order - n // 2 + 0.5) * spacing + jitter).reshape(shape)


@st.composite
def shapes(draw, min_dims=0, max_dims=3, min_side=1, max_side=4, max_numel=60):
    shape = draw(hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=min_side, max_side=max_side))
    assume(math.prod(shape) <= max_numel)
    return shape


@st.composite
def broadcast_pair(draw, max_dims=3, max_side=4):
    """Two shapes that broadcast against each other: each a suffix of one result shape, with some sizes set to 1."""
    out = draw(shapes(min_dims=0, max_dims=max_dims, max_side=max_side))

    def operand():
        rank = draw(st.integers(0, len(out)))
        return tuple(1 if draw(st.booleans()) else d for d in out[len(out) - rank:])
    return operand(), operand()


def split_generic(draw, *shapes_):
    """`generic` values for several inputs at once, so that no value of one ties with a value of another."""
    sizes = [math.prod(s) for s in shapes_]
    flat = draw(generic((sum(sizes),)))
    parts, start = [], 0
    for shape, size in zip(shapes_, sizes):
        parts.append(flat[start:start + size].reshape(shape))
        start += size
    return parts


# Shapes that must always be covered, next to the random ones.
BROADCAST_CASES = [((3, 1), (4,)), ((4,), (3, 1)), ((2, 1, 3), (4, 1)), ((), (2, 3)), ((2, 3), ()), ((1,), (3,)),
                   ((2, 3), (2, 3)), ((1, 4), (3, 1))]


# ----------------------------------------------------------------------------------------------------------------
# the helper itself must be able to fail


def test_gradcheck_catches_a_wrong_gradient(monkeypatch):
    from graphnet.ops import activations
    monkeypatch.setattr(activations.Tanh, "gradient", lambda self, node, dy: [dy])   # forgets the 1 − y²
    x = np.linspace(-1.5, 1.5, 6).reshape(2, 3)
    with pytest.raises(GradientMismatch, match=r"worst at"):
        check_gradients(gn.tanh, [x])


def test_gradcheck_catches_a_wrong_variable_gradient(monkeypatch):
    from graphnet.ops import linalg
    right = linalg.MatMul.gradient
    monkeypatch.setattr(linalg.MatMul, "gradient", lambda self, node, dy: [g * 1.001 if g is not None else g
                                                                         for g in right(self, node, dy)])
    x, w = np.linspace(-1.0, 1.0, 6).reshape(3, 2), np.linspace(0.5, -0.5, 8).reshape(2, 4)
    with pytest.raises(GradientMismatch, match=r"input 1 'in1'"):
        check_gradients(lambda x_, w_: x_ @ w_, [Fixed(x), Variable(w)])


def test_matmul_of_vectors():
    rng = np.random.default_rng(3)
    v, m, batch = rng.standard_normal(3), rng.standard_normal((3, 2)), rng.standard_normal((4, 2, 3))
    check_gradients(lambda v_, m_: v_ @ m_, [v, m])
    check_gradients(lambda b_, v_: b_ @ v_, [batch, v])
    check_gradients(lambda u_, v_: u_ @ v_, [v, rng.standard_normal(3)])


def test_gradcheck_checks_variables_and_skips_fixed_inputs():
    x = np.linspace(-1.0, 1.0, 6).reshape(3, 2)
    w = np.linspace(0.5, -0.5, 8).reshape(2, 4)
    labels = np.array([0, 3, 1], dtype=np.int64)
    results = check_gradients(lambda x, w, y: gn.softmax_cross_entropy(x @ w, y), [x, Variable(w), Fixed(labels)])
    assert len(results) == 2 and results[1][0].shape == (2, 4)


# ----------------------------------------------------------------------------------------------------------------
# elementwise arithmetic

BINARY = {
    "add": gn.add, "sub": gn.sub, "mul": gn.mul, "div": gn.div,
    "+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b, "/": lambda a, b: a / b,
}


@st.composite
def binary_case(draw, op, pair=None):
    sa, sb = pair if pair is not None else draw(broadcast_pair())
    a = draw(arrays(sa))
    b = draw(away_from_zero(sb) if op in ("div", "/") else arrays(sb))
    return a, b


@pytest.mark.parametrize("op", list(BINARY))
@checks(30)
@given(data=st.data())
def test_binary_broadcasting(op, data):
    a, b = data.draw(binary_case(op))
    check_gradients(BINARY[op], [a, b])


@pytest.mark.parametrize("pair", BROADCAST_CASES, ids=str)
@pytest.mark.parametrize("op", ["add", "sub", "mul", "div"])
@checks(3)
@given(data=st.data())
def test_binary_fixed_broadcasts(op, pair, data):
    a, b = data.draw(binary_case(op, pair))
    check_gradients(BINARY[op], [a, b])


@pytest.mark.parametrize("op", ["maximum", "minimum"])
@checks(40)
@given(data=st.data())
def test_maximum_minimum(op, data):
    sa, sb = data.draw(broadcast_pair() | st.sampled_from(BROADCAST_CASES))
    a, b = split_generic(data.draw, sa, sb)            # no a_i within 0.05 of any b_j: away from the kink a = b
    check_gradients(getattr(gn, op), [a, b])


@checks(20)
@given(x=shapes().flatmap(arrays))
def test_neg(x):
    check_gradients(gn.neg, [x])


@checks(20)
@given(x=shapes().flatmap(lambda s: arrays(s, -3.0, 3.0)))
def test_exp(x):
    check_gradients(gn.exp, [x])


@pytest.mark.parametrize("op", ["log", "sqrt"])
@checks(25)
@given(x=shapes().flatmap(positive))
def test_log_sqrt(op, x):
    check_gradients(getattr(gn, op), [x])


@checks(50)
@given(x=shapes().flatmap(positive), p=floats(-2.5, 3.5).filter(lambda p: p != int(p)))
def test_pow_non_integer_exponent(x, p):
    check_gradients(lambda t: gn.pow(t, p), [x])


@checks(40)
@given(x=shapes().flatmap(away_from_zero), p=st.sampled_from([-2, -1, 0, 1, 2, 3]))
def test_pow_integer_exponent_any_sign(x, p):
    check_gradients(lambda t: t ** p, [x])


def test_scalar_input_keeps_its_shape():
    """A 0-d input: the number 2.0 in the gradient rules must not turn the gradient into shape (1,)."""
    check_gradients(lambda t: gn.sqrt(t) * 2.0 + t ** 1.5, [np.array(1.7)])


SCALAR_FORMS = {
    "x + 2": lambda x: x + 2.0, "2 + x": lambda x: 2.0 + x, "x - 1.5": lambda x: x - 1.5,
    "1.5 - x": lambda x: 1.5 - x, "x * 3": lambda x: x * 3.0, "3 * x": lambda x: 3.0 * x,
    "x / 2": lambda x: x / 2.0, "2 / x": lambda x: 2.0 / x, "-x": lambda x: -x, "x ** 2": lambda x: x ** 2,
    "x * x + x": lambda x: x * x + x,      # one input reaching the output along several paths
}


@pytest.mark.parametrize("form", list(SCALAR_FORMS))
@checks(8)
@given(x=shapes().flatmap(away_from_zero))
def test_python_operators_with_numbers(form, x):
    check_gradients(SCALAR_FORMS[form], [x])


# ----------------------------------------------------------------------------------------------------------------
# matmul


@st.composite
def matmul_case(draw):
    m, k, n = (draw(st.integers(1, 4)) for _ in range(3))
    batch_a, batch_b = draw(broadcast_pair(max_dims=2, max_side=3))
    ta, tb = draw(st.booleans()), draw(st.booleans())
    sa = batch_a + ((k, m) if ta else (m, k))
    sb = batch_b + ((n, k) if tb else (k, n))
    assume(math.prod(sa) <= 60 and math.prod(sb) <= 60)
    return draw(arrays(sa)), draw(arrays(sb)), ta, tb


@checks(150)
@given(case=matmul_case(), unknown=st.sampled_from([False, {0}]))
def test_matmul(case, unknown):
    a, b, ta, tb = case
    check_gradients(lambda x, y: gn.matmul(x, y, transpose_a=ta, transpose_b=tb), [a, b], unknown_batch=unknown)


@checks(5)
@given(data=st.data())
def test_matmul_operator_batched(data):
    a = data.draw(arrays((2, 1, 3, 2)))
    b = data.draw(arrays((3, 2, 4)))
    check_gradients(lambda x, y: x @ y, [a, b])


# ----------------------------------------------------------------------------------------------------------------
# moving data: transpose, reshape, flatten, concat, getitem


@st.composite
def transpose_case(draw):
    shape = draw(shapes(min_dims=1, max_dims=4))
    axes = draw(st.permutations(range(len(shape))))
    if draw(st.booleans()):                                    # negative axes name the same permutation
        axes = [a - len(shape) if draw(st.booleans()) else a for a in axes]
    return draw(arrays(shape)), tuple(axes)


@checks(40)
@given(case=transpose_case())
def test_transpose(case):
    x, axes = case
    check_gradients(lambda t: gn.transpose(t, axes), [x])


@checks(10)
@given(x=shapes(min_dims=1, max_dims=3).flatmap(arrays))
def test_transpose_default_reverses(x):
    check_gradients(lambda t: t.T, [x])


def prime_factors(n):
    factors, p = [], 2
    while n > 1:
        while n % p == 0:
            factors.append(p)
            n //= p
        p += 1
    return factors


@st.composite
def reshape_case(draw):
    shape = draw(shapes(min_dims=0, max_dims=3))
    factors = draw(st.permutations(prime_factors(math.prod(shape))))
    rank = draw(st.integers(1, 4))
    target = [1] * rank
    for f in factors:
        target[draw(st.integers(0, rank - 1))] *= f
    if draw(st.booleans()):
        target[draw(st.integers(0, rank - 1))] = -1
    return draw(arrays(shape)), tuple(target)


@checks(40)
@given(case=reshape_case())
def test_reshape(case):
    x, target = case
    check_gradients(lambda t: gn.reshape(t, target) * 1.0, [x])     # * 1.0: reshape's output is a view


@checks(30)
@given(data=st.data())
def test_flatten(data):
    shape = data.draw(shapes(min_dims=2, max_dims=4, max_side=3))
    start = data.draw(st.integers(-len(shape), len(shape) - 1))
    x = data.draw(arrays(shape))
    check_gradients(lambda t: gn.tanh(gn.flatten(t, start_dim=start)), [x])


@st.composite
def concat_case(draw):
    base = list(draw(shapes(min_dims=1, max_dims=3, max_side=3)))
    axis = draw(st.integers(-len(base), len(base) - 1))
    parts = []
    for _ in range(draw(st.integers(1, 3))):
        shape = list(base)
        shape[axis] = draw(st.integers(1, 3))
        parts.append(draw(arrays(tuple(shape))))
    return parts, axis


@checks(60)
@given(case=concat_case(), unknown=st.booleans())
def test_concat(case, unknown):
    parts, axis = case
    assume(not unknown or len({p.shape[0] for p in parts}) == 1)      # None sizes on one axis are held equal
    check_gradients(lambda *ts: gn.concat(list(ts), axis=axis), parts, unknown_batch=unknown)


@checks(10)
@given(x=shapes(min_dims=1, max_dims=2, max_side=4).flatmap(arrays))
def test_concat_of_one_tensor_twice(x):
    check_gradients(lambda t: gn.concat([t, t * 2.0, t], axis=0), [x])


@st.composite
def index_case(draw):
    """A basic index for a random shape: ints (negative too), slices with steps (negative too) and bounds beyond
    the axis, an optional Ellipsis standing for a run of axes, and new axes (None)."""
    shape = draw(shapes(min_dims=1, max_dims=4, max_side=4))
    items = []
    for size in shape:
        kind = draw(st.sampled_from(["int", "slice", "slice", "all"]))
        if kind == "int":
            items.append(draw(st.integers(-size, size - 1)))
        elif kind == "slice":
            bound = st.none() | st.integers(-size - 2, size + 2)
            items.append(slice(draw(bound), draw(bound), draw(st.sampled_from([None, 1, 2, 3, -1, -2, -3]))))
        else:
            items.append(slice(None))
    if draw(st.booleans()):                                    # axes i..j-1 become one Ellipsis
        i = draw(st.integers(0, len(items)))
        j = draw(st.integers(i, len(items)))
        items[i:j] = [Ellipsis]
    elif draw(st.booleans()):                                  # trailing axes left out
        items = items[:draw(st.integers(0, len(items)))]
    for _ in range(draw(st.integers(0, 2))):
        items.insert(draw(st.integers(0, len(items))), None)
    index = tuple(items) if len(items) != 1 or draw(st.booleans()) else items[0]
    return draw(arrays(shape)), index


@checks(150)
@given(case=index_case(), unknown=st.booleans())
def test_getitem(case, unknown):
    x, index = case
    check_gradients(lambda t: t[index], [x], unknown_batch=unknown)


@checks(10)
@given(x=shapes(min_dims=1, max_dims=2, min_side=2, max_side=5).flatmap(arrays))
def test_getitem_overlapping_reads_add_up(x):
    check_gradients(lambda t: t[1:] * t[:-1] + t[::-1][::2].sum(), [x])


# ----------------------------------------------------------------------------------------------------------------
# reductions


@st.composite
def reduction_case(draw, values=arrays):
    shape = draw(shapes(min_dims=0, max_dims=3))
    ndim = len(shape)
    axis_choices = [st.none()]
    if ndim:
        axis_choices.append(st.integers(-ndim, ndim - 1))
        axis_choices.append(st.lists(st.integers(0, ndim - 1), min_size=1, max_size=ndim, unique=True)
                            .map(lambda axes: tuple(a - ndim if a % 2 else a for a in axes)))
    axis = draw(st.one_of(*axis_choices))
    return draw(values(shape)), axis, draw(st.booleans())


@pytest.mark.parametrize("op", ["sum", "mean"])
@checks(50)
@given(case=reduction_case(), unknown=st.booleans())
def test_sum_mean(op, case, unknown):
    x, axis, keepdims = case
    check_gradients(lambda t: getattr(gn, op)(t, axis=axis, keepdims=keepdims), [x], unknown_batch=unknown)


@checks(80)
@given(case=reduction_case(values=generic), unknown=st.booleans())
def test_max(case, unknown):
    x, axis, keepdims = case
    check_gradients(lambda t: gn.max(t, axis=axis, keepdims=keepdims), [x], unknown_batch=unknown)


@checks(10)
@given(x=shapes(min_dims=1, max_dims=2).flatmap(arrays))
def test_tensor_methods(x):
    check_gradients(lambda t: t.sum(axis=0) * t.mean(axis=-1, keepdims=True).sum(), [x])


# ----------------------------------------------------------------------------------------------------------------
# activations


@checks(40)
@given(x=shapes().flatmap(generic))
def test_relu(x):
    check_gradients(gn.relu, [x])


@checks(40)
@given(x=shapes().flatmap(generic), slope=floats(0.0, 0.5) | st.just(0.01))
def test_leaky_relu(x, slope):
    check_gradients(lambda t: gn.leaky_relu(t, slope=slope), [x])


@checks(40)
@given(x=shapes().flatmap(generic), alpha=floats(0.1, 2.0) | st.just(1.0))
def test_elu(x, alpha):
    check_gradients(lambda t: gn.elu(t, alpha=alpha), [x])


@pytest.mark.parametrize("op", ["sigmoid", "tanh"])
@checks(25)
@given(x=shapes().flatmap(lambda s: arrays(s, -4.0, 4.0)))
def test_sigmoid_tanh(op, x):
    check_gradients(getattr(gn, op), [x])


@pytest.mark.parametrize("op", ["softmax", "log_softmax"])
@checks(40)
@given(data=st.data())
def test_softmax(op, data):
    shape = data.draw(shapes(min_dims=1, max_dims=3))
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    x = data.draw(arrays(shape, -3.0, 3.0))
    check_gradients(lambda t: getattr(gn, op)(t, axis=axis), [x], unknown_batch=data.draw(st.booleans()))


@checks(50)
@given(data=st.data())
def test_maxout(data):
    pieces = data.draw(st.integers(1, 3))
    shape = list(data.draw(shapes(min_dims=2, max_dims=3, max_side=3, max_numel=20)))
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    shape[axis] *= pieces
    x = data.draw(generic(tuple(shape)))
    check_gradients(lambda t: gn.maxout(t, pieces, axis=axis), [x])


# ----------------------------------------------------------------------------------------------------------------
# convolution and pooling


@st.composite
def conv_case(draw):
    """x (N, C, H, W), w (K, C/groups, R, S), optional bias, and stride / padding / dilation / groups."""
    groups = draw(st.integers(1, 3))
    c_per_group = draw(st.integers(1, 2))
    k_per_group = draw(st.integers(1, 2))
    if draw(st.booleans()):
        c_per_group = 1                                         # depthwise: groups = C (with multiplier K/C)
    kernel = (draw(st.integers(1, 3)), draw(st.integers(1, 4)))     # non-square, even sizes included
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    kind = draw(st.sampled_from(["int", "pair", "pairs", "same", "valid"]))
    stride = (1, 1) if kind == "same" else (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    if kind == "int":
        p = draw(st.integers(0, 2))
        padding, pads = p, ((p, p), (p, p))
    elif kind == "pair":
        padding = (draw(st.integers(0, 2)), draw(st.integers(0, 2)))
        pads = ((padding[0],) * 2, (padding[1],) * 2)
    elif kind == "pairs":
        padding = pads = ((draw(st.integers(0, 2)), draw(st.integers(0, 2))),
                          (draw(st.integers(0, 2)), draw(st.integers(0, 2))))
    elif kind == "same":                                         # an even kernel pads one more after than before
        padding = "same"
        pads = tuple((d * (k - 1) // 2, d * (k - 1) - d * (k - 1) // 2) for k, d in zip(kernel, dilation))
    else:
        padding, pads = "valid", ((0, 0), (0, 0))
    if draw(st.booleans()):                                      # a single int stride/dilation too
        stride = stride[0] if stride[0] == stride[1] else stride
    hw = []
    for k, d, (lo, hi) in zip(kernel, dilation, pads):
        smallest = max(1, d * (k - 1) + 1 - lo - hi)            # the dilated kernel must fit the padded input
        hw.append(draw(st.integers(smallest, smallest + 3)))
    c, k_out = groups * c_per_group, groups * k_per_group
    n = draw(st.integers(1, 2))
    x_shape, w_shape = (n, c) + tuple(hw), (k_out, c_per_group) + kernel
    assume(math.prod(x_shape) <= 72 and math.prod(w_shape) <= 60)
    x, w = draw(arrays(x_shape)), draw(arrays(w_shape))
    b = draw(st.none() | arrays((k_out,)))
    return x, w, b, dict(stride=stride, padding=padding, dilation=dilation, groups=groups)


@checks(250)
@given(case=conv_case(), unknown=st.sampled_from([False, {0}]))
def test_conv2d(case, unknown):
    x, w, b, attrs = case
    if b is None:
        check_gradients(lambda x_, w_: gn.conv2d(x_, w_, **attrs), [x, w], unknown_batch=unknown)
    else:
        check_gradients(lambda x_, w_, b_: gn.conv2d(x_, w_, b_, **attrs), [x, w, b], unknown_batch=unknown)


@pytest.mark.parametrize("attrs", [
    dict(stride=2, padding=1), dict(padding="same"), dict(padding="same", dilation=2), dict(groups=2, stride=(1, 2)),
    dict(groups=4, padding=1),                                   # depthwise
], ids=str)
@checks(4)
@given(data=st.data())
def test_conv2d_common_layers(attrs, data):
    x = data.draw(arrays((2, 4, 5, 4)))
    w = data.draw(arrays((4, 4 // attrs.get("groups", 1), 2 if attrs.get("padding") == "same" else 3, 3)))
    b = data.draw(arrays((4,)))
    check_gradients(lambda x_, w_, b_: gn.conv2d(x_, w_, b_, **attrs), [x, w, b])


@st.composite
def pool_case(draw, values):
    """A window, stride and padding (an int, a pair, or ((top, bottom), (left, right))), and ceil_mode."""
    kernel = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    stride = draw(st.none() | st.tuples(st.integers(1, 3), st.integers(1, 3)))
    sides = [(draw(st.integers(0, k // 2)), draw(st.integers(0, k // 2))) for k in kernel]
    hw = [draw(st.integers(max(1, k - lo - hi), max(1, k - lo - hi) + 3)) for k, (lo, hi) in zip(kernel, sides)]
    x_shape = (draw(st.integers(1, 2)), draw(st.integers(1, 2))) + tuple(hw)
    if all(lo == hi for lo, hi in sides) and draw(st.booleans()):
        padding = (sides[0][0], sides[1][0])
        padding = padding[0] if padding[0] == padding[1] else padding
    else:
        padding = tuple(sides)
    return draw(values(x_shape)), kernel, stride, padding, draw(st.booleans())


@checks(150)
@given(case=pool_case(generic), unknown=st.booleans())
def test_max_pool2d(case, unknown):
    x, kernel, stride, padding, ceil_mode = case
    check_gradients(lambda t: gn.max_pool2d(t, kernel, stride=stride, padding=padding, ceil_mode=ceil_mode), [x],
                    unknown_batch=unknown)


@checks(100)
@given(case=pool_case(arrays), count_include_pad=st.booleans(), unknown=st.booleans())
def test_avg_pool2d(case, count_include_pad, unknown):
    x, kernel, stride, padding, ceil_mode = case
    check_gradients(lambda t: gn.avg_pool2d(t, kernel, stride=stride, padding=padding, ceil_mode=ceil_mode,
                                            count_include_pad=count_include_pad), [x], unknown_batch=unknown)


@pytest.mark.parametrize("op", ["max_pool2d", "avg_pool2d"])
@pytest.mark.parametrize("kernel, stride, padding", [(3, 2, 1), (3, 2, 0), (3, 1, 1), (2, 1, 1), (2, 2, 0)],
                         ids=lambda v: str(v))
@checks(3)
@given(data=st.data())
def test_pool_overlapping_windows(op, kernel, stride, padding, data):
    x = data.draw(generic((1, 2, 5, 5)))
    check_gradients(lambda t: getattr(gn, op)(t, kernel, stride=stride, padding=padding), [x])


@checks(20)
@given(x=st.tuples(*(st.integers(1, 3) for _ in range(4))).flatmap(arrays), unknown=st.booleans())
def test_global_avg_pool2d(x, unknown):
    check_gradients(gn.global_avg_pool2d, [x], unknown_batch=unknown)


@pytest.mark.parametrize("op", ["max_pool2d", "avg_pool2d"])
@pytest.mark.parametrize("kernel, stride, padding", [(3, 2, 0), (2, 2, 0), (3, 2, ((1, 0), (0, 1))), (3, 3, 1)],
                         ids=lambda v: str(v))
@checks(3)
@given(data=st.data())
def test_pool_ceil_mode_partial_windows(op, kernel, stride, padding, data):
    """Sizes where ceil_mode keeps a last window that reaches past the padded input (GoogLeNet's 3×3/2 pools)."""
    x = data.draw(generic((1, 2, 6, 7)))
    check_gradients(lambda t: getattr(gn, op)(t, kernel, stride=stride, padding=padding, ceil_mode=True), [x])


@st.composite
def lrn_case(draw):
    shape = (draw(st.integers(1, 2)), draw(st.integers(1, 6))) + tuple(draw(st.lists(st.integers(1, 3), min_size=1,
                                                                                      max_size=2)))
    size = draw(st.integers(1, 6))
    return dict(x=draw(arrays(shape, -3.0, 3.0)), size=size, alpha=draw(floats(0.0, 2.0)),
                beta=draw(floats(0.1, 1.5)), k=draw(floats(0.5, 3.0)),
                channels_before=draw(st.none() | st.integers(0, size - 1)))


@checks(60)
@given(case=lrn_case(), unknown=st.booleans())
def test_local_response_norm(case, unknown):
    x = case.pop("x")
    check_gradients(lambda t: gn.local_response_norm(t, **case), [x], unknown_batch=unknown)


# ----------------------------------------------------------------------------------------------------------------
# losses


@checks(50)
@given(data=st.data())
def test_softmax_cross_entropy_wrt_logits(data):
    n, classes = data.draw(st.integers(1, 6)), data.draw(st.integers(1, 6))
    logits = data.draw(arrays((n, classes), -3.0, 3.0))
    labels = np.array(data.draw(st.lists(st.integers(0, classes - 1), min_size=n, max_size=n)), dtype=np.int64)
    check_gradients(gn.softmax_cross_entropy, [logits, Fixed(labels)], unknown_batch=data.draw(st.booleans()))


@checks(40)
@given(data=st.data())
def test_mse_wrt_both(data):
    shape = data.draw(shapes(min_dims=1, max_dims=3))
    check_gradients(gn.mse, [data.draw(arrays(shape)), data.draw(arrays(shape))],
                    unknown_batch=data.draw(st.booleans()))


@checks(40)
@given(data=st.data())
def test_binary_cross_entropy_with_logits_wrt_both(data):
    shape = data.draw(shapes(min_dims=1, max_dims=3))
    logits, targets = data.draw(arrays(shape, -4.0, 4.0)), data.draw(arrays(shape, 0.0, 1.0))
    check_gradients(gn.binary_cross_entropy_with_logits, [logits, targets], unknown_batch=data.draw(st.booleans()))


# ----------------------------------------------------------------------------------------------------------------
# dropout
#
# Dropout draws a new mask on every run of a program (run k uses stream k of its seed), so a finite difference
# between two runs of one program would compare two different functions. Two tests handle this honestly:
#  * within ONE run, the mask m is recovered from the forward output, m = y·(1 − rate)/x (x is kept away from
#    0), and must be exactly 0/1 with y = x·m/(1 − rate); the gradient of L = Σ R·y is then R·m/(1 − rate) —
#    the derivative of that identity — and the backward pass must reuse that very mask;
#  * check_gradients also runs a true finite-difference check: for a graph with a random op it compiles a fresh
#    program for every evaluation, whose first run draws the same stream as the analytic run (see gradcheck.py).


@checks(40)
@given(data=st.data())
def test_dropout_gradient_is_the_forward_mask(data):
    shape = data.draw(shapes(min_dims=1, max_dims=3))
    x = data.draw(generic(shape))
    rate = data.draw(floats(0.05, 0.9))
    seed = data.draw(st.integers(0, 2**31 - 1))
    projection = data.draw(arrays(shape))
    with gn.Graph():
        xt = gn.placeholder(shape, dtype="float64")
        y = gn.dropout(xt, rate, seed=seed)
        dx = gn.gradients(gn.sum(y * gn.constant(projection, dtype="float64")), xt)
    prog = gn.compile([y, dx], device=DEVICE)
    for _ in range(2):                                           # a later run (new mask) agrees with itself too
        y_v, dx_v = prog.run({xt: x})
        mask = y_v * (1 - rate) / x
        np.testing.assert_allclose(mask, np.round(mask), rtol=0, atol=1e-12)
        assert set(np.unique(np.round(mask))) <= {0.0, 1.0}
        mask = np.round(mask)
        np.testing.assert_allclose(y_v, x * mask / (1 - rate), rtol=1e-14, atol=0)
        np.testing.assert_allclose(dx_v, projection * mask / (1 - rate), rtol=1e-14, atol=0)


def test_dropout_draws_a_new_mask_every_run():
    """Why finite differences across runs of one program would be wrong (and why the helper recompiles)."""
    with gn.Graph():
        x = gn.placeholder((48,), dtype="float64")
        y = gn.dropout(x, 0.5, seed=7)
    prog = gn.compile(y, device=DEVICE)
    ones = np.ones(48)
    first, second = prog.run({x: ones}), prog.run({x: ones})
    assert not np.array_equal(first, second)
    assert np.array_equal(first, gn.compile(y, device=DEVICE).run({x: ones}))  # a new program: stream 1 again


@checks(40)
@given(data=st.data())
def test_dropout_finite_differences(data):
    shape = data.draw(shapes(min_dims=2, max_dims=2, max_side=4))
    x, w = data.draw(arrays(shape)), data.draw(arrays((shape[1], 3)))
    rate = data.draw(floats(0.1, 0.7))
    seed = data.draw(st.integers(0, 2**31 - 1))
    check_gradients(lambda x_, w_: gn.tanh(gn.dropout(x_ @ w_, rate, seed=seed)), [x, w])


# ----------------------------------------------------------------------------------------------------------------
# batch norm


@st.composite
def batch_norm_case(draw):
    if draw(st.booleans()):
        shape = (draw(st.integers(2, 5)), draw(st.integers(1, 4)))
    else:
        shape = (draw(st.integers(1, 3)), draw(st.integers(1, 3)), draw(st.integers(1, 3)), draw(st.integers(1, 3)))
        assume(math.prod(shape) // shape[1] >= 2)                # at least 2 values per channel
    channels = shape[1]
    x = draw(generic(shape))                                     # distinct values: every channel has a spread
    gamma = draw(away_from_zero((channels,), 0.3, 2.0))
    beta = draw(arrays((channels,)))
    eps = draw(st.sampled_from([1e-5, 1e-3, 0.1]))
    as_variables = draw(st.booleans())
    return x, gamma, beta, eps, as_variables


def _running_stats(channels, mean=None, var=None):
    running_mean = gn.variable(np.zeros(channels) if mean is None else mean, trainable=False, name="running_mean")
    running_var = gn.variable(np.ones(channels) if var is None else var, trainable=False, name="running_var")
    return running_mean, running_var


@checks(150)
@given(case=batch_norm_case(), unknown=st.sampled_from([False, {0}]))
def test_batch_norm_training(case, unknown):
    x, gamma, beta, eps, as_variables = case
    channels = x.shape[1]

    def build(x_, g_, b_):
        running_mean, running_var = _running_stats(channels)
        return gn.batch_norm(x_, g_, b_, running_mean, running_var, training=True, momentum=0.1, eps=eps)

    params = [Variable(gamma), Variable(beta)] if as_variables else [gamma, beta]
    check_gradients(build, [x] + params, unknown_batch=unknown)


@checks(100)
@given(case=batch_norm_case(), data=st.data(), unknown=st.sampled_from([False, {0}]))
def test_batch_norm_inference(case, data, unknown):
    """In inference the running statistics are inputs too: differentiate them as (non-trainable) variables."""
    x, gamma, beta, eps, as_variables = case
    channels = x.shape[1]
    running_mean = data.draw(arrays((channels,)))
    running_var = data.draw(positive((channels,), 0.2, 3.0))

    def build(x_, g_, b_, m_, v_):
        return gn.batch_norm(x_, g_, b_, m_, v_, training=False, eps=eps)

    params = [Variable(gamma), Variable(beta)] if as_variables else [gamma, beta]
    check_gradients(build, [x] + params + [Variable(running_mean, trainable=False),
                                           Variable(running_var, trainable=False)], unknown_batch=unknown)
