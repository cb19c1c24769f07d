"""The cuda backend against the reference, op by op and gradient by gradient, on tiny shapes.

Without a GPU this runs in Numba's CUDA simulator, which executes every GPU thread as a Python thread: slow, so
the shapes are tiny. On a machine with a GPU the same file runs on the GPU with `NUMBA_ENABLE_CUDASIM=0`.

Each check builds one small graph, compiles it for 'cuda' and for 'reference', feeds both the same values and
compares the op's output and the gradients of L = Σ y·R (R a fixed random array, so every output element
matters) with respect to every float input — which runs the op's gradient kernels and the broadcasting adjoints.
"""
import os

os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")   # must precede Numba's first import (see the README)

import numba  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import graphnet as gn  # noqa: E402
from graphnet.backends import get_backend  # noqa: E402
from graphnet.backends.cuda import cuda_status  # noqa: E402

SIMULATED = bool(numba.config.ENABLE_CUDASIM)
USABLE, WHY = cuda_status()
if not USABLE:
    raise RuntimeError(f"the cuda tests cannot run: {WHY}. Numba was probably imported before this module could "
                       "set NUMBA_ENABLE_CUDASIM=1; set it in the environment (or in conftest.py)")

from numba import cuda  # noqa: E402

from graphnet.backends.cuda import gemm  # noqa: E402
from graphnet.shapes import conv_output_size  # noqa: E402
from test_conv_pool_kernels import conv_configs, conv_out_shape  # noqa: E402
from kernels_by_name import op_named  # noqa: E402

# the simulator's NumPy scalars warn where the GPU's 64-bit arithmetic silently wraps (dropout's hash)
pytestmark = pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")

TOLERANCE = {np.dtype("float64"): dict(rtol=1e-9, atol=1e-11), np.dtype("float32"): dict(rtol=2e-4, atol=2e-5)}
rng = np.random.default_rng(0)


def random(shape, dtype="float64", low=-1.0, high=1.0):
    return rng.uniform(low, high, size=shape).astype(dtype)


def run_both(build, feeds, variables=(), with_grads=True):
    """Outputs (and input gradients) of `build` on cuda and on reference: [(cuda value, reference value), ...]."""
    results = []
    for device in ("cuda", "reference"):
        with gn.Graph():
            inputs = [gn.placeholder(v.shape, dtype=v.dtype, name=f"x{i}") for i, v in enumerate(feeds)]
            states = [gn.variable(v.copy(), name=f"v{i}") for i, v in enumerate(variables)]
            y = build(*inputs, *states)
            fetches = [y]
            if with_grads:
                projection = gn.constant(np.random.default_rng(1).uniform(-1, 1, y.shape).astype(y.dtype))
                loss = gn.sum(y * projection)
                wrt = [t for t in inputs + states if t.dtype.kind == "f"]
                fetches += gn.gradients(loss, wrt)
            program = gn.compile(fetches, device=device)
            results.append(program.run({t: v for t, v in zip(inputs, feeds)}))
    return list(zip(*results))


def assert_agree(pairs, dtype="float64"):
    tolerance = TOLERANCE[np.dtype(dtype)]
    for index, (on_cuda, on_reference) in enumerate(pairs):
        assert on_cuda.shape == on_reference.shape, f"fetch {index}"
        np.testing.assert_allclose(on_cuda, on_reference, err_msg=f"fetch {index}", **tolerance)


def check(build, *feeds, variables=(), dtype="float64", with_grads=True):
    assert_agree(run_both(build, list(feeds), list(variables), with_grads), dtype)


# ---------------------------------------------------------------------------------------------------------------
# elementwise, activations, reductions

@pytest.mark.parametrize("op", [gn.add, gn.sub, gn.mul, gn.div, gn.maximum, gn.minimum])
def test_binary_ops_broadcast_and_their_gradients(op):
    a, b = random((2, 3, 4)), random((3, 1), low=0.5, high=2.0)
    check(op, a, b)
    check(op, a, random((2, 3, 4), low=0.5, high=2.0))          # equal shapes: the map kernel


def test_maximum_ties_send_the_gradient_to_the_first_input():
    a = np.array([[1.0, 2.0, 3.0]]), np.array([[1.0, 5.0, 3.0]])
    check(gn.maximum, *a)
    check(gn.minimum, *a)


@pytest.mark.parametrize("op, low", [(gn.neg, -1), (gn.exp, -1), (gn.log, 0.1), (gn.sqrt, 0.1),
                                     (lambda x: gn.pow(x, 3.0), -1), (lambda x: gn.pow(x, 2), -1),
                                     (gn.relu, -1), (lambda x: gn.leaky_relu(x, 0.1), -1),
                                     (lambda x: gn.elu(x, 0.7), -1), (gn.sigmoid, -30), (gn.tanh, -3)])
def test_unary_ops_and_activations(op, low):
    check(op, random((3, 5), low=low, high=abs(low) + 1))


@pytest.mark.parametrize("axis", [-1, 1, 0])
@pytest.mark.parametrize("op", [gn.softmax, gn.log_softmax])
def test_softmax_along_any_axis(op, axis):
    check(lambda x: op(x, axis=axis), random((2, 3, 4), low=-5, high=5))


def test_float32_activations_chain():
    x = random((4, 6), "float32")
    check(lambda x: gn.tanh(gn.sigmoid(x) * 3.0) + gn.relu(x), x, dtype="float32")


@pytest.mark.parametrize("reduce", [gn.sum, gn.mean, gn.max])
@pytest.mark.parametrize("axis, keepdims", [(None, False), (0, False), ((0, 2), True), (1, False)])
def test_reductions_small(reduce, axis, keepdims):
    check(lambda x: reduce(x, axis=axis, keepdims=keepdims), random((3, 4, 5)))


@pytest.mark.parametrize("shape, axis", [((2, 3000), 1), ((2, 20000), None), ((1100, 3), 0)])
def test_reductions_per_block_split_and_per_thread(shape, axis):
    """n_reduced 3000 -> one block per output; 40000 -> split into blocks with a second pass; 1100 outputs along
    the contiguous axis -> one thread per output."""
    x = random(shape)
    check(lambda x: gn.sum(x, axis=axis), x, with_grads=False)
    check(lambda x: gn.max(x, axis=axis), x, with_grads=False)


def test_max_gradient_is_shared_among_ties():
    x = np.array([[1.0, 3.0, 3.0, 0.0], [2.0, 2.0, 2.0, 2.0]])
    check(lambda x: gn.max(x, axis=1), x)
    check(lambda x: gn.max(x), x)


# ---------------------------------------------------------------------------------------------------------------
# matmul

@pytest.mark.parametrize("transpose_a", [False, True])
@pytest.mark.parametrize("transpose_b", [False, True])
def test_matmul_transposes(transpose_a, transpose_b):
    a = random((7, 5) if transpose_a else (5, 7))
    b = random((6, 7) if transpose_b else (7, 6))
    check(lambda a, b: gn.matmul(a, b, transpose_a=transpose_a, transpose_b=transpose_b), a, b)


@pytest.mark.parametrize("a_shape, b_shape", [((2, 3, 4), (4, 5)), ((2, 1, 3, 4), (1, 2, 4, 5)), ((3, 4), (2, 4, 2))])
def test_matmul_batched_with_broadcasting(a_shape, b_shape):
    check(gn.matmul, random(a_shape), random(b_shape))


def device(array):
    return cuda.to_device(np.ascontiguousarray(array))


@pytest.mark.parametrize("tiling", gemm.TILINGS, ids=lambda t: t.label)
def test_every_gemm_tiling_on_sizes_that_are_not_multiples_of_the_tile(tiling):
    a, b = random((19, 21), "float32"), random((21, 18), "float32")
    out = device(np.full((19, 18), np.nan, "float32"))
    get_backend("cuda").kernels[op_named("matmul")](out, device(a), device(b), transpose_a=False, transpose_b=False,
                                          tiling=tiling)
    np.testing.assert_allclose(out.copy_to_host(), a @ b, rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------------------------------------------------------
# convolution and pooling

CONV_CASES = [
    dict(stride=1, padding=1, dilation=1, groups=1),
    dict(stride=2, padding=((1, 0), (2, 1)), dilation=1, groups=1),
    dict(stride=(1, 2), padding=2, dilation=2, groups=1),
    dict(stride=1, padding=0, dilation=1, groups=2),
]


@pytest.mark.parametrize("case", CONV_CASES, ids=str)
@pytest.mark.parametrize("bias", [True, False])
def test_conv2d_forward_and_both_gradients(case, bias):
    x, w = random((2, 4, 6, 5)), random((4, 4 // case["groups"], 3, 3))
    if bias:
        check(lambda x, w, b: gn.conv2d(x, w, b, **case), x, w, random((4,)))
    else:
        check(lambda x, w: gn.conv2d(x, w, **case), x, w)


def test_conv2d_float32():
    check(lambda x, w, b: gn.relu(gn.conv2d(x, w, b, padding=2)), random((2, 1, 7, 7), "float32"),
          random((3, 1, 5, 5), "float32"), random((3,), "float32"), dtype="float32")


def conv_reference(which, x, w, dy, params):
    from graphnet.backends.reference import conv
    if which == "conv2d":
        out = np.empty(dy.shape)
        conv.conv2d(out, x, w, **params)
    elif which == "conv2d_grad_input":
        out = np.empty(x.shape)
        conv.conv2d_grad_input(out, dy, w, **params)
    else:
        out = np.empty(w.shape)
        conv.conv2d_grad_weight(out, dy, x, **params)
    return out


@pytest.mark.parametrize("tiling", gemm.TILINGS, ids=lambda t: t.label)
def test_conv_kernels_on_every_tiling_and_split_k(tiling):
    params = dict(stride=(2, 1), padding=((1, 1), (0, 2)), dilation=(1, 2), groups=2)
    x, w, dy = random((2, 4, 7, 6)), random((6, 2, 3, 2)), random((2, 6, 4, 6))
    kernels = get_backend("cuda").kernels
    for which, inputs, out_shape, extra in (("conv2d", (x, w), dy.shape, {}),
                                            ("conv2d_grad_input", (dy, w), x.shape, {}),
                                            ("conv2d_grad_weight", (dy, x), w.shape, {"splits": 3})):
        out = device(np.full(out_shape, np.nan))
        kernels[op_named(which)](out, *map(device, inputs), tiling=tiling, **extra, **params)
        np.testing.assert_allclose(out.copy_to_host(), conv_reference(which, x, w, dy, params), rtol=1e-9,
                                   atol=1e-11, err_msg=which)


@pytest.mark.parametrize("stride, dilation, padding", [((3, 2), (2, 3), ((2, 1), (0, 3))), ((2, 3), (1, 1), 1),
                                                       ((3, 3), (2, 1), ((0, 2), (1, 1)))], ids=str)
def test_strided_input_gradient_finds_every_tap_by_its_phase(stride, dilation, padding):
    """grad_input pairs a pixel with a tap when both leave the same remainder by the stride (conv.py): strides of
    2 and 3 with dilations that are and are not multiples of them, against the reference."""
    (pt, pb), (pl, pr) = ((padding, padding), (padding, padding)) if isinstance(padding, int) else padding
    x, w = random((2, 3, 9, 10)), random((4, 3, 2, 3))
    oh = conv_output_size(9, 2, pt, pb, stride[0], dilation[0], "height")
    ow = conv_output_size(10, 3, pl, pr, stride[1], dilation[1], "width")
    dy = random((2, 4, oh, ow))
    params = dict(stride=stride, padding=((pt, pb), (pl, pr)), dilation=dilation, groups=1)
    out = device(np.full(x.shape, np.nan))
    get_backend("cuda").kernels[op_named("conv2d_grad_input")](out, device(dy), device(w), **params)
    np.testing.assert_allclose(out.copy_to_host(), conv_reference("conv2d_grad_input", x, w, dy, params),
                               rtol=1e-9, atol=1e-11)


@settings(deadline=None, max_examples=10)
@given(conv_configs(), st.sampled_from(gemm.TILINGS), st.integers(1, 3), st.booleans())
def test_implicit_gemm_on_random_geometries(config, tiling, splits, relu):
    """The three convolution kernels, on any tiling, with the address tables of random strides, paddings,
    dilations and groups, against the reference (forward with bias, optionally the fused ReLU)."""
    rng_case = np.random.default_rng(config["seed"])
    x, w = rng_case.uniform(-1, 1, config["x_shape"]), rng_case.uniform(-1, 1, config["w_shape"])
    b, dy = rng_case.uniform(-1, 1, config["w_shape"][0]), rng_case.uniform(-1, 1, conv_out_shape(config))
    params, kernels = config["params"], get_backend("cuda").kernels
    expected = conv_reference("conv2d", x, w, dy, params) + b.reshape(1, -1, 1, 1)
    for which, inputs, reference, extra in (
            ("conv2d_relu" if relu else "conv2d", (x, w, b), np.maximum(expected, 0) if relu else expected, {}),
            ("conv2d_grad_input", (dy, w), conv_reference("conv2d_grad_input", x, w, dy, params), {}),
            ("conv2d_grad_weight", (dy, x), conv_reference("conv2d_grad_weight", x, w, dy, params),
             {"splits": splits})):
        out = device(np.full(reference.shape, np.nan))
        kernels[op_named(which)](out, *map(device, inputs), tiling=tiling, **extra, **params)
        np.testing.assert_allclose(out.copy_to_host(), reference, rtol=1e-9, atol=1e-11, err_msg=which)


POOL_CASES = [dict(kernel_size=2), dict(kernel_size=3, stride=2, padding=1), dict(kernel_size=(2, 3), stride=1),
              dict(kernel_size=3, stride=2, ceil_mode=True), dict(kernel_size=2, padding=((1, 0), (0, 1))),
              dict(kernel_size=3, stride=2, padding=((0, 1), (1, 1)), ceil_mode=True)]


@pytest.mark.parametrize("case", POOL_CASES, ids=str)
@pytest.mark.parametrize("pool", [gn.max_pool2d, gn.avg_pool2d])
def test_pooling_forward_and_gradient(pool, case):
    check(lambda x: pool(x, **case), random((2, 2, 6, 5)))


@pytest.mark.parametrize("case", POOL_CASES[3:], ids=str)
def test_average_pooling_without_the_padding_in_the_divisor(case):
    check(lambda x: gn.avg_pool2d(x, count_include_pad=False, **case), random((2, 2, 6, 5)))


@pytest.mark.parametrize("size, channels_before", [(5, None), (2, None), (4, 1)])
def test_local_response_norm_and_its_gradient(size, channels_before):
    check(lambda x: gn.local_response_norm(x, size, alpha=0.5, beta=0.75, k=2.0, channels_before=channels_before),
          random((2, 6, 2, 3), low=-2, high=2))
    check(lambda x: gn.local_response_norm(x, size, alpha=0.5, beta=0.75, k=2.0, channels_before=channels_before),
          random((2, 6, 3), "float32", low=-2, high=2), dtype="float32")


@pytest.mark.parametrize("case", POOL_CASES, ids=str)
def test_max_pool_routes_ties_to_the_first_maximum(case):
    x = rng.integers(0, 3, size=(1, 2, 6, 5)).astype("float64")         # many ties
    check(lambda x: gn.max_pool2d(x, **case), x)


# ---------------------------------------------------------------------------------------------------------------
# losses, dropout, batch norm

def test_softmax_cross_entropy_and_gradient():
    labels = np.array([0, 3, 2, 3, 1])
    check(lambda z, y: gn.softmax_cross_entropy(z, y), random((5, 4), low=-4, high=4), labels)


def test_cross_entropy_labels_out_of_range_are_a_feed_error_on_every_run():
    with gn.Graph():
        z, y = gn.placeholder((None, 3)), gn.placeholder((None,), dtype="int64")
        program = gn.compile(gn.softmax_cross_entropy(z, y), device="cuda")
        logits = random((2, 3), "float32")
        with pytest.raises(gn.FeedError, match="class indices"):
            program.run({z: logits, y: np.array([0, 3])})
        program.run({z: logits, y: np.array([0, 2])})                  # binds the kernels
        with pytest.raises(gn.FeedError, match="class indices"):
            program.run({z: logits, y: np.array([-1, 2])})              # checked as the labels are copied in


@pytest.mark.parametrize("loss", [gn.mse, gn.binary_cross_entropy_with_logits])
def test_mean_losses_and_gradients_for_both_inputs(loss):
    check(loss, random((3, 4), low=-3, high=3), random((3, 4), low=0, high=1))


def test_dropout_mask_is_bit_identical_to_the_reference_on_every_run():
    x = random((7, 9), "float32")
    outputs = {}
    for device in ("cuda", "reference"):
        with gn.Graph():
            xp = gn.placeholder(x.shape, name="x")
            y = gn.dropout(xp, 0.4, seed=123)
            program = gn.compile([y] + gn.gradients(gn.sum(y * 2.0), [xp]), device=device)
            outputs[device] = [program.run({xp: x}) for _ in range(2)]
    for run in range(2):
        for on_cuda, on_reference in zip(outputs["cuda"][run], outputs["reference"][run]):
            assert np.array_equal(on_cuda, on_reference)
    assert not np.array_equal(outputs["cuda"][0][0], outputs["cuda"][1][0])     # a new mask each run


@pytest.mark.parametrize("shape", [(6, 3), (3, 2, 3, 4)])
def test_batch_norm_training_gradients_and_running_statistics(shape):
    channels = shape[1]
    gamma, beta = random((channels,), low=0.5, high=1.5), random((channels,))
    xv = random(shape) * 3 + 1
    results = {}
    for device in ("cuda", "reference"):
        with gn.Graph():
            x = gn.placeholder(shape, dtype="float64", name="x")
            g, b = gn.variable(gamma.copy()), gn.variable(beta.copy())
            mean = gn.variable(np.zeros(channels), trainable=False)
            var = gn.variable(np.ones(channels), trainable=False)
            y = gn.batch_norm(x, g, b, mean, var, training=True)
            projection = gn.constant(np.random.default_rng(1).uniform(-1, 1, shape))
            grads = gn.gradients(gn.sum(y * projection), [x, g, b])
            program = gn.compile([y] + grads, device=device)
            results[device] = program.run({x: xv}) + [mean.numpy(), var.numpy()]
    assert_agree(zip(results["cuda"], results["reference"]))


# ---------------------------------------------------------------------------------------------------------------
# data movement

def test_transpose_concat_and_their_gradients():
    check(lambda a: gn.transpose(a, (2, 0, 1)), random((2, 3, 4)))
    check(lambda a, b: gn.concat([a, b, a], axis=1), random((2, 3, 2)), random((2, 1, 2)))


@pytest.mark.parametrize("index", [(slice(1, 3), None, 2), (slice(None, None, -2), Ellipsis, 0), (1,),
                                   (Ellipsis, slice(0, 4, 3))])
def test_getitem_and_its_gradient(index):
    check(lambda a: a[index], random((4, 3, 5)))


def test_reshape_of_a_variable_is_a_copy_kernel():
    check(lambda x, v: gn.reshape(v, (3, 4)) * x, random((3, 4)), variables=[random((2, 6))])


# ---------------------------------------------------------------------------------------------------------------
# the backend

def test_everything_lives_on_the_device_and_the_arena_is_allocated_once(monkeypatch):
    backend = get_backend("cuda")
    allocations = []
    original = backend.allocate
    monkeypatch.setattr(backend, "allocate", lambda nbytes: allocations.append(nbytes) or original(nbytes))
    with gn.Graph():
        x = gn.placeholder((None, 3), name="x")
        w = gn.variable(random((3, 2), "float32"), name="w")
        loss = gn.mean(gn.relu(x @ w))
        (dw,) = gn.gradients(loss, [w])
        program = gn.compile([loss, gn.assign(w, w - 0.1 * dw)], device="cuda")
        for _ in range(3):
            program.run({x: random((4, 3), "float32")})
    assert len(allocations) == 1
    plan = program.plan()
    on_device = [value for value in plan.values.values() if not isinstance(value, np.ndarray)]
    assert len(on_device) == len(plan.values) and all(hasattr(v, "copy_to_host") for v in on_device)
    assert hasattr(w.attrs["state"].storages[backend], "copy_to_host")


def test_launches_are_bound_once_and_replayed_through_the_driver():
    """On a GPU every launch is packed for cuLaunchKernel after its first run; the simulator says why not."""
    from graphnet.backends.cuda.launch import NO_FAST_LAUNCH
    with gn.Graph():
        x = gn.placeholder((None, 4), name="x")
        w = gn.variable(random((4, 3), "float32"))
        h = gn.relu(x @ w)
        loss = gn.mean(gn.softmax(h, axis=1) * h)
        program = gn.compile([loss] + gn.gradients(loss, [w]), device="cuda")
        values = [float(program.run({x: random((5, 4), "float32")})[0]) for _ in range(2)]
    launches = [launch for step in program.plan().steps if step.kernel is not None
                for launch in step.params["bound"].launches]
    assert launches and len(set(values)) == 2
    for launch in launches:
        if SIMULATED:
            assert launch.packed is None and launch.why_not_packed == NO_FAST_LAUNCH
        else:
            assert launch.packed is not None, launch.why_not_packed


def test_schedule_shows_the_chosen_algorithms():
    with gn.Graph():
        x = gn.placeholder((8, 3, 10, 10), name="x")
        y = gn.conv2d(x, gn.variable(random((4, 3, 3, 3), "float32")), padding=1)
        loss = gn.sum(y)
        text = str(gn.compile([loss] + gn.gradients(loss, [x]), device="cuda").describe())
    assert "cuda.conv2d[implicit-gemm" in text and "cuda.sum[per-block" in text


@pytest.mark.parametrize("pool", [gn.max_pool2d, gn.avg_pool2d])
def test_fused_layers_match_the_reference_and_show_in_the_schedule(pool):
    """conv2d → relu, matmul → add(bias row) [→ relu], pool_grad → relu_grad, matmul → relu_grad and
    conv2d_grad_input → relu_grad each run as one kernel (a GEMM's epilogue, the pool gradient's mask), on every
    value the unfused ops would give."""
    x, w, b, v = random((2, 2, 6, 6)), random((3, 2, 3, 3)), random((3,)), random((3, 3, 3, 3))
    w1, b1, w2, b2 = random((27, 5)), random((5,)), random((5, 4)), random((1, 4))

    def build(x, w, b, v, w1, b1, w2, b2):
        h = gn.relu(gn.conv2d(x, w, b, padding=1))
        h = pool(gn.relu(gn.conv2d(h, v, padding=1)), 2)
        h = gn.relu(gn.reshape(h, (-1, 27)) @ w1 + b1)
        return h @ w2 + b2

    feeds = (x, w, b, v, w1, b1, w2, b2)
    check(build, *feeds)
    with gn.Graph():
        inputs = [gn.placeholder(f.shape, name=f"x{i}") for i, f in enumerate(feeds)]
        y = build(*inputs)
        text = str(gn.compile([y] + gn.gradients(gn.sum(y), inputs[:1]), device="cuda").describe())
    for fused in ("cuda.conv2d_relu[", "cuda.dense_relu[", "cuda.dense[", f"cuda.{pool.__name__}_grad_relu",
                  "cuda.matmul_relu_grad[", "cuda.conv2d_grad_input_relu_grad["):
        assert fused in text, f"{fused} missing from\n{text}"


def test_an_add_that_is_not_a_bias_row_stays_its_own_step():
    a, b, c = random((3, 4)), random((4, 5)), random((3, 5))
    check(lambda a, b, c: gn.relu(a @ b + c), a, b, c)
    with gn.Graph():
        pa, pb, pc = (gn.placeholder(v.shape) for v in (a, b, c))
        text = str(gn.compile(gn.relu(pa @ pb + pc), device="cuda").describe())
    assert "cuda.matmul[" in text and "cuda.add" in text and "cuda.dense" not in text


def test_a_gradient_descent_update_is_one_step_and_waits_for_every_read_of_the_weight():
    """w ← w − η·g runs as one sgd_update step (η a variable, as a learning-rate schedule makes it). A read of w
    that the schedule puts after the update's multiplication keeps the three steps apart: the fused step would
    run at the multiplication's place and overwrite w before that read."""
    start, data = random((3, 2), "float32"), random((4, 3), "float32")
    results, schedules = {}, {}
    for device in ("cuda", "reference"):
        with gn.Graph():
            x = gn.placeholder((4, 3), name="x")
            w = gn.variable(start.copy(), name="w")
            rate = gn.variable(np.float32(0.1), name="rate", trainable=False)
            loss = gn.sum((x @ w) ** 2)
            (g,) = gn.gradients(loss, [w])
            update = gn.assign(w, w - rate * g)
            late_read = gn.sum(w * 3.0)         # created after the update: scheduled after its multiplication
            program = gn.compile([loss, update, late_read], device=device)
            results[device] = [program.run({x: data}) for _ in range(2)]
            schedules[device] = str(program.describe())
            fused = gn.compile([loss, gn.assign(w, w - rate * g)], device=device)
            schedules[device + " fused"] = str(fused.describe())
            results[device + " fused"] = [fused.run({x: data}) for _ in range(2)]
    for name in ("", " fused"):
        for on_cuda, on_reference in zip(results["cuda" + name], results["reference" + name]):
            assert_agree(zip(on_cuda, on_reference), "float32")
    assert "cuda.sgd_update" not in schedules["cuda"]
    assert "cuda.sgd_update" in schedules["cuda fused"]


def test_a_small_training_step_matches_the_reference():
    """A convolutional net with every kind of layer, trained for three SGD steps on both backends (new data each
    step: from the second run on, the GPU replays the launches bound on the first)."""
    images = random((4, 1, 8, 8), "float32")
    labels = np.array([0, 2, 1, 2])
    start = {"w1": random((3, 1, 3, 3), "float32") * 0.5, "b1": random((3,), "float32") * 0.1,
             "w2": random((27, 3), "float32") * 0.3, "b2": np.zeros(3, "float32")}
    final = {}
    for device in ("cuda", "reference"):
        with gn.Graph():
            x = gn.placeholder((None, 1, 8, 8), name="x")
            y = gn.placeholder((None,), dtype="int64", name="y")
            params = {k: gn.variable(v.copy(), name=k) for k, v in start.items()}
            h = gn.relu(gn.conv2d(x, params["w1"], params["b1"], padding=1))
            h = gn.max_pool2d(gn.avg_pool2d(h, 2, stride=1), 2)
            h = gn.dropout(gn.reshape(h, (-1, 27)), 0.2, seed=7)
            logits = h @ params["w2"] + params["b2"]
            loss = gn.softmax_cross_entropy(logits, y)
            grads = gn.gradients(loss, list(params.values()))
            updates = [gn.assign(p, p - 0.5 * g) for p, g in zip(params.values(), grads)]
            program = gn.compile([loss] + updates, device=device)
            losses = [program.run({x: images * (1 + step), y: labels})[0] for step in range(3)]
            final[device] = losses + [p.numpy() for p in params.values()]
    assert_agree(zip(final["cuda"], final["reference"]), "float32")


def test_auto_never_picks_the_simulator(capsys):
    from graphnet.backends import _choose_device
    choice, reason = _choose_device()
    if SIMULATED:
        assert choice != "cuda" and "simulator" in reason
    else:
        assert choice == "cuda"


def test_explicit_cuda_where_it_cannot_run_is_an_error_and_auto_falls_back_saying_why(monkeypatch):
    import graphnet.backends.cuda as cuda_backend
    monkeypatch.setattr(cuda_backend, "cuda_status", lambda: (False, "no NVIDIA GPU was found"))
    with pytest.raises(gn.GraphError, match="device 'cuda' cannot run here: no NVIDIA GPU was found"):
        cuda_backend.CudaBackend()
    from graphnet.backends import _choose_device
    choice, reason = _choose_device()
    assert choice in ("cpu", "reference") and "no CUDA: no NVIDIA GPU was found" in reason
