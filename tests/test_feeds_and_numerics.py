"""No silent wrong answers (issue 12): feeds that would wrap around or be misread, special values where the
devices disagreed with NumPy, gradients that dropped a NaN, and raw Python errors where graphnet's own belong.

Every device runs the same checks: reference, cpu, and cuda (under Numba's simulator here, so the tensors are tiny).
Expected values are NumPy's, or PyTorch's where the question is a gradient (written out here, not computed).
"""
import os
import re
import warnings

import numpy as np
import pytest

import graphnet as gn

THIS_FILE = os.path.basename(__file__)
DEVICES = ["reference", "cpu", "cuda"]
nan, inf = np.nan, np.inf


def raised_at(excinfo):
    """'test_feeds_and_numerics.py:LINE' of the line in this file from which the failing call was made."""
    entries = [e for e in excinfo.traceback if os.path.basename(str(e.path)) == THIS_FILE]
    return f"{THIS_FILE}:{entries[-1].lineno + 1}"


def run(fetches, feeds, device):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)        # NumPy's warnings about inf and NaN
        return gn.compile(fetches, device=device).run(feeds)


# ----------------------------------------------------------------------------------------------------------------
# feeds


@pytest.fixture
def labels():
    """An int32 placeholder 'y', an int64 one 'z', a uint8 one 'u', and a program that fetches all three."""
    with gn.Graph():
        y = gn.placeholder((None,), dtype="int32", name="y")
        z = gn.placeholder((None,), dtype="int64", name="z")
        u = gn.placeholder((None,), dtype="uint8", name="u")
        program = gn.compile([y + 0, z + 0, u + 0], device="reference")
    return program, y, z, u


def test_integers_that_do_not_fit_the_placeholder_are_refused_not_wrapped(labels):
    program, y, z, u = labels
    fine = {z: [1], u: [1]}
    with pytest.raises(gn.FeedError) as caught:
        program.run({**fine, y: np.array([3, 2 ** 31, -5], dtype=np.int64)})
    assert str(caught.value) == (
        f"placeholder 'y' ({y.site}) has dtype int32, which holds -2147483648..2147483647; the int64 array fed has "
        "2147483648 (1 value(s) outside), which would wrap around. Feed values in range, or declare the placeholder "
        "with a wider dtype such as 'int64'")
    with pytest.raises(gn.FeedError, match=r"placeholder 'u' .* holds 0\.\.255; the int64 array fed has -1 "):
        program.run({y: [1], z: [1], u: [-1, 3]})
    with pytest.raises(gn.FeedError, match=r"placeholder 'z' .* the uint64 array fed has 18446744073709551615 "):
        program.run({y: [1], u: [1], z: np.array([2 ** 64 - 1], dtype=np.uint64)})
    values = program.run({y: np.array([2 ** 31 - 1, -2 ** 31]), z: np.array([7], np.uint64), u: [255]})
    assert [v.tolist() for v in values] == [[2 ** 31 - 1, -2 ** 31], [7], [255]]


def test_a_placeholder_fed_twice_is_refused(labels):
    program, y, z, u = labels
    with pytest.raises(gn.FeedError) as caught:
        program.run({y: [1], "y": [2], z: [1], u: [1]})
    assert str(caught.value) == (f"placeholder 'y' ({y.site}) is fed twice, as the tensor and as the name 'y'; "
                                 "feed it once")


def test_a_placeholder_of_another_graph_is_named_as_such(labels):
    program, y, z, u = labels
    with gn.Graph():
        other_y = gn.placeholder((None,), dtype="int32", name="y")
    with pytest.raises(gn.FeedError) as caught:
        program.run({other_y: [1], z: [1], u: [1]})
    assert str(caught.value) == (
        f"placeholder 'y' ({other_y.site}) belongs to another graph than this program's fetches ('add', 'add_1', "
        f"'add_2'); a program is fed the placeholders of the graph it was built from: feed its 'y' ({y.site}) "
        "instead")


def test_a_ragged_list_is_a_feed_error_naming_the_placeholder():
    with gn.Graph():
        x = gn.placeholder((None, 2), name="x")
        program = gn.compile(x * 2, device="reference")
    with pytest.raises(gn.FeedError, match=rf"^placeholder 'x' \({re.escape(x.site)}\) expects an array of shape "
                                           r"\(None, 2\); the value fed is not one \(rows of different lengths\?\): "
                                           r"setting an array element with a sequence"):
        program.run({x: [[1, 2], [3]]})


