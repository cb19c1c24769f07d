"""The cpu backend's GEMM, convolution and pooling kernels (graphnet/_ext/{linalg,conv,pool}.pyx) against the NumPy
reference, called directly and through compiled programs.

Every kernel writes into an `out` prefilled with NaN, so a kernel that leaves part of it unwritten fails. float32
results must match within 1e-4 of the reference's largest magnitude, float64 within 1e-10. The suite runs with one
OpenMP thread (conftest.py); `test_parallel_paths_agree_with_two_threads` repeats the checks with two threads in a
subprocess, where the parallel code paths (split GEMMs, images shared between threads) run.
"""
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import graphnet as gn
from graphnet._ext import blocked_conv
from graphnet.backends import get_backend
from graphnet.backends.reference import conv as ref_conv
from graphnet.backends.reference import linalg as ref_linalg
from graphnet.backends.reference import pool as ref_pool
from graphnet.shapes import pool_output_size
from kernels_by_name import op_named  # noqa: E402

ref_relu_grad = get_backend("reference").kernel(op_named("relu_grad"))     # dx = dy·[y > 0], in NumPy

SETTINGS = settings(deadline=None, max_examples=30)
GRAPH_SETTINGS = settings(deadline=None, max_examples=12)
DTYPES = st.sampled_from([np.float32, np.float64])


@pytest.fixture(scope="module")
def cpu():
    """The cpu backend; its kernels come from the compiled graphnet/_ext modules (pip install -e . builds them)."""
    backend = get_backend("cpu")
    missing = {"matmul", "dense", "dense_relu", "conv2d", "conv2d_relu", "conv2d_grad_input", "conv2d_grad_weight",
               "max_pool2d", "max_pool2d_grad", "avg_pool2d", "avg_pool2d_grad", "max_pool2d_grad_relu",
               "avg_pool2d_grad_relu"} - {op.name for op in backend.kernels}
    assert not missing, f"cpu backend lacks {missing}: rebuild with pip install -e . --no-build-isolation"
    return backend


def nan_like(shape, dtype):
    return np.full(shape, np.nan, dtype=dtype)


def assert_close(actual, expected):
    """Within 1e-4 (float32) or 1e-10 (float64) of the largest magnitude in `expected`."""
    assert actual.shape == expected.shape and actual.dtype == expected.dtype
    tolerance = 1e-4 if expected.dtype == np.float32 else 1e-10
    scale = max(float(np.max(np.abs(expected))) if expected.size else 0.0, 1.0)
    np.testing.assert_allclose(actual, expected, rtol=tolerance, atol=tolerance * scale)


# ----------------------------------------------------------------------------------------------------------------
# matmul and the dense layers


@st.composite
def matmul_cases(draw):
    m, k, n = (draw(st.integers(1, 40)) for _ in range(3))
    ta, tb = draw(st.booleans()), draw(st.booleans())
    batch = draw(st.sampled_from([None, (), (3,), (2, 3)]))
    a_shape, b_shape = ((k, m) if ta else (m, k)), ((n, k) if tb else (k, n))
    if batch is not None:                      # batched, with size-1 axes broadcast against the other operand
        a_batch = tuple(draw(st.sampled_from([1, d])) for d in batch)
        b_batch = tuple(draw(st.sampled_from([1, d])) for d in batch)[draw(st.integers(0, len(batch))):]
        a_shape, b_shape = a_batch + a_shape, b_batch + b_shape
    return a_shape, b_shape, ta, tb, draw(DTYPES), draw(st.integers(0, 2 ** 31))


@SETTINGS
@given(matmul_cases())
def test_matmul_matches_reference(cpu, case):
    a_shape, b_shape, ta, tb, dtype, seed = case
    rng = np.random.default_rng(seed)
    a, b = rng.standard_normal(a_shape).astype(dtype), rng.standard_normal(b_shape).astype(dtype)
    expected = np.matmul(np.swapaxes(a, -1, -2) if ta else a, np.swapaxes(b, -1, -2) if tb else b)
    out = nan_like(expected.shape, dtype)
    cpu.kernel(op_named("matmul"))(out, a, b, transpose_a=ta, transpose_b=tb)
    reference = nan_like(expected.shape, dtype)
    ref_linalg.matmul(reference, a, b, transpose_a=ta, transpose_b=tb)
    assert_close(out, reference)


@pytest.mark.parametrize("m, k, n", [(300, 70, 120), (20, 90, 700), (257, 33, 31)])
@pytest.mark.parametrize("ta, tb", [(False, False), (True, False), (False, True), (True, True)])
def test_matmul_large_enough_to_split(cpu, m, k, n, ta, tb):
    """Above PARALLEL_MIN_FLOPS the product is cut into row (m >= n) or column blocks; with one thread the same
    block code runs once over the whole matrix, and the two-thread subprocess test runs the split."""
    rng = np.random.default_rng(m)
    a = rng.standard_normal((k, m) if ta else (m, k)).astype(np.float32)
    b = rng.standard_normal((n, k) if tb else (k, n)).astype(np.float32)
    out = nan_like((m, n), np.float32)
    cpu.kernel(op_named("matmul"))(out, a, b, transpose_a=ta, transpose_b=tb)
    assert_close(out, (a.T if ta else a) @ (b.T if tb else b))


def gemm_operands(rng, m, k, n, ta, tb, dtype):
    """a (m × k, or k × m transposed), b (k × n, or n × k) and the reference product a @ b (m × n)."""
    a = rng.standard_normal((k, m) if ta else (m, k)).astype(dtype)
    b = rng.standard_normal((n, k) if tb else (k, n)).astype(dtype)
    product = nan_like((m, n), dtype)
    ref_linalg.matmul(product, a, b, transpose_a=ta, transpose_b=tb)
    return a, b, product


@SETTINGS
@given(st.integers(1, 30), st.integers(1, 30), st.integers(1, 30), st.booleans(), st.booleans(), DTYPES,
       st.integers(0, 2 ** 31))
def test_dense_and_dense_relu_equal_matmul_add_relu(cpu, m, k, n, ta, tb, dtype, seed):
    rng = np.random.default_rng(seed)
    a, b, product = gemm_operands(rng, m, k, n, ta, tb, dtype)
    bias = rng.standard_normal(n).astype(dtype)
    for name, expected in (("dense", product + bias), ("dense_relu", np.maximum(product + bias, 0))):
        out = nan_like((m, n), dtype)
        cpu.kernel(op_named(name))(out, a, b, bias if seed % 2 else bias.reshape(1, n), transpose_a=ta, transpose_b=tb)
        assert_close(out, expected)


@SETTINGS
@given(st.integers(1, 30), st.integers(0, 30), st.integers(1, 30), st.booleans(), st.booleans(), DTYPES,
       st.integers(0, 2 ** 31))
def test_matmul_relu_grad_and_matmul_sgd_update_equal_their_chains(cpu, m, k, n, ta, tb, dtype, seed):
    """(a @ b) · [y > 0] and w − η·(a @ b), as the unfused chains compute them (k = 0: the product of no terms)."""
    rng = np.random.default_rng(seed)
    a, b, product = gemm_operands(rng, m, k, n, ta, tb, dtype)
    relu_y = np.maximum(rng.standard_normal((m, n)), 0).astype(dtype)
    out = nan_like((m, n), dtype)
    cpu.kernel(op_named("matmul_relu_grad"))(out, a, b, relu_y, transpose_a=ta, transpose_b=tb)
    assert_close(out, product * (relu_y > 0))
    w, rate = rng.standard_normal((m, n)).astype(dtype), np.array([0.1], dtype)
    expected = w - rate * product
    cpu.kernel(op_named("matmul_sgd_update"))(w, a, b, rate, w, w, transpose_a=ta, transpose_b=tb)
    assert_close(w, expected)


