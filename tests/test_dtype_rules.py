"""dtype rules (issue 12, "no silent wrong answers"): graphnet gives the dtype and the values NumPy 2 gives.

    tensor with Python number   NEP 50: the number is weak — labels * 0.5 is float64 (never truncated to 0), a
                                float32 tensor times 2 stays float32, a bool times 2 is int64
    integers through /, exp, log, sqrt     float64, as NumPy
    sum of bools / mean of integers        int64 / float64, as NumPy
    concat of float32 and float64          float64 on every device, as add
    float16 and complex                    refused where they are declared, with the fix in the message

Each expected dtype and value is NumPy's own, computed here on the same arrays.
"""
import operator
import os
import re

import numpy as np
import pytest

import graphnet as gn

THIS_FILE = os.path.basename(__file__)
HOST_DEVICES = ["reference", "cpu"]


def raised_at(excinfo):
    """'test_dtype_rules.py:LINE' of the line in this file from which the failing call was made."""
    entries = [e for e in excinfo.traceback if os.path.basename(str(e.path)) == THIS_FILE]
    return f"{THIS_FILE}:{entries[-1].lineno + 1}"


VALUES = {"int64": [1, 2, 3, -7], "int32": [1, 2, 3, -7], "uint8": [1, 2, 3, 250], "bool": [True, False, True, True],
          "float32": [0.5, -1.25, 3.0, 7.75], "float64": [0.5, -1.25, 3.0, 7.75]}
OPERATORS = {"+": operator.add, "*": operator.mul, "-": operator.sub, "/": operator.truediv}


def numpy_and_graphnet(dtype, build, numpy_build=None, *, device):
    """build(x) on VALUES[dtype] as graphnet runs it on `device` and as NumPy computes it (numpy_build, else build
    itself, applied to the array): (NumPy's result, the graphnet node, graphnet's result)."""
    value = np.array(VALUES[dtype], dtype=dtype)
    with np.errstate(all="ignore"):
        expected = np.asarray((numpy_build or build)(value))
    with gn.Graph():
        x = gn.placeholder(value.shape, dtype=dtype, name="x")
        node = build(x)
    return expected, node, gn.compile(node, device=device).run({x: value})


def assert_same(expected, node, got):
    assert node.dtype == expected.dtype, (node.dtype, expected.dtype)
    assert got.dtype == expected.dtype
    np.testing.assert_array_equal(got, expected)


@pytest.mark.filterwarnings("ignore:divide by zero")
@pytest.mark.parametrize("device", HOST_DEVICES)
@pytest.mark.parametrize("dtype", ["int64", "int32", "uint8", "bool", "float32", "float64"])
@pytest.mark.parametrize("symbol", sorted(OPERATORS))
@pytest.mark.parametrize("number", [0.5, 0.9, 2, True], ids=["0.5", "0.9", "2", "True"])
def test_a_tensor_and_a_python_number_promote_as_numpy_2(device, dtype, symbol, number):
    fn = OPERATORS[symbol]
    if dtype == "bool" and symbol == "-" and number is True:          # NumPy refuses bool - bool: so does graphnet
        with pytest.raises(TypeError):
            fn(np.array([True, False]), number)
        with gn.Graph(), pytest.raises(gn.ShapeError, match="bool"):
            fn(gn.placeholder((2,), dtype="bool", name="x"), number)
        return
    for build in (lambda x: fn(x, number), lambda x: fn(number, x)):      # x ∘ number and number ∘ x
        assert_same(*numpy_and_graphnet(dtype, build, device=device))


def test_the_truncations_of_the_issue_are_gone():
    with gn.Graph():
        x = gn.placeholder((3,), dtype="int64", name="x")
        b = gn.placeholder((3,), dtype="bool", name="b")
        fetches = [x * 0.5, x + 0.9, b * 2]
    half, plus, doubled = gn.compile(fetches, device="cpu").run({x: [1, 2, 3], b: [True, False, True]})
    np.testing.assert_array_equal(half, [0.5, 1.0, 1.5])
    np.testing.assert_array_equal(plus, [1.9, 2.9, 3.9])
    assert doubled.dtype == np.int64 and doubled.tolist() == [2, 0, 2]


