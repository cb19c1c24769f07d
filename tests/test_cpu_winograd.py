"""Winograd F(2x2, 3x3) (graphnet/_ext/winograd.pyx) against the NumPy reference convolution.

How close is close enough. Winograd's algorithm forms sums and differences of products that cancel in exact
arithmetic but not in floating point, so its error is not bounded by the direct convolution's
γ·Σ_{c,r,s}|w||x|. The standard bound for a bilinear algorithm (Higham, "Accuracy and Stability of Numerical
Algorithms", §3.5, applied to Winograd convolution by Barabasz et al. 2020) replaces every matrix and every value by
its absolute value:

    |ŷ − y| ≤ γ_n · (Ȳ + |b|),    Ȳ = |Aᵀ| [ Σ_c (|G| |g_c| |G|ᵀ) ⊙ (|B|ᵀ |d_c| |B|) ] |A|,    γ_n = n·u / (1 − n·u)

with u the unit roundoff (2⁻²⁴ for float32, 2⁻⁵³ for float64) and n the longest chain of roundings one product
goes through in winograd.pyx: 4 in the weight transform (two additions in G g, two in · Gᵀ; the halvings are
exact), 2 in the input transform, 1 for the product, C_in − 1 for the GEMM's sum over input channels (in any order,
with or without FMA), 2 + 3 in the output transform (r = m0 + m1 + m2, then y = r0 + r1 + r2 + b): n = C_in + 11.
ReLU is 1-Lipschitz and keeps the bound. Ȳ is "Σ|w||x| of the transformed algorithm": expanding it gives

    Ȳ[2·th + a, 2·tw + b] = Σ_{c,r,s,p,q} |w[k, c, r, s]| · κ[a, r, p] · κ[b, s, q] · |xpad[c, 2·th + p, 2·tw + q]|
    κ[a, r, p] = Σ_i |Aᵀ[a, i]| · |G[i, r]| · |Bᵀ[i, p]|            (p = 0 … 3 runs over the whole 4×4 input tile)

that is, Σ|w||x| where each tap also reaches (with weight ≤ 2) the input positions of the tile that only the other
outputs of the tile read; κ[a, r, a + r] = 1, so Ȳ ≥ Σ|w||x|. `winograd_magnitude` computes Ȳ with the reference
convolution: one stride-2 convolution of |xpad| with a 4×4 kernel per output phase (a, b). The expected values are
the reference's, computed in float64 from the same (exactly representable) inputs; its own error, at most
γ_{9·C_in+1}(2⁻⁵³)·(Σ|w||x| + |b|) ≤ that × (Ȳ + |b|), is added to the tolerance (it only matters for float64).

The data are normal numbers with magnitudes spread over 10⁻²…10² per element, so that a large input next to
small outputs exercises the cross terms the bound accounts for.
"""
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from graphnet._ext import winograd
from graphnet.backends.reference import conv as ref_conv

SETTINGS = settings(deadline=None, max_examples=60)
DTYPES = st.sampled_from([np.float32, np.float64])
ONE = dict(stride=(1, 1), dilation=(1, 1), groups=1)

# the matrices of F(2x2, 3x3), as in the module docstring of winograd.pyx
BT = np.array([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]], dtype=np.float64)
G = np.array([[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]], dtype=np.float64)
AT = np.array([[1, 1, 1, 0], [0, 1, -1, -1]], dtype=np.float64)
KAPPA = np.einsum("ai,ir,ip->arp", np.abs(AT), np.abs(G), np.abs(BT))       # κ[a, r, p]   (2 × 3 × 4)


def unit_roundoff(dtype):
    return float(np.finfo(dtype).eps) / 2


def gamma(n, dtype):
    nu = n * unit_roundoff(dtype)
    return nu / (1 - nu)