def test_matmul_with_empty_inner_size_is_zero(cpu):
    out = nan_like((3, 4), np.float32)
    cpu.kernel(op_named("matmul"))(out, np.ones((3, 0), np.float32), np.ones((0, 4), np.float32))
    np.testing.assert_array_equal(out, 0)
    out = nan_like((3, 4), np.float32)
    cpu.kernel(op_named("dense_relu"))(out, np.ones((3, 0), np.float32), np.ones((0, 4), np.float32),
                             np.array([1, -1, 2, -2], np.float32))
    np.testing.assert_array_equal(out, np.tile([1, 0, 2, 0], (3, 1)))


def test_matmul_explains_mismatched_shapes_and_dtypes(cpu):
    with pytest.raises(ValueError, match="inner sizes"):
        cpu.kernel(op_named("matmul"))(np.empty((2, 3), np.float32), np.ones((2, 4), np.float32), np.ones((5, 3), np.float32))
    with pytest.raises(TypeError, match="float32"):
        cpu.kernel(op_named("matmul"))(np.empty((2, 3), np.float32), np.ones((2, 4), np.float64), np.ones((4, 3), np.float32))
    with pytest.raises(ValueError, match="one value per output column"):
        cpu.kernel(op_named("dense"))(np.empty((2, 3), np.float32), np.ones((2, 4), np.float32), np.ones((4, 3), np.float32),
                            np.ones(4, np.float32))


# ----------------------------------------------------------------------------------------------------------------
# convolution kernels


def output_size(size, kernel, lo, hi, stride, dilation):
    return (size + lo + hi - dilation * (kernel - 1) - 1) // stride + 1


@st.composite
def conv_cases(draw, max_size=11):
    """A valid conv2d: groups (depthwise included), asymmetric padding, stride, dilation, both dtypes."""
    groups = draw(st.sampled_from([1, 1, 2, 3]))
    c_per_group = draw(st.integers(1, 3))
    k_per_group = draw(st.sampled_from([1, 2, 3, 5]))
    depthwise = draw(st.booleans()) and groups > 1
    if depthwise:
        c_per_group, k_per_group = 1, draw(st.sampled_from([1, 2]))
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    padding = tuple((draw(st.integers(0, 2)), draw(st.integers(0, 2))) for _ in range(2))
    h = draw(st.integers(max(1, dilation[0] * (kh - 1) + 1 - sum(padding[0])), max_size))
    w = draw(st.integers(max(1, dilation[1] * (kw - 1) + 1 - sum(padding[1])), max_size))
    n = draw(st.integers(1, 4))
    x_shape = (n, c_per_group * groups, h, w)
    w_shape = (k_per_group * groups, c_per_group, kh, kw)
    y_shape = (n, w_shape[0], output_size(h, kh, *padding[0], stride[0], dilation[0]),
               output_size(w, kw, *padding[1], stride[1], dilation[1]))
    params = {"stride": stride, "padding": padding, "dilation": dilation, "groups": groups}
    return x_shape, w_shape, y_shape, params, draw(DTYPES), draw(st.integers(0, 2 ** 31))


def forward_algorithms(w_shape, params, dtype):
    """Every algorithm the forward kernel accepts for this layer."""
    blas = "sgemm" if dtype == np.float32 else "dgemm"
    algorithms = ["direct", "im2col+" + blas, "batched-im2col+" + blas]
    pointwise = w_shape[2:] == (1, 1) and params["stride"] == (1, 1) and params["padding"] == ((0, 0), (0, 0))
    return algorithms + ([blas] if pointwise else [])


@SETTINGS
@given(conv_cases())
def test_conv2d_forward_every_algorithm_matches_reference(cpu, case):
    x_shape, w_shape, y_shape, params, dtype, seed = case
    rng = np.random.default_rng(seed)
    x, w = rng.standard_normal(x_shape).astype(dtype), rng.standard_normal(w_shape).astype(dtype)
    b = rng.standard_normal(w_shape[0]).astype(dtype)
    expected = nan_like(y_shape, dtype)
    ref_conv.conv2d(expected, x, w, b, **params)
    for algorithm in forward_algorithms(w_shape, params, dtype) + [None]:
        out = nan_like(y_shape, dtype)
        cpu.kernel(op_named("conv2d"))(out, x, w, b, algorithm=algorithm, **params)
        assert_close(out, expected)
        out = nan_like(y_shape, dtype)
        cpu.kernel(op_named("conv2d_relu"))(out, x, w, b, algorithm=algorithm, **params)
        assert_close(out, np.maximum(expected, 0))
    no_bias = nan_like(y_shape, dtype)
    cpu.kernel(op_named("conv2d"))(no_bias, x, w, **params)
    assert_close(no_bias, expected - b.reshape(1, -1, 1, 1))


@SETTINGS
@given(conv_cases())
def test_conv2d_gradients_match_reference(cpu, case):
    x_shape, w_shape, y_shape, params, dtype, seed = case
    rng = np.random.default_rng(seed)
    x, w = rng.standard_normal(x_shape).astype(dtype), rng.standard_normal(w_shape).astype(dtype)
    dy = rng.standard_normal(y_shape).astype(dtype)
    for name, inputs, shape in (("conv2d_grad_input", (dy, w), x_shape), ("conv2d_grad_weight", (dy, x), w_shape)):
        expected = nan_like(shape, dtype)
        getattr(ref_conv, name)(expected, *inputs, **params)
        out = nan_like(shape, dtype)
        cpu.kernel(op_named(name))(out, *inputs, **params)
        assert_close(out, expected)