FLOAT_VALUED = {"x / 2": (lambda x: x / 2, None), "7 / x": (lambda x: 7 / x, None), "sqrt": (gn.sqrt, np.sqrt),
                "log": (gn.ops.log, np.log), "exp": (gn.exp, np.exp)}


@pytest.mark.filterwarnings("ignore:divide by zero", "ignore:invalid value")
@pytest.mark.parametrize("device", HOST_DEVICES)
@pytest.mark.parametrize("dtype", ["int64", "int32", "bool"])
@pytest.mark.parametrize("op", sorted(FLOAT_VALUED))
def test_integers_through_float_valued_ops_compute_in_float64(device, dtype, op):
    expected, node, got = numpy_and_graphnet(dtype, *FLOAT_VALUED[op], device=device)
    assert node.dtype == np.float64 and got.dtype == np.float64
    # NumPy's own dtype is float64 for int32 and int64; for bool it picks float16, which graphnet has not
    assert expected.dtype == (np.float16 if dtype == "bool" and op not in ("x / 2", "7 / x") else np.float64)
    np.testing.assert_allclose(got, expected.astype("float64"), rtol=1e-15 if expected.dtype == np.float64 else 1e-3)


REDUCTIONS = {"sum": (gn.sum, np.sum), "sum over axis 0": (lambda x: gn.sum(x, axis=0), lambda v: np.sum(v, axis=0)),
              "mean": (gn.mean, np.mean), "max": (gn.max, np.max)}


@pytest.mark.parametrize("device", HOST_DEVICES)
@pytest.mark.parametrize("dtype", ["bool", "int32", "uint8", "int64"])
@pytest.mark.parametrize("op", sorted(REDUCTIONS))
def test_sum_of_bools_counts_and_mean_of_integers_is_float64(device, dtype, op):
    assert_same(*numpy_and_graphnet(dtype, *REDUCTIONS[op], device=device))


@pytest.mark.filterwarnings("ignore:invalid value")
@pytest.mark.parametrize("device", HOST_DEVICES)
@pytest.mark.parametrize("dtype", ["bool", "uint8", "int64"])
@pytest.mark.parametrize("exponent", [0, 2, 3, 0.5])
def test_integer_powers_as_numpy(device, dtype, exponent):
    # np.power, not **: NumPy's ** takes a shortcut through np.square for 2, which makes bool ** 2 an int8
    assert_same(*numpy_and_graphnet(dtype, lambda x: x ** exponent, lambda v: np.power(v, exponent), device=device))


def test_concat_of_float32_and_float64_promotes_like_add_on_every_device():
    third = np.full(2, 1 / 3)
    with gn.Graph():
        p = gn.variable(np.ones(2, "float32"), name="p")
        q = gn.placeholder((2,), dtype="float64", name="q")
        joined = gn.concat([p, q])
        added = gn.concat([p + q, q + p])
        dp = gn.gradients(gn.sum(joined * joined), [p])[0]
    assert joined.dtype == added.dtype == np.float64
    assert dp.dtype == np.float32                         # a gradient has its variable's dtype
    for device in ("reference", "cpu", "cuda"):
        value, also, gradient = gn.compile([joined, added, dp], device=device).run({q: third})
        assert value.dtype == np.float64
        np.testing.assert_array_equal(value, [1, 1, 1 / 3, 1 / 3])     # not rounded through float32
        np.testing.assert_array_equal(also, [4 / 3] * 4)
        assert gradient.dtype == np.float32
        np.testing.assert_array_equal(gradient, [2, 2])


def test_int_times_a_python_float_on_cuda_is_float64():
    with gn.Graph():
        x = gn.placeholder((3,), dtype="int64", name="x")
        fetches = [x * 0.5, x / 2, gn.sqrt(x)]
    got = gn.compile(fetches, device="cuda").run({x: np.array([1, 4, 9])})
    for array, expected in zip(got, ([0.5, 2, 4.5], [0.5, 2, 4.5], [1, 2, 3])):
        assert array.dtype == np.float64
        np.testing.assert_array_equal(array, expected)


def test_cast_converts_and_its_gradient_comes_back_in_the_input_dtype():
    with gn.Graph():
        x = gn.variable(np.array([1.5, -2.5, 3.25], "float32"), name="x")
        as_int = gn.cast(x, "int64")
        wide = gn.cast(x, "float64")
        dx = gn.gradients(gn.sum(wide * wide), [x])[0]
        assert gn.cast(x, "float32") is x
    assert "cast" in str(gn.compile([as_int, dx], device="reference"))
    for device in ("reference", "cpu"):
        truncated, gradient = gn.compile([as_int, dx], device=device).run()
        assert truncated.dtype == np.int64 and truncated.tolist() == [1, -2, 3]
        assert gradient.dtype == np.float32
        np.testing.assert_array_equal(gradient, [3.0, -5.0, 6.5])


def test_what_numpy_refuses_graphnet_refuses_at_build_time():
    with gn.Graph():
        b = gn.placeholder((3,), dtype="bool", name="b")
        i8 = gn.placeholder((3,), dtype="int8", name="i8")
        n = gn.placeholder((3,), dtype="int64", name="n")
        cases = [(lambda: b - b, r"sub \(SITE\): both operands are bool, and NumPy has no subtraction of booleans; "
                                 r"cast them to integers first, e.g\. gn\.cast\(a, 'int64'\)"),
                 (lambda: -b, r"neg \(SITE\): 'b' \(3,\) is bool, and NumPy has no neg of booleans; cast it to "
                              r"a number first, e\.g\. -gn\.cast\(b, 'int64'\) \(or 1 - gn\.cast\(b, 'int64'\) for "
                              r"a logical not\)"),
                 (lambda: i8 + 300, r"add \(SITE\): the Python integer 300 does not fit int8, the dtype of 'i8' "
                                    r"\(NumPy 2 raises here too\); cast 'i8' to a wider integer first, e\.g\. "
                                    r"gn\.cast\(i8, 'int64'\)"),
                 (lambda: n ** -1, r"pow \(SITE\): 'n' is int64, and NumPy does not raise integers to negative "
                                   r"integer powers \(-1\); cast it to a float first: gn\.cast\(n, 'float64'\) \*\* -1")]
        for make, pattern in cases:
            with pytest.raises(gn.ShapeError) as caught:
                make()
            assert re.fullmatch(pattern.replace("SITE", re.escape(raised_at(caught))), str(caught.value)), \
                str(caught.value)
        assert (i8 + 100).dtype == np.int8 and (b + 1).dtype == np.int64 and (b - 1).dtype == np.int64


def test_float16_and_complex_are_refused_where_they_are_declared():
    with gn.Graph():
        x = gn.placeholder((2,), name="x")
        cases = [(lambda: gn.placeholder((2,), dtype="float16", name="h"),
                  r"placeholder 'h' \(SITE\): dtype float16 is not supported: graphnet computes in float32 and "
                  r"float64 only, and would silently widen or round a float16; use 'float32' and convert the data "
                  r"with \.astype\('float32'\)"),
                 (lambda: gn.placeholder((2,), dtype=np.complex64, name="z"),
                  r"placeholder 'z' \(SITE\): dtype complex64 is not supported: graphnet has no complex arithmetic; "
                  r"carry the real and imaginary parts as two float tensors \(value\.real, value\.imag\)"),
                 (lambda: gn.variable(np.zeros(3, np.float16), name="w"),
                  r"variable 'w' \(SITE\): dtype float16 is not supported: .*"),
                 (lambda: gn.constant(np.ones(2) * 1j, name="c"),
                  r"constant 'c' \(SITE\): dtype complex128 is not supported: .*"),
                 (lambda: x * 1j, r"constant 'constant' \(SITE\): dtype complex128 is not supported: .*"),
                 (lambda: gn.cast(x, "float16"), r"cast 'x' \(SITE\): dtype float16 is not supported: .*")]
        for make, pattern in cases:
            with pytest.raises(gn.GraphError) as caught:
                make()
            assert re.fullmatch(pattern.replace("SITE", re.escape(raised_at(caught))), str(caught.value)), \
                str(caught.value)