def winograd_magnitude(x, w, padding):
    """Ȳ (see the module docstring) for y = conv3x3(x, w) with stride 1 and padding ((pt, pb), (pl, pr)); a negative
    padding crops x (the input gradient of a layer with padding 3 is a convolution with padding −1)."""
    (pt, pb), (pl, pr) = padding
    x = x[:, :, max(-pt, 0):x.shape[2] - max(-pb, 0), max(-pl, 0):x.shape[3] - max(-pr, 0)]
    (pt, pb), (pl, pr) = ((max(pt, 0), max(pb, 0)), (max(pl, 0), max(pr, 0)))
    n, c, h, width = x.shape
    oh, ow = h + pt + pb - 2, width + pl + pr - 2
    th, tw = (oh + 1) // 2, (ow + 1) // 2
    ax, aw = np.abs(x).astype(np.float64), np.abs(w).astype(np.float64)
    bound = np.empty((n, w.shape[0], 2 * th, 2 * tw))
    tiles_padding = ((pt, 2 * th + 2 - pt - h), (pl, 2 * tw + 2 - pl - width))    # every tile's 4×4 input inside
    for a in range(2):
        for b in range(2):
            kernel = np.einsum("kcrs,rp,sq->kcpq", aw, KAPPA[a], KAPPA[b])
            phase = np.empty((n, w.shape[0], th, tw))
            ref_conv.conv2d(phase, ax, kernel, stride=(2, 2), padding=tiles_padding, dilation=(1, 1), groups=1)
            bound[:, :, a::2, b::2] = phase
    return bound[:, :, :oh, :ow]


def assert_within_winograd_bound(actual, expected, magnitude, inputs, dtype):
    """|actual − expected| ≤ (γ_{C_in+11} + γ_{9·C_in+1}(float64)) · magnitude elementwise (magnitude = Ȳ + |b|)."""
    assert actual.shape == expected.shape and actual.dtype == dtype
    tolerance = (gamma(inputs + 11, dtype) + gamma(9 * inputs + 1, np.float64)) * magnitude
    error = np.abs(actual.astype(np.float64) - expected)
    worst = np.unravel_index(np.argmax(error - tolerance), error.shape) if error.size else None
    assert np.all(error <= tolerance), (f"error {error[worst]:.3g} > bound {tolerance[worst]:.3g} at {worst} "
                                        f"({np.sum(error > tolerance)} of {error.size} outside)")


def spread(rng, shape, dtype):
    """Normal numbers times 10^U(−2, 2): magnitudes that differ a lot from one element to the next."""
    return (rng.standard_normal(shape) * 10.0 ** rng.uniform(-2, 2, shape)).astype(dtype)


def reference_forward(x, w, b, padding, relu):
    """The reference convolution in float64 (then ReLU)."""
    n, _, h, width = x.shape
    (pt, pb), (pl, pr) = padding
    expected = np.empty((n, w.shape[0], h + pt + pb - 2, width + pl + pr - 2))
    ref_conv.conv2d(expected, x.astype(np.float64), w.astype(np.float64), None if b is None else b.astype(np.float64),
                    padding=padding, **ONE)
    return np.maximum(expected, 0) if relu else expected


def check_forward(n, c, k, h, width, padding, with_bias, relu, dtype, seed, workspace_threads=None):
    rng = np.random.default_rng(seed)
    x, w = spread(rng, (n, c, h, width), dtype), spread(rng, (k, c, 3, 3), dtype)
    b = spread(rng, (k,), dtype) if with_bias else None
    expected = reference_forward(x, w, b, padding, relu)
    out = np.full(expected.shape, np.nan, dtype)
    workspace = None
    if workspace_threads is not None:
        workspace = np.empty(winograd.winograd_workspace_bytes(x.shape, w.shape, out.shape, np.dtype(dtype).itemsize,
                                                               workspace_threads), np.uint8)
    winograd.winograd_conv2d(out, x, w, b, padding=padding, relu=relu, workspace=workspace)
    magnitude = winograd_magnitude(x, w, padding) + (0 if b is None else np.abs(b.astype(np.float64))[:, None, None])
    assert_within_winograd_bound(out, expected, magnitude, c, dtype)


def check_grad_input(n, c, k, h, width, padding, dtype, seed):
    """dx through Winograd against the reference conv2d_grad_input; the bound is that of the convolution it is:
    dy (K channels in) with the flipped, transposed weights and padding 2 − p."""
    rng = np.random.default_rng(seed)
    (pt, pb), (pl, pr) = padding
    w = spread(rng, (k, c, 3, 3), dtype)
    dy = spread(rng, (n, k, h + pt + pb - 2, width + pl + pr - 2), dtype)
    expected = np.empty((n, c, h, width))
    ref_conv.conv2d_grad_input(expected, dy.astype(np.float64), w.astype(np.float64), padding=padding, **ONE)
    out = np.full((n, c, h, width), np.nan, dtype)
    winograd.winograd_conv2d_grad_input(out, dy, w, padding=padding)
    flipped = np.ascontiguousarray(w[:, :, ::-1, ::-1].transpose(1, 0, 2, 3))
    magnitude = winograd_magnitude(dy, flipped, ((2 - pt, 2 - pb), (2 - pl, 2 - pr)))
    assert_within_winograd_bound(out, expected, magnitude, k, dtype)