def test_a_feed_longer_than_an_axis_may_be_is_refused():
    with gn.Graph():
        x = gn.placeholder((None, 0), name="x")
        program = gn.compile(gn.sum(x, axis=1), device="reference")
    with pytest.raises(gn.FeedError, match=rf"^placeholder 'x' \({re.escape(x.site)}\): the array fed has shape "
                                           r"\(2147483648, 0\), an axis of 2147483648 elements; graphnet's limit is "
                                           r"2\*\*31 - 1"):
        program.run({x: np.zeros((2 ** 31, 0), "float32")})                     # empty: no memory is used


# ----------------------------------------------------------------------------------------------------------------
# special values: every device agrees with NumPy


SPECIAL = np.array([-inf, -8.0, -1.5, -1.0, -0.0, 0.0, 0.5, 1.0, 2.0, inf, nan])


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_powers_of_special_values_agree_with_numpy(device, dtype):
    exponents = [0.5, -0.5, 1.5, 2, 3, -1, 0, 1 / 3]
    value = SPECIAL.astype(dtype)
    with gn.Graph():
        x = gn.placeholder(value.shape, dtype=dtype, name="x")
        fetches = [x ** p for p in exponents]
    for p, got in zip(exponents, run(fetches, {x: value}, device)):
        with np.errstate(all="ignore"):
            expected = np.power(value, value.dtype.type(p))
        np.testing.assert_array_equal(got, expected, err_msg=f"x ** {p}")
        assert (np.signbit(got) == np.signbit(expected)).all(), f"the sign of zero in x ** {p}"
    assert np.isnan(run(fetches[0], {x: value}, device)[0])                   # (−∞) ** 0.5: NaN, as NumPy, PyTorch


@pytest.mark.parametrize("device", DEVICES)
def test_the_gradient_of_x_to_the_power_0_is_0_even_at_0(device):
    with gn.Graph():
        x = gn.placeholder((3,), dtype="float64", name="x")
        (dx,) = gn.gradients(gn.sum(x ** 0), [x])
    np.testing.assert_array_equal(run(dx, {x: [0.0, -2.0, 3.0]}, device), [0.0, 0.0, 0.0])   # PyTorch: zeros


# ----------------------------------------------------------------------------------------------------------------
# a NaN's gradient goes to the NaN, as PyTorch routes it


@pytest.mark.parametrize("device", DEVICES)
def test_maximum_and_minimum_route_a_nan_result_to_the_nan(device):
    a = np.array([nan, 1.0, 2.0, nan, 5.0])
    b = np.array([0.0, nan, 2.0, nan, 4.0])
    with gn.Graph():
        x = gn.placeholder((5,), dtype="float64", name="x")
        y = gn.placeholder((5,), dtype="float64", name="y")
        fetches = [*gn.gradients(gn.sum(gn.maximum(x, y)), [x, y]), *gn.gradients(gn.sum(gn.minimum(x, y)), [x, y])]
    max_dx, max_dy, min_dx, min_dy = run(fetches, {x: a, y: b}, device)
    # NaN in x: x's; NaN in y only: y's; a tie: the first input's (graphnet's rule); both NaN: the first input's
    np.testing.assert_array_equal(max_dx, [1, 0, 1, 1, 1])
    np.testing.assert_array_equal(max_dy, [0, 1, 0, 0, 0])
    np.testing.assert_array_equal(min_dx, [1, 0, 1, 1, 0])
    np.testing.assert_array_equal(min_dy, [0, 1, 0, 0, 1])


@pytest.mark.parametrize("device", DEVICES)
def test_the_max_reduction_routes_a_nan_max_to_the_nans(device):
    value = np.array([[1.0, nan, 2.0, 3.0],
                      [4.0, 4.0, 0.0, -1.0],
                      [nan, 0.0, nan, 7.0]])
    with gn.Graph():
        x = gn.placeholder(value.shape, dtype="float64", name="x")
        (by_rows,) = gn.gradients(gn.sum(gn.max(x, axis=1)), [x])     # the reduced axis is the contiguous one
        (by_columns,) = gn.gradients(gn.sum(gn.max(x, axis=0)), [x])  # the kept axis is
    rows, columns = run([by_rows, by_columns], {x: value}, device)
    np.testing.assert_array_equal(rows, [[0, 1, 0, 0], [0.5, 0.5, 0, 0], [0.5, 0, 0.5, 0]])  # torch.max: NaNs share
    np.testing.assert_array_equal(columns, [[0, 1, 0, 0], [0, 0, 0, 0], [1, 0, 1, 1]])


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("kernel_size, stride, padding", [(2, 2, 0), (3, 3, 0), (2, 1, 0), (3, 2, 1)],
                         ids=["2x2 tiles", "3x3 tiles", "overlapping", "padded"])
