"""The blocked direct convolution (graphnet/_ext/blocked_conv.pyx, blocked_conv.h) against the NumPy reference.

Each output is a sum of n = C·R·S products (plus the bias) taken in one order in float32, so it is within
(n + 1)·ε·Ȳ of the exact value, where Ȳ = Σ|w||x| + |b| is the same convolution of the absolute values and
ε = 2⁻²⁴ (the standard bound for recursive summation, with fused multiply-adds rounding once per term). Every
width the processor runs the kernels at is checked: 16 lanes (AVX-512) and 8 (AVX2 + FMA) where it has both.
"""
import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import graphnet as gn
from graphnet._ext import blocked_conv, conv
from graphnet.backends.reference import conv as ref_conv

WIDTHS = [lanes for lanes in (16, 8) if lanes <= blocked_conv.PROCESSOR_LANES]
needs_kernels = pytest.mark.skipif(not WIDTHS, reason="this processor has neither AVX-512 nor AVX2 + FMA: the "
                                                      "blocked kernels are not built to run here (see "
                                                      "test_without_vector_units_the_layer_goes_elsewhere)")


@pytest.fixture(params=WIDTHS or [0], ids=lambda lanes: f"{lanes}-lanes")
def lanes(request):
    """The kernels run at this width for the test (and at the processor's best after it)."""
    before = blocked_conv.use_lanes(request.param)
    yield request.param
    blocked_conv.use_lanes(before)


def reference(x, w, b, stride, padding, dilation, relu):
    """(the convolution in float64, Ȳ: the convolution of |x| and |w| plus |b|)"""
    y_shape = conv.output_shape(x.shape, w.shape, stride, padding, dilation)
    params = dict(stride=stride, padding=padding, dilation=dilation, groups=1)
    exact, magnitude = np.empty(y_shape), np.empty(y_shape)
    bias = None if b is None else b.astype(np.float64)
    ref_conv.conv2d(exact, x.astype(np.float64), w.astype(np.float64), bias, **params)
    ref_conv.conv2d(magnitude, np.abs(x.astype(np.float64)), np.abs(w.astype(np.float64)),
                    None if b is None else np.abs(bias), **params)
    return (np.maximum(exact, 0) if relu else exact), magnitude


def run_blocked(x, w, b, stride, padding, dilation, relu, workspace=None):
    y_shape = conv.output_shape(x.shape, w.shape, stride, padding, dilation)
    out = np.full(y_shape, np.nan, np.float32)               # a value the kernels do not write stays NaN
    blocked_conv.blocked_conv2d(out, x, w, b, stride=stride, padding=padding, dilation=dilation, relu=relu,
                                workspace=workspace)
    return out


def assert_within_bound(out, exact, magnitude, taps):
    bound = (taps + 1) * 2.0 ** -24 * magnitude + 1e-30
    error = np.abs(out.astype(np.float64) - exact)
    if np.all(error <= bound):
        return
    worst = np.unravel_index(np.argmax(error - bound), error.shape)
    raise AssertionError(f"output {worst}: {out[worst]} vs {exact[worst]}, error {error[worst]:.3g} > bound "
                         f"{bound[worst]:.3g}")


@st.composite
def layers(draw):
    kh, kw = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    padding = tuple((draw(st.integers(0, 2)), draw(st.integers(0, 2))) for _ in range(2))
    h, w = draw(st.integers(1, 12)), draw(st.integers(1, 30))           # up to 30 wide: several tiles per row
    n, c = draw(st.integers(1, 3)), draw(st.integers(1, 6))
    k = draw(st.sampled_from([1, 5, 8, 15, 16, 17, 24, 32, 33, 40]))   # partial, whole, paired vector blocks
    return (n, c, h, w), (k, c, kh, kw), stride, padding, dilation


@needs_kernels
@settings(max_examples=60, deadline=None,        # `lanes` is set once per width; every generated layer runs at it
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(layer=layers(), with_bias=st.booleans(), relu=st.booleans(), seed=st.integers(0, 2 ** 16))
def test_blocked_convolution_matches_the_reference(lanes, layer, with_bias, relu, seed):
    x_shape, w_shape, stride, padding, dilation = layer
    y_shape = conv.output_shape(x_shape, w_shape, stride, padding, dilation)
    assume(y_shape[2] >= 1 and y_shape[3] >= 1)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(x_shape, dtype=np.float32)
    w = rng.standard_normal(w_shape, dtype=np.float32)
    b = rng.standard_normal(w_shape[0], dtype=np.float32) if with_bias else None
    out = run_blocked(x, w, b, stride, padding, dilation, relu)
    exact, magnitude = reference(x, w, b, stride, padding, dilation, relu)
    assert_within_bound(out, exact, magnitude, w_shape[1] * w_shape[2] * w_shape[3])


@needs_kernels
def test_the_course_layers_match_the_reference(lanes):
    """LeNet's 6 → 16 5×5 layer and a 16 → 32 3×3 stride-2 padded one, bias and ReLU: the shapes it is chosen for."""
    rng = np.random.default_rng(0)
    layers = (((4, 6, 14, 14), (16, 6, 5, 5), 1, 0), ((3, 16, 32, 32), (32, 16, 3, 3), 2, 1))
    for x_shape, w_shape, stride, pad in layers:
        x = rng.standard_normal(x_shape, dtype=np.float32)
        w = rng.standard_normal(w_shape, dtype=np.float32)
        b = rng.standard_normal(w_shape[0], dtype=np.float32)
        padding = ((pad, pad), (pad, pad))
        out = run_blocked(x, w, b, (stride, stride), padding, (1, 1), True)
        exact, magnitude = reference(x, w, b, (stride, stride), padding, (1, 1), True)
        assert_within_bound(out, exact, magnitude, w_shape[1] * w_shape[2] * w_shape[3])


@needs_kernels
def test_relu_keeps_nan_like_np_maximum(lanes):
    x = np.ones((1, 2, 6, 6), np.float32)
    x[0, 1, 2, 3] = np.nan
    w = -np.ones((16, 2, 3, 3), np.float32)                      # every output negative: ReLU gives 0 ...
    out = run_blocked(x, w, None, (1, 1), ((0, 0), (0, 0)), (1, 1), True)
    windows = np.zeros((4, 4), bool)
    windows[0:3, 1:4] = True                                     # ... except where a window holds the NaN
    assert np.isnan(out[0][:, windows]).all()
    assert (out[0][:, ~windows] == 0).all()


@needs_kernels
def test_the_result_does_not_depend_on_the_thread_count(lanes):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((5, 6, 16, 16), dtype=np.float32)
    w = rng.standard_normal((20, 6, 3, 3), dtype=np.float32)
    results = []
    before = gn.get_num_threads()
    try:
        for threads in (1, 2):
            gn.set_num_threads(threads)
            results.append(run_blocked(x, w, None, (2, 1), ((1, 0), (2, 1)), (1, 1), False))
    finally:
        gn.set_num_threads(before)
    assert np.array_equal(results[0], results[1])


@needs_kernels
def test_the_workspace_is_checked(lanes):
    x = np.ones((2, 3, 8, 8), np.float32)
    w = np.ones((16, 3, 3, 3), np.float32)
    params = dict(stride=(1, 1), padding=((1, 1), (1, 1)), dilation=(1, 1))
    y_shape = conv.output_shape(x.shape, w.shape, **params)
    needed = blocked_conv.blocked_workspace_bytes(x.shape, w.shape, y_shape, threads=1, **params)
    out = run_blocked(x, w, None, relu=False, workspace=np.empty(needed, np.uint8), **params)
    assert np.all(out[:, :, 1:-1, 1:-1] == 27)                  # the interior windows: 3·3·3 ones
    with pytest.raises(ValueError, match=f"holds {needed - 1} bytes; one thread needs {needed}"):
        run_blocked(x, w, None, relu=False, workspace=np.empty(needed - 1, np.uint8), **params)
    with pytest.raises(TypeError, match="C-contiguous uint8"):
        run_blocked(x, w, None, relu=False, workspace=np.empty(needed, np.float32), **params)
    unpadded = dict(stride=(1, 1), padding=((0, 0), (0, 0)), dilation=(1, 1))       # x read in place: weights only
    needed = blocked_conv.blocked_workspace_bytes(x.shape, w.shape, conv.output_shape(x.shape, w.shape, **unpadded),
                                                  threads=1, **unpadded)
    with pytest.raises(ValueError, match=f"holds {needed - 1} bytes; one thread needs {needed}"):
        run_blocked(x, w, None, relu=False, workspace=np.empty(needed - 1, np.uint8), **unpadded)


@needs_kernels
@pytest.mark.parametrize("x_shape, w_shape", [((0, 3, 6, 6), (16, 3, 3, 3)),     # no images
                                              ((2, 0, 6, 6), (16, 0, 3, 3)),     # no input channels: the bias alone
                                              ((2, 3, 1, 1), (20, 3, 3, 3))])    # padding wider than the input
def test_empty_and_degenerate_layers(lanes, x_shape, w_shape):
    x = np.ones(x_shape, np.float32)
    w = np.ones(w_shape, np.float32)
    b = np.arange(w_shape[0], dtype=np.float32)
    params = dict(stride=(1, 1), padding=((1, 1), (1, 1)), dilation=(1, 1))
    out = run_blocked(x, w, b, relu=False, **params)
    exact, magnitude = reference(x, w, b, relu=False, **params)
    assert out.shape == exact.shape
    assert_within_bound(out, exact, magnitude, w_shape[1] * w_shape[2] * w_shape[3])


@needs_kernels
@pytest.mark.parametrize("dtype, groups, reason", [(np.float64, 1, "they are float32 only, got float64"),
                                                   (np.float32, 2, "they take one group, got groups=2")])
def test_layers_it_does_not_compute_are_refused_with_the_reason(lanes, dtype, groups, reason):
    x = np.ones((1, 4, 6, 6), dtype)
    w = np.ones((16, 4 // groups, 3, 3), dtype)
    out = np.empty((1, 16, 4, 4), dtype)
    with pytest.raises(ValueError, match=f"the blocked convolution does not apply: {reason}"):
        blocked_conv.blocked_conv2d(out, x, w, stride=(1, 1), padding=((0, 0), (0, 0)), dilation=(1, 1),
                                    groups=groups)
    assert conv.choose_algorithm("forward", x.shape, (16, 4, 3, 3) if groups == 1 else w.shape, (1, 1),
                                 ((0, 0), (0, 0)), groups, dtype) != "blocked"


def test_use_lanes_refuses_a_width_this_processor_lacks():
    with pytest.raises(ValueError, match=r"use_lanes\(4\)"):
        blocked_conv.use_lanes(4)


def test_without_vector_units_the_layer_goes_elsewhere():
    """With the kernels off (as on a processor without AVX2), LeNet's C3 runs im2col + sgemm, and says why not."""
    before = blocked_conv.use_lanes(0)
    try:
        assert "neither AVX-512 nor AVX2" in blocked_conv.why_not((64, 6, 14, 14), (16, 6, 5, 5), 1, np.float32)
        assert conv.choose_algorithm("forward", (64, 6, 14, 14), (16, 6, 5, 5), (1, 1), ((0, 0), (0, 0)), 1,
                                     np.float32) == "im2col+sgemm"
    finally:
        blocked_conv.use_lanes(before)


@needs_kernels
def test_a_program_runs_lenet_c3_blocked_with_relu_fused_and_matches_reference(lanes):
    rng = np.random.default_rng(3)
    xv = rng.standard_normal((8, 6, 14, 14)).astype(np.float32)
    wv = rng.standard_normal((16, 6, 5, 5)).astype(np.float32)
    bv = rng.standard_normal(16).astype(np.float32)
    results = {}
    for device in ("reference", "cpu"):
        with gn.Graph():
            x = gn.placeholder((None, 6, 14, 14), name="x")
            y = gn.relu(gn.conv2d(x, gn.variable(wv), gn.variable(bv)))
            program = gn.compile(y, device=device)
            results[device] = program.run({x: xv})
            if device == "cpu":
                assert "cpu.conv2d_relu[blocked]" in str(program)
    np.testing.assert_allclose(results["cpu"], results["reference"], rtol=1e-4, atol=1e-4)