@st.composite
def layers(draw, max_size=12):
    """(N, C, K, H, W, padding): paddings 0..2 on each side (asymmetric too), H and W from what gives one output
    up; sometimes larger images and channel counts."""
    padding = tuple((draw(st.integers(0, 2)), draw(st.integers(0, 2))) for _ in range(2))
    large = draw(st.booleans())
    top = 40 if large else max_size
    h = draw(st.integers(max(1, 3 - sum(padding[0])), top))
    width = draw(st.integers(max(1, 3 - sum(padding[1])), top))
    channels = st.integers(1, 24 if large else 6)
    return draw(st.integers(1, 3)), draw(channels), draw(channels), h, width, padding


@SETTINGS
@given(layers(), st.booleans(), st.booleans(), DTYPES, st.integers(0, 2 ** 31))
def test_forward_matches_reference_within_the_winograd_bound(layer, with_bias, relu, dtype, seed):
    check_forward(*layer, with_bias, relu, dtype, seed)


@SETTINGS
@given(layers(), DTYPES, st.integers(0, 2 ** 31))
def test_grad_input_matches_reference_within_the_winograd_bound(layer, dtype, seed):
    check_grad_input(*layer, dtype, seed)


@settings(deadline=None, max_examples=20)
@given(st.integers(1, 3), st.integers(1, 3), st.integers(0, 2), st.integers(0, 2), DTYPES, st.integers(0, 2 ** 31))
def test_tiny_images(h, width, pad_h, pad_w, dtype, seed):
    """1×1 … 3×3 images: a single, partial tile, most of whose input is padding."""
    padding = ((pad_h, pad_h), (pad_w, pad_w))
    if h + 2 * pad_h < 3 or width + 2 * pad_w < 3:
        return
    check_forward(2, 3, 2, h, width, padding, True, seed % 2 == 0, dtype, seed)
    check_grad_input(2, 3, 2, h, width, padding, dtype, seed)


@pytest.mark.parametrize("n, c, k, h, width", [
    (2, 40, 24, 45, 45),     # 64 tiles per block (float32): blocks end in the middle of a tile row and of an image
    (3, 1, 1, 30, 31),       # 675 tiles, blocks of 512: one block spans images
    (1, 2, 3, 9, 140),       # 70 tiles per tile row: runs of MAX_RUN (32) tiles, then a partial one
    (5, 16, 16, 8, 8),       # several images per block
])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_block_and_run_boundaries(n, c, k, h, width, dtype):
    check_forward(n, c, k, h, width, ((1, 1), (1, 1)), True, True, dtype, seed=h * width)
    check_forward(n, c, k, h, width, ((0, 2), (2, 0)), False, False, dtype, seed=h + width)
    check_grad_input(n, c, k, h, width, ((1, 1), (1, 1)), dtype, seed=n * c)


@pytest.mark.parametrize("c, k, size", [(3, 4, 9), (16, 16, 16), (64, 64, 16), (256, 32, 8)])
def test_on_inputs_of_one_scale_the_error_is_a_few_ulps_of_the_direct_magnitude(c, k, size):
    """The bound above is a worst case (n = C_in + 11 ulps of Ȳ, and Ȳ is ~7× Σ|w||x| on random data). On normal
    inputs the float32 error is measured within ~2.5 ulps of the direct convolution's Σ|w||x| — what im2col + GEMM
    also does (up to ~3): assert 6, a regression guard rather than a proof (fixed seeds, so not flaky)."""
    rng = np.random.default_rng(c * k)
    x = rng.standard_normal((2, c, size, size)).astype(np.float32)
    w = rng.standard_normal((k, c, 3, 3)).astype(np.float32)
    padding = ((1, 1), (1, 1))
    out = np.empty((2, k, size, size), np.float32)
    winograd.winograd_conv2d(out, x, w, padding=padding)
    direct = np.empty((2, k, size, size))
    ref_conv.conv2d(direct, np.abs(x).astype(np.float64), np.abs(w).astype(np.float64), padding=padding, **ONE)
    error = np.abs(out - reference_forward(x, w, None, padding, False))
    assert np.max(error / (unit_roundoff(np.float32) * direct)) <= 6