def test_max_pooling_routes_a_nan_max_to_the_first_nan_of_the_window(device, kernel_size, stride, padding):
    value = np.arange(36, dtype="float64").reshape(1, 1, 6, 6)
    value[0, 0, 1, 1] = value[0, 0, 0, 4] = value[0, 0, 1, 5] = value[0, 0, 4, 3] = nan
    with gn.Graph():
        x = gn.placeholder(value.shape, dtype="float64", name="x")
        y = gn.max_pool2d(x, kernel_size, stride, padding)
        (dx,) = gn.gradients(gn.sum(y), [x])
    pooled, got = run([y, dx], {x: value}, device)
    expected = np.zeros_like(value)
    padded = np.pad(value[0, 0], padding, constant_values=-inf)
    for oh in range(pooled.shape[2]):
        for ow in range(pooled.shape[3]):
            window = padded[oh * stride:oh * stride + kernel_size, ow * stride:ow * stride + kernel_size]
            first = np.argmax(np.isnan(window)) if np.isnan(window).any() else np.argmax(window)  # row-major
            r, s = divmod(int(first), kernel_size)
            expected[0, 0, oh * stride + r - padding, ow * stride + s - padding] += 1
            assert np.isnan(pooled[0, 0, oh, ow]) == np.isnan(window).any()
    np.testing.assert_array_equal(got, expected)
    assert got[0, 0, 1, 1] >= 1 and got[0, 0, 4, 3] >= 1               # the NaNs got their windows' gradients


# ----------------------------------------------------------------------------------------------------------------
# graphnet's own errors, at build time, instead of raw Python ones


def test_a_zero_slice_step_is_a_graph_error_at_build_time():
    with gn.Graph():
        x = gn.placeholder((None, 4), name="x")
        with pytest.raises(gn.GraphError) as caught:
            x[::0]
        assert str(caught.value) == (f"indexing 'x' ({raised_at(caught)}) with [::0]: a slice step cannot be zero "
                                     "(as in NumPy); use step 1 for every element, or an int index for one")
        with pytest.raises(gn.GraphError, match=r"indexing 'x' .* with \[0\.5::\]: a slice's start, stop and step "
                                                r"must be ints or None"):
            x[0.5:, 1]


def test_an_axis_that_is_not_an_int_is_a_shape_error():
    with gn.Graph():
        x = gn.placeholder((None, 4), name="x")
        with pytest.raises(gn.ShapeError) as caught:
            gn.sum(x, axis=1.0)
        assert str(caught.value) == (f"sum ({raised_at(caught)}): axis 1.0 is not an axis: give an int or a tuple "
                                     "of ints, e.g. axis=1 or axis=(0, 2)")
        with pytest.raises(gn.ShapeError, match=r"^mean \(.*\): axis \(0, '1'\) holds '1', which is not an int"):
            gn.mean(x, axis=(0, "1"))


def test_an_axis_longer_than_2_to_the_31_is_refused_at_build_time():
    with gn.Graph():
        with pytest.raises(gn.ShapeError) as caught:
            gn.placeholder((None, 2 ** 31), name="big")
        assert str(caught.value).startswith(
            f"placeholder 'big' ({raised_at(caught)}): shape (None, 2147483648): axis 1 would have 2147483648 "
            "elements, more than graphnet's limit of 2**31 - 1 = 2147483647 per axis")
        x = gn.placeholder((None, 2), name="x")
        with pytest.raises(gn.ShapeError, match=r"^reshape 'reshape' \(.*\): axis 0 would have 2147483648 elements"):
            gn.reshape(x, (2 ** 31, -1))
        assert gn.placeholder((2 ** 31 - 1, 0), name="largest").shape == (2 ** 31 - 1, 0)


def test_an_empty_batch_runs_on_cuda_as_on_the_other_devices():
    rng = np.random.default_rng(0)
    with gn.Graph():
        x = gn.placeholder((None, 1, 4, 4), name="x")
        labels = gn.placeholder((None,), dtype="int64", name="labels")
        w = gn.variable(rng.normal(size=(2, 1, 3, 3)).astype("float32"), name="w")
        v = gn.variable(rng.normal(size=(2, 3)).astype("float32"), name="v")
        logits = gn.flatten(gn.max_pool2d(gn.relu(gn.conv2d(x, w, padding=1)), 4)) @ v
        loss = gn.softmax_cross_entropy(logits, labels) + gn.mean(gn.sigmoid(logits))
        fetches = [logits, loss, *gn.gradients(loss, [w, v])]
    feeds = {x: np.zeros((0, 1, 4, 4), "float32"), labels: np.zeros(0, "int64")}
    reference = run(fetches, feeds, "reference")
    assert reference[0].shape == (0, 3) and np.isnan(reference[1])          # the mean of nothing, as NumPy's
    for device in ("cpu", "cuda"):
        for got, expected in zip(run(fetches, feeds, device), reference):
            assert got.shape == expected.shape and got.dtype == expected.dtype
            np.testing.assert_array_equal(got, expected)