@SETTINGS
@given(conv_cases(max_size=8))
def test_conv_kernels_run_in_the_workspace_the_plan_sizes(cpu, case):
    """The WORKSPACE rule's bytes (what the memory plan hands the step) are enough; a byte less than one thread's
    slot is refused with an explanation instead of writing past the end."""
    x_shape, w_shape, y_shape, params, dtype, seed = case
    rng = np.random.default_rng(seed)
    x, w = rng.standard_normal(x_shape).astype(dtype), rng.standard_normal(w_shape).astype(dtype)
    dy = rng.standard_normal(y_shape).astype(dtype)
    steps = (("conv2d", (x, w), [x_shape, w_shape], y_shape),
             ("conv2d_grad_input", (dy, w), [y_shape, w_shape], x_shape),
             ("conv2d_grad_weight", (dy, x), [y_shape, x_shape], w_shape))
    for name, inputs, in_shapes, out_shape in steps:
        chosen = cpu.specialize(op_named(name), dict(params), in_shapes, out_shape, np.dtype(dtype))
        nbytes = cpu.workspace_nbytes(op_named(name), chosen, in_shapes, out_shape, np.dtype(dtype))
        expected, out = nan_like(out_shape, dtype), nan_like(out_shape, dtype)
        cpu.kernel(op_named(name))(expected, *inputs, **params)
        workspace = np.full(nbytes + 64, 0xFF, np.uint8)     # garbage in it must not matter
        cpu.kernel(op_named(name))(out, *inputs, **dict(chosen, workspace=workspace[:nbytes]))
        np.testing.assert_array_equal(out, expected)
        np.testing.assert_array_equal(workspace[nbytes:], 0xFF)
        if nbytes:
            with pytest.raises(ValueError, match="workspace"):
                cpu.kernel(op_named(name))(out, *inputs, **dict(chosen, workspace=workspace[:nbytes // max(x_shape[0], 1) - 1]))


@st.composite
def batched_cases(draw):
    """A conv_cases layer with up to 9 images, and the images per tile for `batched`: None (the kernel's choice),
    or 1 to N + 1, so that N is often not a multiple of it and the tiles differ in size."""
    x_shape, w_shape, y_shape, params, dtype, seed = draw(conv_cases(max_size=9))
    n = draw(st.integers(1, 9))
    tile_images = draw(st.one_of(st.none(), st.integers(1, n + 1)))
    return (n,) + x_shape[1:], w_shape, (n,) + y_shape[1:], params, dtype, seed, tile_images


@SETTINGS
@given(batched_cases())
def test_batched_algorithm_matches_reference_in_every_direction(cpu, case):
    """batched-im2col / batched-col2im forced on any layer (groups, stride, dilation, asymmetric padding, both dtypes),
    any tile size, in the workspace the plan sizes for it: prefilled with garbage, and not a byte past its end
    written; the forward with and without bias and ReLU (the epilogue fused into the copy out of the tile)."""
    x_shape, w_shape, y_shape, params, dtype, seed, tile_images = case
    rng = np.random.default_rng(seed)
    x, w = rng.standard_normal(x_shape).astype(dtype), rng.standard_normal(w_shape).astype(dtype)
    b, dy = rng.standard_normal(w_shape[0]).astype(dtype), rng.standard_normal(y_shape).astype(dtype)
    blas = "sgemm" if dtype == np.float32 else "dgemm"
    steps = (("conv2d", (x, w, b), [x_shape, w_shape, (w_shape[0],)], y_shape, "batched-im2col+"),
             ("conv2d", (x, w), [x_shape, w_shape], y_shape, "batched-im2col+"),
             ("conv2d_relu", (x, w, b), [x_shape, w_shape, (w_shape[0],)], y_shape, "batched-im2col+"),
             ("conv2d_grad_input", (dy, w), [y_shape, w_shape], x_shape, "batched-col2im+"),
             ("conv2d_grad_weight", (dy, x), [y_shape, x_shape], w_shape, "batched-im2col+"))
    for name, inputs, in_shapes, out_shape, algorithm in steps:
        expected = nan_like(out_shape, dtype)
        getattr(ref_conv, name.removesuffix("_relu"))(expected, *inputs, **params)
        if name == "conv2d_relu":
            expected = np.maximum(expected, 0)
        chosen = dict(params, algorithm=algorithm + blas, tile_images=tile_images)
        nbytes = cpu.workspace_nbytes(op_named(name), chosen, in_shapes, out_shape, np.dtype(dtype))
        workspace = np.full(nbytes + 64, 0xFF, np.uint8)
        out = nan_like(out_shape, dtype)
        cpu.kernel(op_named(name))(out, *inputs, **dict(chosen, workspace=workspace[:nbytes]))
        assert_close(out, expected)
        np.testing.assert_array_equal(workspace[nbytes:], 0xFF)


def test_batched_unfolding_of_a_tap_that_sees_only_left_padding(cpu):
    """Padding 2 on the left, a 4-tap row dilated by 2, one output column: the first tap sees padding at every output
    position. Its zero row must end at the image's last column: in a tile, the next columns belong to other images
    (a regression: the unfolding wrote first_inside = 2 zeros into a 1-column row)."""
    params = {"stride": (1, 1), "padding": ((0, 0), (2, 0)), "dilation": (1, 2), "groups": 1}
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal((3, 1, 1, 5)).astype(np.float32), rng.standard_normal((1, 1, 1, 4)).astype(np.float32)
    dy = rng.standard_normal((3, 1, 1, 1)).astype(np.float32)
    for name, inputs, shape in (("conv2d", (x, w), (3, 1, 1, 1)), ("conv2d_grad_weight", (dy, x), w.shape)):
        expected, out = nan_like(shape, np.float32), nan_like(shape, np.float32)
        getattr(ref_conv, name)(expected, *inputs, **params)
        cpu.kernel(op_named(name))(out, *inputs, algorithm="batched-im2col+sgemm", **params)
        assert_close(out, expected)


def test_batched_tiles_share_the_batch_evenly_and_stay_within_the_slot():
    """Tile t holds the images ⌊t·N / tiles⌋ ≤ n < ⌊(t+1)·N / tiles⌋: together every image once, none more than B
    (what a slot holds), and as many tiles as threads or a multiple of that."""
    from graphnet._ext import conv
    for images in range(1, 40):
        for tile_images in range(1, images + 2):
            for threads in (1, 2, 3, 4):
                tiles = conv.batch_tiles(images, tile_images, threads)
                starts = [t * images // tiles for t in range(tiles + 1)]
                sizes = np.diff(starts)
                assert starts[-1] == images and sizes.min() >= 1 and sizes.max() <= tile_images
                assert tiles % threads == 0 or tiles == images
                assert tiles * min(tile_images, images) >= images


def test_batched_kernels_explain_a_bad_tile_size(cpu):
    params = {"stride": (1, 1), "padding": ((0, 0), (0, 0)), "dilation": (1, 1), "groups": 1}
    x, w = np.ones((2, 2, 5, 5), np.float32), np.ones((3, 2, 3, 3), np.float32)
    with pytest.raises(ValueError, match="tile_images=0"):
        cpu.kernel(op_named("conv2d"))(np.empty((2, 3, 3, 3), np.float32), x, w, algorithm="batched-im2col+sgemm",
                             tile_images=0, **params)


# the forward pass of a float32 layer whose output channels fill the vector lanes runs the blocked direct kernels
# where this processor has AVX-512 or AVX2 + FMA (blocked_conv.worthwhile), else im2col + sgemm
BLOCKED = "blocked" if blocked_conv.LANES else "im2col+sgemm"


@pytest.mark.parametrize("layer, expected, expected_grads", [
    (((64, 1, 28, 28), (6, 1, 5, 5), 2, 1), "im2col+sgemm", ("col2im+dgemm", "im2col+dgemm")),        # LeNet C1
    (((64, 6, 14, 14), (16, 6, 5, 5), 0, 1), BLOCKED, ("col2im+dgemm", "im2col+dgemm")),              # LeNet C3
    (((8, 32, 16, 16), (32, 1, 3, 3), 1, 32), "direct", ("col2im+dgemm", "im2col+dgemm")),            # depthwise
    (((8, 32, 16, 16), (64, 32, 1, 1), 0, 1), "sgemm", ("dgemm", "dgemm")),                          # pointwise
    # 3×3 stride 1 with enough channels: Winograd forward and for the input gradient; the weight gradient unfolds
    (((64, 64, 8, 8), (64, 64, 3, 3), 1, 1), "winograd", ("winograd", "batched-im2col+dgemm")),
    (((64, 128, 4, 4), (128, 128, 3, 3), 1, 1), "winograd", ("winograd", "batched-im2col+dgemm")),
    (((64, 64, 16, 16), (64, 64, 3, 3), 1, 1), "winograd", ("winograd", "im2col+dgemm")),
    (((1, 64, 8, 8), (64, 64, 3, 3), 1, 1), "winograd", ("winograd", "im2col+dgemm")),            # one image
    (((64, 16, 8, 8), (32, 16, 3, 3), 1, 1), BLOCKED, ("col2im+dgemm", "im2col+dgemm")),   # too few for Winograd
    (((64, 3, 32, 32), (32, 3, 3, 3), 1, 1), "im2col+sgemm", ("col2im+dgemm", "im2col+dgemm")),   # RGB: 27 taps
    (((8, 256, 4, 4), (256, 128, 3, 3), 1, 2), "batched-im2col+sgemm",                 # grouped: no Winograd
     ("batched-col2im+dgemm", "batched-im2col+dgemm")),
])
def test_specialize_chooses_the_algorithm_per_layer_shape(cpu, layer, expected, expected_grads):
    x_shape, w_shape, pad, groups = layer
    params = {"stride": (1, 1), "padding": ((pad, pad), (pad, pad)), "dilation": (1, 1), "groups": groups}
    y_shape = (x_shape[0], w_shape[0], x_shape[2] + 2 * pad - w_shape[2] + 1, x_shape[3] + 2 * pad - w_shape[3] + 1)
    chosen = cpu.specialize(op_named("conv2d"), params, [x_shape, w_shape], y_shape, np.dtype(np.float32))
    assert chosen["algorithm"] == expected
    assert cpu.kernel_label(op_named("conv2d"), chosen) == f"cpu.conv2d[{expected}]"
    grad = cpu.specialize(op_named("conv2d_grad_input"), params, [y_shape, w_shape], x_shape, np.dtype(np.float64))
    grad_weight = cpu.specialize(op_named("conv2d_grad_weight"), params, [y_shape, x_shape], w_shape, np.dtype(np.float64))
    assert (grad["algorithm"], grad_weight["algorithm"]) == expected_grads


def test_a_strided_or_dilated_3x3_layer_does_not_use_winograd(cpu):
    for stride, dilation in (((2, 2), (1, 1)), ((1, 1), (2, 2))):
        params = {"stride": stride, "padding": ((1, 1), (1, 1)), "dilation": dilation, "groups": 1}
        x_shape, w_shape = (64, 64, 32, 32), (64, 64, 3, 3)
        out = 16 if stride == (2, 2) else 30
        chosen = cpu.specialize(op_named("conv2d"), params, [x_shape, w_shape], (64, 64, out, out), np.dtype(np.float32))
        assert chosen["algorithm"] != "winograd"


def test_conv_kernels_explain_bad_calls(cpu):
    params = {"stride": (1, 1), "padding": ((0, 0), (0, 0)), "dilation": (1, 1), "groups": 1}
    x, w = np.ones((1, 2, 5, 5), np.float32), np.ones((3, 2, 3, 3), np.float32)
    with pytest.raises(ValueError, match=r"floor\(\(H"):
        cpu.kernel(op_named("conv2d"))(np.empty((1, 3, 4, 4), np.float32), x, w, **params)
    with pytest.raises(ValueError, match="1x1 kernel"):
        cpu.kernel(op_named("conv2d"))(np.empty((1, 3, 3, 3), np.float32), x, w, algorithm="sgemm", **params)
    with pytest.raises(ValueError, match="unknown algorithm"):
        cpu.kernel(op_named("conv2d_grad_input"))(np.empty((1, 2, 5, 5), np.float32), np.ones((1, 3, 3, 3), np.float32), w,
                                        algorithm="direct", **params)
    with pytest.raises(ValueError, match="one value per output channel"):
        cpu.kernel(op_named("conv2d"))(np.empty((1, 3, 3, 3), np.float32), x, w, np.ones(2, np.float32), **params)


# ----------------------------------------------------------------------------------------------------------------
# pooling kernels


@st.composite
def pool_cases(draw):
    """Any window, stride and (asymmetric) padding; ceil_mode (a partial last window: the divisor tables, and no
    tiled path) and count_include_pad drawn too."""
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    tiled = draw(st.booleans())                # window = stride, no padding: the fast 2x2 / tiled paths
    if tiled:
        stride, padding = (kh, kw), ((0, 0), (0, 0))
    else:
        stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
        padding = tuple((draw(st.integers(0, k // 2)), draw(st.integers(0, k // 2))) for k in (kh, kw))
    ceil_mode = draw(st.booleans())
    h = draw(st.integers(max(1, kh - sum(padding[0])), 12))
    w = draw(st.integers(max(1, kw - sum(padding[1])), 12))
    x_shape = (draw(st.integers(1, 3)), draw(st.integers(1, 4)), h, w)
    y_shape = x_shape[:2] + tuple(pool_output_size(size, k, lo, hi, step, axis, ceil_mode=ceil_mode)
                                  for size, k, (lo, hi), step, axis in zip((h, w), (kh, kw), padding, stride,
                                                                           ("height", "width")))
    params = {"kernel_size": (kh, kw), "stride": stride, "padding": padding, "ceil_mode": ceil_mode,
              "count_include_pad": draw(st.booleans())}
    return x_shape, y_shape, params, draw(DTYPES), draw(st.integers(0, 2 ** 31)), draw(st.booleans())


def kernel_params(kind, params):
    """The params of a max or avg pooling kernel: count_include_pad is the average's alone."""
    return params if kind == "avg" else {k: v for k, v in params.items() if k != "count_include_pad"}


def pool_input(x_shape, dtype, seed, ties):
    """Random values, or small integers so that windows hold ties (the gradient must go to the first max)."""
    rng = np.random.default_rng(seed)
    if ties:
        return rng.integers(-2, 3, x_shape).astype(dtype)
    return rng.standard_normal(x_shape).astype(dtype)


@SETTINGS
@given(pool_cases())
def test_pooling_forward_and_backward_match_reference(cpu, case):
    x_shape, y_shape, params, dtype, seed, ties = case
    x = pool_input(x_shape, dtype, seed, ties)
    dy = np.random.default_rng(seed + 1).standard_normal(y_shape).astype(dtype)
    for kind in ("max", "avg"):
        p = kernel_params(kind, params)
        expected_y, y = nan_like(y_shape, dtype), nan_like(y_shape, dtype)
        getattr(ref_pool, f"{kind}_pool2d")(expected_y, x, **p)
        cpu.kernel(op_named(f"{kind}_pool2d"))(y, x, **p)
        assert_close(y, expected_y)
        grad_inputs = (dy, x, expected_y) if kind == "max" else (dy,)
        expected_dx, dx = nan_like(x_shape, dtype), nan_like(x_shape, dtype)
        getattr(ref_pool, f"{kind}_pool2d_grad")(expected_dx, *grad_inputs, **p)
        cpu.kernel(op_named(f"{kind}_pool2d_grad"))(dx, *grad_inputs, **p)
        assert_close(dx, expected_dx)


@pytest.mark.parametrize("params", [
    {"kernel_size": (2, 2), "stride": (2, 2), "padding": ((0, 0), (0, 0))},     # the written-out 2x2 path
    {"kernel_size": (3, 3), "stride": (2, 2), "padding": ((1, 1), (1, 1))},     # overlapping, padded
])
def test_max_pooling_follows_nan_infinity_and_tie_rules(cpu, params):
    """NaN wins the max and then passes no gradient; +inf beside -inf is +inf (not NaN); ties and all-equal
    windows route dy to the first position in row-major order; padding never wins over negative values."""
    x = np.full((1, 1, 6, 6), -5.0, np.float32)
    x[0, 0, 0, 0] = np.nan
    x[0, 0, 0, 2], x[0, 0, 0, 3] = np.inf, -np.inf
    x[0, 0, 2, 2:4] = 7.0                      # a tie
    x[0, 0, 4:6, 0:2] = -np.inf                # an all -inf window
    y_shape = (1, 1) + tuple((6 + sum(p) - k) // s + 1 for k, s, p in
                             zip(params["kernel_size"], params["stride"], params["padding"]))
    expected_y, y = nan_like(y_shape, np.float32), nan_like(y_shape, np.float32)
    ref_pool.max_pool2d(expected_y, x, **params)
    cpu.kernel(op_named("max_pool2d"))(y, x, **params)
    np.testing.assert_array_equal(y, expected_y)                   # NaN where the reference has NaN, and inf
    dy = np.arange(1, y.size + 1, dtype=np.float32).reshape(y_shape)
    expected_dx, dx = nan_like(x.shape, np.float32), nan_like(x.shape, np.float32)
    ref_pool.max_pool2d_grad(expected_dx, dy, x, expected_y, **params)
    cpu.kernel(op_named("max_pool2d_grad"))(dx, dy, x, y, **params)
    np.testing.assert_array_equal(dx, expected_dx)


def test_pooling_explains_a_wrong_output_shape(cpu):
    params = {"kernel_size": (2, 2), "stride": (2, 2), "padding": ((0, 0), (0, 0))}
    with pytest.raises(ValueError, match=r"floor\(\(H \+ pt \+ pb"):
        cpu.kernel(op_named("max_pool2d"))(np.empty((1, 1, 3, 3), np.float32), np.ones((1, 1, 4, 4), np.float32), **params)
    with pytest.raises(ValueError, match=r"ceil\(\(H \+ pt \+ pb.* = \(1, 1, 3, 3\), not \(1, 1, 2, 2\)"):
        cpu.kernel(op_named("avg_pool2d"))(np.empty((1, 1, 2, 2), np.float32), np.ones((1, 1, 5, 5), np.float32), **params,
                                 ceil_mode=True)


def test_a_partial_ceil_mode_window_averages_what_it_covers(cpu):
    """x = 1 … 6 in a row, 1×3 windows with stride 2, one column of padding on each side, ceil_mode: four windows,
    starting at columns −1, 1, 3, 5. The first holds the left padding; the last holds 6, the right padding and a
    column past it, which never counts. count_include_pad=True divides by the window's columns inside the padded
    input (3, 3, 3, 2), False by those inside the input (2, 3, 3, 1) — PyTorch's and ONNX's numbers."""
    x = np.arange(1, 7, dtype=np.float32).reshape(1, 1, 1, 6)
    for include, expected in ((True, [1, 3, 5, 3]), (False, [1.5, 3, 5, 6])):
        params = {"kernel_size": (1, 3), "stride": (1, 2), "padding": ((0, 0), (1, 1)), "ceil_mode": True,
                  "count_include_pad": include}
        y, reference = nan_like((1, 1, 1, 4), np.float32), nan_like((1, 1, 1, 4), np.float32)
        cpu.kernel(op_named("avg_pool2d"))(y, x, **params)
        ref_pool.avg_pool2d(reference, x, **params)
        np.testing.assert_array_equal(y.ravel(), expected)
        np.testing.assert_array_equal(reference.ravel(), expected)
        dx = nan_like(x.shape, np.float32)
        cpu.kernel(op_named("avg_pool2d_grad"))(dx, np.ones((1, 1, 1, 4), np.float32), **params)
        shares = 1 / np.array([3, 3, 3, 2] if include else [2, 3, 3, 1], np.float32)
        np.testing.assert_allclose(dx.ravel(), [shares[0], shares[0] + shares[1], shares[1], shares[1] + shares[2],
                                                shares[2], shares[2] + shares[3]], rtol=1e-6)


# ----------------------------------------------------------------------------------------------------------------
# the fused pool gradient → relu_grad kernels (MaxPool2dGradReluGrad, AvgPool2dGradReluGrad in pool.pyx)


def overlapping_pool_case(draw):
    """A 3×3 window with stride 2 (windows overlap: a position can win in several), padded by 0 or 1."""
    pad = draw(st.integers(0, 1))
    padding = ((pad, pad), (pad, pad))
    h, w = draw(st.integers(3 - 2 * pad, 12)), draw(st.integers(3 - 2 * pad, 12))
    x_shape = (draw(st.integers(1, 3)), draw(st.integers(1, 4)), h, w)
    y_shape = x_shape[:2] + ((h + 2 * pad - 3) // 2 + 1, (w + 2 * pad - 3) // 2 + 1)
    params = {"kernel_size": (3, 3), "stride": (2, 2), "padding": padding}
    return x_shape, y_shape, params, draw(DTYPES), draw(st.integers(0, 2 ** 31)), draw(st.booleans())


@st.composite
def fused_pool_cases(draw):
    """A pool case (any window, stride and padding; the overlapping 3×3/2 drawn often) with
    relu_y  "x": the pool's input itself, as in a compiled program (max: the window's dy is masked before routing);
            "copy": equal values elsewhere in memory, "other": unrelated values (the plane is masked afterwards);
    integer dy or not (integers sum exactly, so the fused kernel must equal the reference bit for bit), and
    NaN and ±inf in dy or not (NaN · 0 and inf · 0 are NaN, −1 · 0 is −0: relu_grad is a multiplication)."""
    case = overlapping_pool_case(draw) if draw(st.booleans()) else draw(pool_cases())
    return case + (draw(st.sampled_from(["x", "copy", "other"])), draw(st.booleans()), draw(st.booleans()))


def fused_pool_arrays(x_shape, y_shape, dtype, seed, ties, integer_dy, special):
    """x with zeros and negative values (and ties when `ties`); dy; an unrelated relu_y with zeros and negatives."""
    rng = np.random.default_rng(seed)
    x = pool_input(x_shape, dtype, seed, ties)
    x[rng.random(x_shape) < 0.25] = 0
    dy = (rng.integers(-3, 4, y_shape) if integer_dy else rng.standard_normal(y_shape)).astype(dtype)
    if special:
        flat = dy.reshape(-1)
        for value in (np.nan, np.inf, -np.inf):
            flat[rng.integers(0, flat.size, max(1, flat.size // 8))] = value
    other = rng.integers(-1, 2, x_shape).astype(dtype)
    return x, dy, other


def assert_same_bits(actual, expected):
    """Equal values, NaN where `expected` has NaN, and the same sign of zero."""
    assert actual.shape == expected.shape and actual.dtype == expected.dtype
    np.testing.assert_array_equal(actual, expected)
    numbers = ~np.isnan(expected)
    np.testing.assert_array_equal(np.signbit(actual[numbers]), np.signbit(expected[numbers]))


def assert_close_with_specials(actual, expected):
    """NaN and ±inf exactly where `expected` has them; elsewhere as assert_close."""
    assert actual.shape == expected.shape and actual.dtype == expected.dtype
    finite = np.isfinite(expected)
    np.testing.assert_array_equal(actual[~finite], expected[~finite])
    assert_close(actual[finite], expected[finite])


@SETTINGS
@given(fused_pool_cases())
def test_fused_pool_grad_relu_equals_the_two_kernels_in_a_row(cpu, case):
    """max_pool2d_grad_relu(dy, x, y, relu_y) = relu_grad(max_pool2d_grad(dy, x, y), relu_y), and the same for avg:
    bit for bit against the cpu kernels in a row; against the reference pair bit for bit where the sums are exact
    (integer dy, max pooling), else within the usual tolerance."""
    x_shape, y_shape, params, dtype, seed, ties, relu_y_is, integer_dy, special = case
    x, dy, other = fused_pool_arrays(x_shape, y_shape, dtype, seed, ties, integer_dy, special)
    relu_y = {"x": x, "copy": x.copy(), "other": other}[relu_y_is]
    y = nan_like(y_shape, dtype)
    ref_pool.max_pool2d(y, x, **kernel_params("max", params))
    for kind, grad_inputs in (("max", (dy, x, y)), ("avg", (dy,))):
        p = kernel_params(kind, params)
        in_row, grad = nan_like(x_shape, dtype), nan_like(x_shape, dtype)
        cpu.kernel(op_named(f"{kind}_pool2d_grad"))(grad, *grad_inputs, **p)
        cpu.kernel(op_named("relu_grad"))(in_row, grad, relu_y)
        reference, ref_grad = nan_like(x_shape, dtype), nan_like(x_shape, dtype)
        with np.errstate(invalid="ignore"):                        # inf − inf, inf · 0: NaN, as intended
            getattr(ref_pool, f"{kind}_pool2d_grad")(ref_grad, *grad_inputs, **p)
            ref_relu_grad(reference, ref_grad, relu_y)
        fused = nan_like(x_shape, dtype)
        cpu.kernel(op_named(f"{kind}_pool2d_grad_relu"))(fused, *grad_inputs, relu_y, **p)
        assert_same_bits(fused, in_row)
        if kind == "max" and integer_dy:
            assert_same_bits(fused, reference)
        else:
            assert_close_with_specials(fused, reference)


@pytest.mark.parametrize("params", [
    {"kernel_size": (2, 2), "stride": (2, 2), "padding": ((0, 0), (0, 0))},     # by window, written out
    {"kernel_size": (3, 3), "stride": (3, 3), "padding": ((0, 0), (0, 0))},     # by window, tiled
    {"kernel_size": (3, 3), "stride": (2, 2), "padding": ((1, 1), (1, 1))},     # by plane: overlapping, padded
])
def test_fused_max_pool_grad_relu_follows_nan_infinity_tie_and_zero_rules(cpu, params):
    """relu_y = x: a NaN window passes nothing; a winner at 0 or below passes dy · 0 (−0 for a negative dy, NaN for
    NaN or ±inf); ties route to the first position; +inf wins; positions no window covers are +0."""
    x = np.full((1, 1, 11, 11), -5.0, np.float32)
    x[0, 0, 0, 0] = np.nan
    x[0, 0, 0, 2], x[0, 0, 0, 3] = np.inf, -np.inf
    x[0, 0, 2, 2:4] = 7.0                      # a tie
    x[0, 0, 4:6, 0:2] = 0.0                    # windows whose max is 0
    x[0, 0, 3, 5] = -0.0
    y_shape = (1, 1) + tuple((11 + sum(p) - k) // s + 1 for k, s, p in
                             zip(params["kernel_size"], params["stride"], params["padding"]))
    y = np.empty(y_shape, np.float32)
    ref_pool.max_pool2d(y, x, **params)
    dy = (np.arange(1, y.size + 1) * np.where(np.arange(y.size) % 2, -1, 1)).astype(np.float32)
    dy[-3:] = (np.nan, np.inf, -np.inf)
    dy = dy.reshape(y_shape)
    expected, grad = np.empty_like(x), np.empty_like(x)
    with np.errstate(invalid="ignore"):
        ref_pool.max_pool2d_grad(grad, dy, x, y, **params)
        ref_relu_grad(expected, grad, x)
    fused = nan_like(x.shape, np.float32)
    cpu.kernel(op_named("max_pool2d_grad_relu"))(fused, dy, x, y, x, **params)
    assert_same_bits(fused, expected)
    assert np.isnan(fused).any() and np.signbit(fused[fused == 0]).any()          # both rules were exercised
    if params["stride"] == params["kernel_size"]:                                   # the last row: in no window
        assert not np.signbit(fused[0, 0, -1]).any() and not fused[0, 0, -1].any()


def test_fused_pool_grad_relu_explains_mismatched_shapes_and_dtypes(cpu):
    params = {"kernel_size": (2, 2), "stride": (2, 2), "padding": ((0, 0), (0, 0))}
    x, y = np.ones((1, 2, 4, 4), np.float32), np.ones((1, 2, 2, 2), np.float32)
    with pytest.raises(ValueError, match="relu_y"):
        cpu.kernel(op_named("max_pool2d_grad_relu"))(np.empty_like(x), y, x, y, np.ones((1, 2, 4, 3), np.float32), **params)
    with pytest.raises(ValueError, match="relu_y"):
        cpu.kernel(op_named("avg_pool2d_grad_relu"))(np.empty_like(x), y, np.ones((1, 2, 4, 3), np.float32), **params)
    with pytest.raises(TypeError, match="float32"):
        cpu.kernel(op_named("max_pool2d_grad_relu"))(np.empty_like(x), y, x, y, x.astype(np.float64), **params)


# ----------------------------------------------------------------------------------------------------------------
# through compiled programs: cpu against reference, forward and gradients, with the fused steps


def run_on(device, build, feeds_of):
    with gn.Graph():
        fetches, placeholders = build()
        program = gn.compile(fetches, device=device)
    return program, program.run(feeds_of(placeholders))


@GRAPH_SETTINGS
@given(conv_cases(max_size=9), st.sampled_from(["max", "avg", None]))
def test_conv_relu_pool_program_and_gradients_match_reference(case, pooling):
    """conv2d(+bias) → relu → pool → sum, and d/dx, d/dw, d/db: the conv and the relu fuse into one step."""
    x_shape, w_shape, y_shape, params, dtype, seed = case
    rng = np.random.default_rng(seed)
    xv = rng.standard_normal(x_shape).astype(dtype)
    wv, bv = rng.standard_normal(w_shape).astype(dtype), rng.standard_normal(w_shape[0]).astype(dtype)
    pool_ok = pooling and min(y_shape[2:]) >= 2

    def build():
        x = gn.placeholder((None,) + x_shape[1:], dtype=np.dtype(dtype).name, name="x")
        w, b = gn.variable(wv, name="w"), gn.variable(bv, name="b")
        h = gn.relu(gn.conv2d(x, w, b, stride=params["stride"], padding=params["padding"],
                              dilation=params["dilation"], groups=params["groups"]))
        if pool_ok:
            h = (gn.max_pool2d if pooling == "max" else gn.avg_pool2d)(h, 2)
        loss = gn.sum(h * h)
        return [loss] + gn.gradients(loss, [x, w, b]), x

    program, results = run_on("cpu", build, lambda x: {x: xv})
    _, expected = run_on("reference", build, lambda x: {x: xv})
    for actual, reference in zip(results, expected):
        assert_close(np.asarray(actual), np.asarray(reference))
    schedule = str(program)
    assert "conv2d+relu" in schedule and "cpu.conv2d_relu[" in schedule
    assert "cpu.conv2d_grad_weight[" in schedule
    if pool_ok:
        assert f"{pooling}_pool2d_grad+relu_grad" in schedule and f"cpu.{pooling}_pool2d_grad_relu" in schedule


@st.composite
def relu_pool_program_cases(draw):
    """relu → max or avg pool with any window, stride (the overlapping 3×3/2 drawn often) and symmetric padding."""
    kind = draw(st.sampled_from(["max", "avg"]))
    if draw(st.booleans()):
        kernel, stride, pad = (3, 3), (2, 2), draw(st.integers(0, 1))
    else:
        kernel = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
        stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
        pad = draw(st.integers(0, min(kernel) // 2))
    h = draw(st.integers(max(1, kernel[0] - 2 * pad), 12))
    w = draw(st.integers(max(1, kernel[1] - 2 * pad), 12))
    x_shape = (draw(st.integers(1, 3)), draw(st.integers(1, 4)), h, w)
    return x_shape, kind, kernel, stride, pad, draw(DTYPES), draw(st.integers(0, 2 ** 31)), draw(st.booleans())


@GRAPH_SETTINGS
@given(relu_pool_program_cases())
def test_relu_pool_backward_runs_as_one_fused_step_and_matches_reference(case):
    """d/dx of sum(pool(relu(x)) · r): the pool gradient and relu_grad run as one step, whose values match the
    reference. x holds zeros and negative values (so the relu output holds zeros), and ties when `ties`."""
    x_shape, kind, kernel, stride, pad, dtype, seed, ties = case
    xv = pool_input(x_shape, dtype, seed, ties)
    rng = np.random.default_rng(seed + 1)
    xv[rng.random(x_shape) < 0.25] = 0
    pool = gn.max_pool2d if kind == "max" else gn.avg_pool2d

    def build():
        x = gn.placeholder(x_shape, dtype=np.dtype(dtype).name, name="x")
        pooled = pool(gn.relu(x), kernel, stride=stride, padding=pad)
        r = gn.constant(np.random.default_rng(seed + 2).standard_normal(pooled.shape).astype(dtype))
        loss = gn.sum(pooled * r)
        return [loss] + gn.gradients(loss, [x]), x

    program, results = run_on("cpu", build, lambda x: {x: xv})
    _, expected = run_on("reference", build, lambda x: {x: xv})
    for actual, reference in zip(results, expected):
        assert_close(np.asarray(actual), np.asarray(reference))
    schedule = str(program)
    assert f"{kind}_pool2d_grad+relu_grad" in schedule and f"cpu.{kind}_pool2d_grad_relu" in schedule, schedule


def test_lenet_training_step_fuses_both_pool_gradients_with_relu_grad():
    """LeNet-5's training step: the backward pass of each conv → relu → max_pool2d layer runs
    cpu.max_pool2d_grad_relu, no pool gradient or relu_grad runs alone (the dense layers' run in their GEMMs,
    cpu.matmul_relu_grad), and the updated weights equal the reference's."""
    rng = np.random.default_rng(0)
    xv = rng.standard_normal((4, 1, 28, 28)).astype(np.float32)
    labels = rng.integers(0, 10, 4).astype(np.int64)
    shapes = [(6, 1, 5, 5), (6,), (16, 6, 5, 5), (16,), (400, 120), (120,), (120, 84), (84,), (84, 10), (10,)]
    init = [(0.2 * rng.standard_normal(s)).astype(np.float32) for s in shapes]

    def build():
        x = gn.placeholder((None, 1, 28, 28), name="x")
        y = gn.placeholder((None,), dtype="int64", name="y")
        p = [gn.variable(v.copy(), name=f"p{i}") for i, v in enumerate(init)]
        h = gn.max_pool2d(gn.relu(gn.conv2d(x, p[0], p[1], padding=2)), 2)
        h = gn.flatten(gn.max_pool2d(gn.relu(gn.conv2d(h, p[2], p[3])), 2))
        h = gn.relu(gn.matmul(h, p[4]) + p[5])
        h = gn.relu(gn.matmul(h, p[6]) + p[7])
        loss = gn.softmax_cross_entropy(gn.matmul(h, p[8]) + p[9], y)
        grads = gn.gradients(loss, p)
        return [loss] + [gn.assign(v, v - 0.1 * g) for v, g in zip(p, grads)], (x, y)

    program, results = run_on("cpu", build, lambda p: {p[0]: xv, p[1]: labels})
    _, expected = run_on("reference", build, lambda p: {p[0]: xv, p[1]: labels})
    for actual, reference in zip(results, expected):
        assert_close(np.asarray(actual), np.asarray(reference))
    steps = [step.op_name for step in program.plan().steps]
    assert steps.count("max_pool2d_grad+relu_grad") == 2, steps
    assert "max_pool2d_grad" not in steps and "relu_grad" not in steps
    assert steps.count("matmul+relu_grad") == 2                     # the dense layers' relu_grads, in their GEMMs
    assert str(program).count("cpu.max_pool2d_grad_relu") == 2


def test_a_fetched_or_shared_pool_gradient_is_not_fused():
    """The chain fuses only where relu_grad is the pool gradient's one reader and the gradient is not fetched:
    fetching d/d(relu output), or the relu output feeding a second consumer (its gradient is then a sum), keeps
    the two steps apart, and the values still match the reference."""
    xv = np.random.default_rng(0).standard_normal((2, 3, 8, 8)).astype(np.float32)
    for variant in ("fetched", "shared"):
        def build():
            x = gn.placeholder((2, 3, 8, 8), name="x")
            h = gn.relu(x)
            loss = gn.sum(gn.max_pool2d(h, 2) * 3.0)
            if variant == "shared":
                loss = loss + gn.sum(h * h)
                return [loss] + gn.gradients(loss, [x]), x
            return [loss] + gn.gradients(loss, [x, h]), x

        program, results = run_on("cpu", build, lambda x: {x: xv})
        _, expected = run_on("reference", build, lambda x: {x: xv})
        for actual, reference in zip(results, expected):
            assert_close(np.asarray(actual), np.asarray(reference))
        schedule = str(program)
        assert "cpu.max_pool2d_grad_relu" not in schedule and "cpu.max_pool2d_grad" in schedule, schedule


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_program_runs_small_planes_batched_and_matches_reference(dtype):
    """Grouped 3×3 layers (no Winograd) of 128 channels at 6×6, then 3×3 after pooling, are where SPECIALIZE
    picks `batched` for all three kernels in both dtypes; 6 images, so that the tiles hold different numbers of
    images with two threads."""
    rng = np.random.default_rng(3)
    xv = rng.standard_normal((6, 128, 6, 6)).astype(dtype)
    w1 = (0.05 * rng.standard_normal((128, 64, 3, 3))).astype(dtype)
    w2 = (0.05 * rng.standard_normal((512, 64, 3, 3))).astype(dtype)
    bv = rng.standard_normal(128).astype(dtype)

    def build():
        x = gn.placeholder((None, 128, 6, 6), dtype=np.dtype(dtype).name, name="x")
        wa, wb, b = gn.variable(w1, name="wa"), gn.variable(w2, name="wb"), gn.variable(bv, name="b")
        h = gn.max_pool2d(gn.relu(gn.conv2d(x, wa, b, padding=1, groups=2)), 2)
        h = gn.conv2d(h, wb, padding=1, groups=2)
        loss = gn.sum(h * h)
        return [loss] + gn.gradients(loss, [x, wa, wb, b]), x

    program, results = run_on("cpu", build, lambda x: {x: xv})
    _, expected = run_on("reference", build, lambda x: {x: xv})
    for actual, reference in zip(results, expected):
        assert_close(np.asarray(actual), np.asarray(reference))
    schedule = str(program)
    blas = "sgemm" if dtype == np.float32 else "dgemm"
    for label in (f"cpu.conv2d_relu[batched-im2col+{blas}]", f"cpu.conv2d[batched-im2col+{blas}]",
                  f"cpu.conv2d_grad_input[batched-col2im+{blas}]", f"cpu.conv2d_grad_weight[batched-im2col+{blas}]"):
        assert label in schedule, schedule


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_program_runs_3x3_layers_by_winograd_and_matches_reference(dtype):
    """64 → 64 channels, 3×3, stride 1, at 8×8 then 4×4: forward and input gradient by Winograd, through the
    compiled program (plan-sized workspaces, the conv → relu fusion), against the reference."""
    rng = np.random.default_rng(4)
    xv = rng.standard_normal((6, 64, 8, 8)).astype(dtype)
    w1 = (0.05 * rng.standard_normal((64, 64, 3, 3))).astype(dtype)
    w2 = (0.05 * rng.standard_normal((128, 64, 3, 3))).astype(dtype)
    bv = rng.standard_normal(64).astype(dtype)

    def build():
        x = gn.placeholder((None, 64, 8, 8), dtype=np.dtype(dtype).name, name="x")
        wa, wb, b = gn.variable(w1, name="wa"), gn.variable(w2, name="wb"), gn.variable(bv, name="b")
        h = gn.max_pool2d(gn.relu(gn.conv2d(x, wa, b, padding=1)), 2)
        h = gn.conv2d(h, wb, padding=1)
        loss = gn.sum(h * h)
        return [loss] + gn.gradients(loss, [x, wa, wb, b]), x

    program, results = run_on("cpu", build, lambda x: {x: xv})
    _, expected = run_on("reference", build, lambda x: {x: xv})
    for actual, reference in zip(results, expected):
        assert_close(np.asarray(actual), np.asarray(reference))
    schedule = str(program)
    for label in ("cpu.conv2d_relu[winograd]", "cpu.conv2d[winograd]", "cpu.conv2d_grad_input[winograd]"):
        assert label in schedule, schedule


@GRAPH_SETTINGS
@given(st.integers(1, 16), st.integers(1, 20), st.integers(1, 20), st.integers(1, 12), DTYPES,
       st.integers(0, 2 ** 31))
def test_mlp_training_step_fuses_dense_layers_and_matches_reference(batch, n_in, hidden, n_out, dtype, seed):
    """Two dense layers, softmax cross-entropy and an SGD update: matmul → add → relu and matmul → add each run as
    one step, and the updated weights equal the reference's."""
    rng = np.random.default_rng(seed)
    xv = rng.standard_normal((batch, n_in)).astype(dtype)
    labels = rng.integers(0, n_out, batch).astype(np.int64)
    init = [rng.standard_normal(s).astype(dtype) for s in ((n_in, hidden), (hidden,), (hidden, n_out), (n_out,))]

    def build():
        x = gn.placeholder((None, n_in), dtype=np.dtype(dtype).name, name="x")
        y = gn.placeholder((None,), dtype="int64", name="y")
        params = [gn.variable(v.copy(), name=f"p{i}") for i, v in enumerate(init)]
        h = gn.relu(gn.matmul(x, params[0]) + params[1])
        loss = gn.softmax_cross_entropy(gn.matmul(h, params[2]) + params[3], y)
        grads = gn.gradients(loss, params)
        return [loss] + [gn.assign(p, p - 0.1 * g) for p, g in zip(params, grads)], (x, y)

    program, results = run_on("cpu", build, lambda p: {p[0]: xv, p[1]: labels})
    _, expected = run_on("reference", build, lambda p: {p[0]: xv, p[1]: labels})
    for actual, reference in zip(results, expected):
        assert_close(np.asarray(actual), np.asarray(reference))
    schedule = str(program)
    assert "matmul+add+relu" in schedule and "cpu.dense_relu[" in schedule
    assert "cpu.dense[" in schedule


def test_adding_a_full_matrix_is_not_fused_into_a_dense_step():
    """Dense's rule (graphnet/ops/fused.py) accepts only a bias row: matmul + (m, n) matrix stays a matmul step and an add step."""
    rng = np.random.default_rng(0)
    av, bv, cv = (rng.standard_normal(s).astype(np.float32) for s in ((4, 3), (3, 5), (4, 5)))
    with gn.Graph():
        a, b, c = gn.placeholder((4, 3), name="a"), gn.constant(bv), gn.constant(cv)
        program = gn.compile(gn.relu(gn.matmul(a, b) + c), device="cpu")
        result = program.run({a: av})
    schedule = str(program)
    assert "matmul+add" not in schedule and "cpu.matmul[sgemm]" in schedule
    assert_close(result, np.maximum(av @ bv + cv, 0))


# ----------------------------------------------------------------------------------------------------------------
# the parallel code paths, with two OpenMP threads

TWO_THREAD_CHECK = textwrap.dedent("""
    import numpy as np
    from graphnet.backends import get_backend
    import graphnet.ops.fused
    from graphnet.backends.reference import conv, linalg, pool
    from graphnet.op import REGISTRY
    cpu = get_backend("cpu")
    op_named = {op.name: op for op in reversed(REGISTRY)}.get   # reshape: the first of the two that share it
    rng = np.random.default_rng(0)
    def close(a, b):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4 * max(1.0, float(np.abs(b).max())))
    for m, k, n, ta, tb in ((300, 70, 120, False, True), (20, 90, 700, True, False), (3, 50, 40, False, False)):
        a = rng.standard_normal((k, m) if ta else (m, k)).astype(np.float32)
        b = rng.standard_normal((n, k) if tb else (k, n)).astype(np.float32)
        bias = rng.standard_normal(n).astype(np.float32)
        out, ref = np.full((m, n), np.nan, np.float32), np.empty((m, n), np.float32)
        linalg.matmul(ref, a, b, transpose_a=ta, transpose_b=tb)
        cpu.kernel(op_named("dense_relu"))(out, a, b, bias, transpose_a=ta, transpose_b=tb)
        close(out, np.maximum(ref + bias, 0))
    a, b = rng.standard_normal((6, 1, 30, 20)).astype(np.float32), rng.standard_normal((5, 20, 40)).astype(np.float32)
    out = np.full((6, 5, 30, 40), np.nan, np.float32)
    cpu.kernel(op_named("matmul"))(out, a, b, transpose_a=False, transpose_b=False)
    close(out, a @ b)
    for groups, w_shape in ((1, (8, 6, 3, 3)), (6, (6, 1, 3, 3)), (1, (8, 6, 1, 1))):
        params = dict(stride=(1, 1), padding=((1, 1), (1, 1)) if w_shape[2] == 3 else ((0, 0), (0, 0)),
                      dilation=(1, 1), groups=groups)
        x = rng.standard_normal((5, 6, 9, 9)).astype(np.float32)
        w = rng.standard_normal(w_shape).astype(np.float32)
        y = np.empty((5, w_shape[0], 9, 9), np.float32)
        conv.conv2d(y, x, w, **params)
        dy = rng.standard_normal(y.shape).astype(np.float32)
        for name, inputs, shape in (("conv2d", (x, w), y.shape), ("conv2d_grad_input", (dy, w), x.shape),
                                    ("conv2d_grad_weight", (dy, x), w.shape)):
            ref_out = np.empty(shape, np.float32)
            getattr(conv, name)(ref_out, *inputs, **params)
            out = np.full(shape, np.nan, np.float32)
            cpu.kernel(op_named(name))(out, *inputs, **params)
            close(out, ref_out)
            for tile_images in (None, 2, 3):           # batched: 5 images in tiles of 1 to 3, shared by two threads
                batched = ("batched-col2im+sgemm" if name == "conv2d_grad_input" else "batched-im2col+sgemm")
                out = np.full(shape, np.nan, np.float32)
                cpu.kernel(op_named(name))(out, *inputs, algorithm=batched, tile_images=tile_images, **params)
                close(out, ref_out)
    x = rng.standard_normal((4, 16, 32, 32)).astype(np.float32)
    for kind in ("max", "avg"):
        params = dict(kernel_size=(2, 2), stride=(2, 2), padding=((0, 0), (0, 0)))
        y, ref_y = np.full((4, 16, 16, 16), np.nan, np.float32), np.empty((4, 16, 16, 16), np.float32)
        getattr(pool, kind + "_pool2d")(ref_y, x, **params)
        cpu.kernel(op_named(kind + "_pool2d"))(y, x, **params)
        close(y, ref_y)
    r = np.maximum(x, 0)                               # the fused pool gradients: each thread its own scratch
    for params in (dict(kernel_size=(2, 2), stride=(2, 2), padding=((0, 0), (0, 0))),
                   dict(kernel_size=(3, 3), stride=(2, 2), padding=((1, 1), (1, 1)))):
        y_shape = (4, 16, 16, 16)                      # 32 → 16 either way
        y = np.empty(y_shape, np.float32)
        pool.max_pool2d(y, r, **params)
        dy = rng.standard_normal(y_shape).astype(np.float32)
        for kind, inputs in (("max", (dy, r, y)), ("avg", (dy,))):
            grad, in_row = np.empty_like(r), np.empty_like(r)
            cpu.kernel(op_named(kind + "_pool2d_grad"))(grad, *inputs, **params)
            cpu.kernel(op_named("relu_grad"))(in_row, grad, r)
            for relu_y in (r, r.copy()):
                fused = np.full_like(r, np.nan)
                cpu.kernel(op_named(kind + "_pool2d_grad_relu"))(fused, *inputs, relu_y, **params)
                assert np.array_equal(fused, in_row), kind
    print("ok")
""")


def test_parallel_paths_agree_with_two_threads():
    result = subprocess.run([sys.executable, "-c", TWO_THREAD_CHECK], capture_output=True, text=True, timeout=120,
                            env={**os.environ, "OMP_NUM_THREADS": "2"})
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr[-3000:]