def test_worthwhile_follows_the_measured_rule():
    forward = "forward"
    assert winograd.worthwhile(forward, (32, 64, 56, 56), (64, 64, 3, 3), 1)
    assert winograd.worthwhile("grad_input", (64, 32, 32, 32), (64, 32, 3, 3), 1)
    assert winograd.worthwhile(forward, (64, 64, 4, 4), (64, 64, 3, 3), 1)           # 64 channels: from 4 × 4
    assert not winograd.worthwhile(forward, (64, 32, 4, 4), (32, 32, 3, 3), 1)
    assert winograd.worthwhile(forward, (64, 32, 8, 8), (32, 32, 3, 3), 1)           # 32 channels: from 8 × 8
    assert not winograd.worthwhile(forward, (64, 32, 8, 8), (32, 32, 3, 3), 0)       # 6 × 6 outputs
    assert not winograd.worthwhile(forward, (64, 16, 16, 16), (16, 16, 3, 3), 1)     # 16 channels: from 28 × 28
    assert winograd.worthwhile(forward, (64, 16, 28, 28), (32, 16, 3, 3), 1)
    assert not winograd.worthwhile(forward, (64, 3, 32, 32), (32, 3, 3, 3), 1)       # an RGB input layer
    assert not winograd.worthwhile(forward, (1, 64, 4, 4), (64, 64, 3, 3), 1)        # 16 outputs: U not paid back


@pytest.mark.parametrize("padding", [((3, 3), (3, 3)), ((3, 0), (1, 4)), ((0, 0), (3, 2))])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_paddings_beyond_the_kernel(padding, dtype):
    """Padding 3 or more: the forward pass sees tiles of padding only; the input gradient is a convolution with
    padding 2 − p < 0, which crops dy."""
    check_forward(2, 5, 3, 7, 6, padding, True, False, dtype, seed=7)
    check_grad_input(2, 5, 3, 7, 6, padding, dtype, seed=8)


def test_workspace_of_the_advertised_size_is_enough():
    for threads in (1, 2, 3):
        check_forward(4, 8, 8, 20, 20, ((1, 1), (1, 1)), True, False, np.float32, seed=threads,
                      workspace_threads=threads)
    x, w = np.ones((1, 2, 5, 5), np.float32), np.ones((3, 2, 3, 3), np.float32)
    out = np.empty((1, 3, 5, 5), np.float32)
    size = winograd.winograd_workspace_bytes(x.shape, w.shape, out.shape, 4, 1)
    with pytest.raises(ValueError, match="workspace holds"):
        winograd.winograd_conv2d(out, x, w, padding=1, workspace=np.empty(size - 1, np.uint8))


def test_padding_forms_agree():
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal((2, 3, 6, 7)).astype(np.float32), rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    results = []
    for padding in (1, (1, 1), ((1, 1), (1, 1))):
        out = np.empty((2, 4, 6, 7), np.float32)
        winograd.winograd_conv2d(out, x, w, padding=padding)
        results.append(out)
    np.testing.assert_array_equal(results[0], results[1])
    np.testing.assert_array_equal(results[0], results[2])


def test_nan_reaches_the_outputs_whose_window_holds_it_and_relu_keeps_it():
    """Each output of a tile depends only on the inputs of its own 3×3 window (κ[a, r, p] = 0 outside it), so a NaN
    input gives NaN exactly where direct convolution does, and the ReLU keeps it (like np.maximum). An inf input
    is different: inf − inf in the transforms makes NaN of outputs that direct convolution makes ±inf."""
    x = np.zeros((1, 1, 8, 8), np.float32)
    x[0, 0, 1, 1] = np.nan
    out = np.empty((1, 1, 8, 8), np.float32)
    winograd.winograd_conv2d(out, x, np.ones((1, 1, 3, 3), np.float32), np.array([-1], np.float32), padding=1,
                             relu=True)
    expected = np.zeros((8, 8), np.float32)
    expected[:3, :3] = np.nan
    np.testing.assert_array_equal(out[0, 0], expected)


def test_zero_input_channels_give_the_bias():
    out = np.full((2, 3, 4, 4), np.nan, np.float32)
    winograd.winograd_conv2d(out, np.empty((2, 0, 4, 4), np.float32), np.empty((3, 0, 3, 3), np.float32),
                             np.array([1, -2, 3], np.float32), padding=1, relu=True)
    np.testing.assert_array_equal(out, np.array([1, 0, 3], np.float32)[None, :, None, None] * np.ones((2, 3, 4, 4)))


# ----------------------------------------------------------------------------------------------------------------
# what Winograd F(2x2, 3x3) does not do


def test_applies_to_3x3_stride_1_dilation_1_one_group_only():
    assert winograd.applies((8, 4, 3, 3), (1, 1), (1, 1), 1)
    assert not winograd.applies((8, 4, 3, 3), (2, 2), (1, 1), 1)
    assert not winograd.applies((8, 4, 3, 3), (1, 2), (1, 1), 1)
    assert not winograd.applies((8, 4, 3, 3), (1, 1), (2, 2), 1)
    assert not winograd.applies((8, 2, 3, 3), (1, 1), (1, 1), 2)
    assert not winograd.applies((8, 4, 5, 5), (1, 1), (1, 1), 1)
    assert not winograd.applies((8, 4, 1, 1), (1, 1), (1, 1), 1)
    assert not winograd.applies((8, 4, 3, 1), (1, 1), (1, 1), 1)


@pytest.mark.parametrize("kernel", ["winograd_conv2d", "winograd_conv2d_grad_input"])
@pytest.mark.parametrize("w_shape, params, message", [
    ((4, 2, 3, 3), dict(stride=(2, 2)), "needs stride 1"),
    ((4, 2, 3, 3), dict(stride=2), "needs stride 1"),
    ((4, 2, 3, 3), dict(dilation=(2, 2)), "needs dilation 1"),
    ((4, 1, 3, 3), dict(groups=2), "needs groups=1"),
    ((4, 2, 5, 5), {}, "needs a 3x3 kernel"),
    ((4, 2, 1, 1), {}, "needs a 3x3 kernel"),
])
def test_unsupported_layers_are_clear_value_errors(kernel, w_shape, params, message):
    x = np.zeros((1, 2, 8, 8), np.float32)
    w = np.zeros(w_shape, np.float32)
    y = np.zeros((1, 4, 8, 8), np.float32)
    with pytest.raises(ValueError, match=f"Winograd F\\(2x2, 3x3\\) does not apply: it {message}"):
        if kernel == "winograd_conv2d":
            winograd.winograd_conv2d(y, x, w, padding=1, **params)
        else:
            winograd.winograd_conv2d_grad_input(x, y, w, padding=1, **params)


def test_mismatched_shapes_and_types_are_explained():
    x, w = np.zeros((1, 2, 8, 8), np.float32), np.zeros((4, 2, 3, 3), np.float32)
    with pytest.raises(ValueError, match=r"H \+ pt \+ pb − 2"):
        winograd.winograd_conv2d(np.zeros((1, 4, 8, 8), np.float32), x, w, padding=0)
    with pytest.raises(ValueError, match="must agree on C"):
        winograd.winograd_conv2d(np.zeros((1, 4, 8, 8), np.float32), np.zeros((1, 3, 8, 8), np.float32), w, padding=1)
    with pytest.raises(ValueError, match="one value per output channel"):
        winograd.winograd_conv2d(np.zeros((1, 4, 8, 8), np.float32), x, w, np.zeros(3, np.float32), padding=1)
    with pytest.raises(ValueError, match="padding must be ≥ 0"):
        winograd.winograd_conv2d(np.zeros((1, 4, 10, 10), np.float32), x, w, padding=((-1, 3), (1, 1)))
    with pytest.raises(TypeError, match="float32"):
        winograd.winograd_conv2d(np.zeros((1, 4, 8, 8), np.float32), x.astype(np.float64), w, padding=1)
    with pytest.raises(ValueError, match="must agree on K and C"):
        winograd.winograd_conv2d_grad_input(x, np.zeros((1, 3, 8, 8), np.float32), w, padding=1)


def test_parallel_blocks_agree_with_two_threads():
    """With OMP_NUM_THREADS=2 blocks go to two threads, each with its own workspace slot (a subprocess: thread pools
    are sized at import)."""
    check = textwrap.dedent("""
        import numpy as np
        import sys
        sys.path.insert(0, %r)
        import test_cpu_winograd as t
        for dtype in (np.float32, np.float64):
            t.check_forward(6, 20, 12, 23, 19, ((1, 1), (1, 1)), True, True, dtype, seed=1, workspace_threads=2)
            t.check_forward(64, 8, 8, 8, 8, ((1, 0), (0, 1)), True, False, dtype, seed=2)
            t.check_grad_input(6, 12, 20, 23, 19, ((1, 1), (1, 1)), dtype, seed=3)
        print("ok")
    """ % os.path.dirname(os.path.abspath(__file__)))
    result = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, timeout=300,
                            env={**os.environ, "OMP_NUM_THREADS": "2"})
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr
