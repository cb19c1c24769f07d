"""The op specification: every op of the registry (graphnet/op.py REGISTRY) on every device.

One table, SPECS, holds one line per op a user builds: how to build it on small inputs. From it:

* coverage — every registered op is in the table, or is made by the gradient of an op in the table, or is a
  fused op or a source (placeholder, variable, constant): a new op without a line here fails;
* kernels — every op the reference backend implements has a kernel on cpu and on cuda (fused ones aside: a
  backend fuses where it pays), so a missing kernel is a failing test, not a user's compile-time surprise;
* values — the forward values on cpu and cuda (Numba's simulator) equal the reference's, in float32 and float64;
* gradients — the reference's gradients match central finite differences (float64), and cpu's and cuda's
  gradient kernels give the reference's gradients;
* fused ops — each compiled fused kernel against its reference composition (graphnet/backends/reference/fused.py);
* the pointwise shape rule and its refusals, as a property test.

Adding an op is one line in SPECS (see CONTRIBUTING.md).
"""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import graphnet as gn
import graphnet.ops.fused  # noqa: F401 — the fused ops register themselves too
from gradcheck import Fixed, check_gradients
from graphnet.backends import get_backend, unfused_ops
from graphnet.errors import GraphError
from graphnet.op import REGISTRY
from graphnet.ops.collective import AllReduceSum, allreduce_sum
from graphnet.ops.formulas import FORMULAS
from graphnet.ops.fused import FUSED_OPS, Fused
from graphnet.ops.pointwise import OPS

pytestmark = pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")   # the simulator's splitmix64

DEVICES = ("cpu", "cuda")
TOLERANCE = {"float32": dict(rtol=2e-5, atol=2e-6), "float64": dict(rtol=1e-10, atol=1e-12)}
KINKS = (0.0, 6.0, 3.0, -3.0, -1.5, 2.5)      # of relu, relu6, hard_sigmoid/hard_swish, clip(-1.5, 2.5)


def smooth(*shape, low=-2.0, high=2.0):
    return lambda rng: rng.uniform(low, high, shape)


def away_from_kinks(*shape, spread=7.0):
    """Values in [-spread, spread] none of which lies within 0.05 of a kink, so that ε = 1e-6 never crosses one."""
    def make(rng):
        values = rng.uniform(-spread, spread, shape)
        for kink in KINKS:
            near = np.abs(values - kink) < 0.05
            values[near] = kink + np.where(values[near] >= kink, 0.1, -0.1)
        return values
    return make


def distinct(*shape):
    """A shuffled grid: no two values close, so a max or a max-pool window has one clear winner."""
    def make(rng):
        count = int(np.prod(shape))
        return rng.permutation(np.linspace(-2.0, 2.0, count) + 0.013).reshape(shape)
    return make


def positive(*shape):
    return smooth(*shape, low=0.3, high=2.0)


def labels(n, classes):
    return lambda rng: Fixed(rng.integers(0, classes, n).astype(np.int64))


class Spec:
    """One op: build(*tensors) -> output, the makers of its inputs, and whether it has gradients to check."""

    def __init__(self, op, build, *inputs, differentiable=True, label=None):
        self.op, self.build, self.inputs, self.differentiable = op, build, inputs, differentiable
        self.label = label or op.name

    def values(self, seed=0):
        rng = np.random.default_rng(seed)
        return [make(rng) for make in self.inputs]

    def __repr__(self):
        return self.label


def pointwise(name, inputs, **params):
    """A pointwise op of the formulas: its line in SPECS, with the parameters the formula requires."""
    op = OPS[name][0]
    return Spec(op, lambda x: getattr(gn, name)(x, **params), inputs)


def example_parameters(formula):
    """Values for a formula's parameters: the defaults, and increasing values -1, 1, 3, ... for the required ones
    (so that a rule like clip's min <= max holds)."""
    required = iter(range(-1, 100, 2))
    return {p: float(next(required)) if d is None else d for p, d in formula.params.items()}


def batch_norm(x):
    c, dtype = x.shape[1], x.dtype
    gamma, beta = gn.constant(np.linspace(0.5, 1.5, c, dtype=dtype)), gn.constant(np.linspace(-0.2, 0.2, c, dtype=dtype))
    return gn.batch_norm(x, gamma, beta, gn.variable(np.zeros(c, dtype), trainable=False),
                         gn.variable(np.ones(c, dtype), trainable=False), training=True)


def variance(x):
    """The unbiased variance per channel that batch norm's running variance takes (an internal op)."""
    from graphnet.ops._util import apply
    return apply(gn.ops.regularization.Variance(), [x], {"axes": (0, 2, 3), "ddof": 1})


def assign(x):
    return gn.assign(gn.variable(np.zeros(x.shape, x.dtype)), x * 2.0)


SPECS = [
    # pointwise ops declared as formulas: one line each
    pointwise("relu", away_from_kinks(2, 5)),
    pointwise("leaky_relu", away_from_kinks(2, 5)),
    pointwise("elu", away_from_kinks(2, 5, spread=3.0)),
    pointwise("sigmoid", smooth(2, 5, low=-6, high=6)),
    pointwise("tanh", smooth(2, 5, low=-3, high=3)),
    pointwise("softplus", smooth(2, 5, low=-8, high=8)),
    pointwise("silu", smooth(2, 5, low=-6, high=6)),
    pointwise("gelu", smooth(2, 5, low=-4, high=4)),
    pointwise("gelu_tanh", smooth(2, 5, low=-4, high=4)),
    pointwise("relu6", away_from_kinks(2, 5)),
    pointwise("hard_sigmoid", away_from_kinks(2, 5)),
    pointwise("hard_swish", away_from_kinks(2, 5)),
    pointwise("erf", smooth(2, 5, low=-3, high=3)),
    pointwise("clip", away_from_kinks(2, 5, spread=4.0), min=-1.5, max=2.5),
    # arithmetic
    Spec(gn.ops.elementwise.Add, lambda a, b: a + b, smooth(2, 3), smooth(3)),
    Spec(gn.ops.elementwise.Sub, lambda a, b: a - b, smooth(2, 3), smooth(2, 1)),
    Spec(gn.ops.elementwise.Mul, lambda a, b: a * b, smooth(2, 3), smooth(1, 3)),
    Spec(gn.ops.elementwise.Div, lambda a, b: a / b, smooth(2, 3), positive(3)),
    Spec(gn.ops.elementwise.Maximum, gn.maximum, distinct(2, 3), distinct(2, 3)),
    Spec(gn.ops.elementwise.Minimum, gn.minimum, distinct(2, 3), distinct(2, 3)),
    Spec(gn.ops.elementwise.Neg, gn.neg, smooth(2, 3)),
    Spec(gn.ops.elementwise.Exp, gn.exp, smooth(2, 3)),
    Spec(gn.ops.elementwise.Log, gn.log, positive(2, 3)),
    Spec(gn.ops.elementwise.Sqrt, gn.sqrt, positive(2, 3)),
    Spec(gn.ops.elementwise.Pow, lambda x: gn.pow(x, 3), smooth(2, 3)),
    Spec(gn.ops.dtypes.Cast, lambda x: gn.cast(x, "float32") * 1.0, smooth(2, 3), differentiable=False),
    # reductions
    Spec(gn.ops.reduce.Sum, lambda x: gn.sum(x, axis=1), smooth(2, 3, 2)),
    Spec(gn.ops.reduce.Mean, lambda x: gn.mean(x, axis=(0, 2)), smooth(2, 3, 2)),
    Spec(gn.ops.reduce.Max, lambda x: gn.max(x, axis=1), distinct(2, 3, 2)),
    # structured ops
    Spec(gn.ops.linalg.MatMul, gn.matmul, smooth(3, 4), smooth(4, 2)),
    Spec(gn.ops.conv.Conv2d, lambda x, w, b: gn.conv2d(x, w, b, stride=1, padding=1),
         smooth(1, 2, 4, 4), smooth(3, 2, 3, 3), smooth(3)),
    Spec(gn.ops.pool.MaxPool2d, lambda x: gn.max_pool2d(x, 2), distinct(1, 2, 4, 4)),
    Spec(gn.ops.pool.AvgPool2d, lambda x: gn.avg_pool2d(x, 2, padding=1), smooth(1, 2, 4, 4)),
    Spec(gn.ops.pool.MaxPool2d, lambda x: gn.max_pool2d(x, 3, stride=2, padding=((1, 0), (0, 1)), ceil_mode=True),
         distinct(1, 2, 6, 6), label="max_pool2d[ceil_mode, asymmetric padding]"),
    Spec(gn.ops.pool.AvgPool2d,
         lambda x: gn.avg_pool2d(x, 3, stride=2, padding=1, ceil_mode=True, count_include_pad=False),
         smooth(1, 2, 6, 6), label="avg_pool2d[ceil_mode, count_include_pad=False]"),
    Spec(gn.ops.lrn.LocalResponseNorm, lambda x: gn.local_response_norm(x, size=3, alpha=0.1, beta=0.75, k=1.0),
         smooth(2, 5, 3, 3)),
    Spec(gn.ops.activations.Softmax, lambda x: gn.softmax(x, axis=1), smooth(2, 4)),
    Spec(gn.ops.activations.LogSoftmax, gn.log_softmax, smooth(2, 4)),
    Spec(gn.ops.regularization.BatchNorm, batch_norm, smooth(3, 2, 2, 2)),
    Spec(gn.ops.regularization.Variance, variance, smooth(3, 2, 2, 2)),
    Spec(gn.ops.regularization.Dropout, lambda x: gn.dropout(x, 0.5, seed=3), smooth(4, 5)),
    # losses
    Spec(gn.ops.losses.SoftmaxCrossEntropy, gn.softmax_cross_entropy, smooth(3, 4), labels(3, 4)),
    Spec(gn.ops.losses.Mse, gn.mse, smooth(3, 2), smooth(3, 2)),
    Spec(gn.ops.losses.BinaryCrossEntropyWithLogits, gn.binary_cross_entropy_with_logits, smooth(3, 2),
         lambda rng: rng.uniform(0, 1, (3, 2))),
    # moving data
    Spec(gn.ops.shape.Reshape, lambda x: gn.reshape(x, (3, 2)) * 1.0, smooth(2, 3)),
    Spec(gn.ops.shape.Transpose, gn.transpose, smooth(2, 3)),
    Spec(gn.ops.shape.Concat, lambda a, b: gn.concat([a, b], axis=1), smooth(2, 3), smooth(2, 1)),
    Spec(gn.ops.shape.GetItem, lambda x: gn.getitem(x, (slice(None), slice(1, 3))), smooth(2, 4)),
    Spec(gn.ops.state.Assign, assign, smooth(2, 3), differentiable=False),
    # communication: in one process the sum over the ranks is the value itself (graphnet/distributed)
    Spec(AllReduceSum, allreduce_sum, smooth(2, 3)),
]


def as_dtype(values, dtype):
    return [v if isinstance(v, Fixed) else v.astype(dtype) for v in values]


def placeholders(values, dtype):
    """A placeholder per input (labels keep their own dtype), and those of the float inputs (differentiated)."""
    holders = [gn.placeholder(v.value.shape, dtype=v.value.dtype) if isinstance(v, Fixed)
               else gn.placeholder(v.shape, dtype=dtype) for v in values]
    return holders, [h for h, v in zip(holders, values) if not isinstance(v, Fixed)]


def run(spec, device, dtype, gradients=False, seed=0):
    """The spec's output (and the gradients with respect to its float inputs) on a device."""
    values = as_dtype(spec.values(seed), dtype)
    with gn.Graph():
        holders, wrt = placeholders(values, dtype)
        out = spec.build(*holders)
        fetches = [out]
        if gradients:
            projection = gn.constant(np.random.default_rng(1).uniform(-1, 1, out.shape).astype(dtype))
            fetches += gn.gradients(gn.sum(out * projection), wrt)
        program = gn.compile(fetches, device=device)
        feeds = {h: (v.value if isinstance(v, Fixed) else v) for h, v in zip(holders, values)}
        return program.run(feeds)


def made_by_gradients(spec):
    """The op classes the graph of a spec and its gradients holds."""
    with gn.Graph() as graph:
        holders, wrt = placeholders(spec.values(), "float64")
        out = spec.build(*holders)
        if spec.differentiable:
            gn.gradients(gn.sum(out), wrt)
        return {type(node.op) for node in graph.nodes}


def test_every_registered_op_is_specified_or_made_by_a_specified_gradient():
    covered = set()
    for spec in SPECS:
        covered |= made_by_gradients(spec)
    missing = [op.name for op in REGISTRY if op not in covered and not op.is_source and not issubclass(op, Fused)]
    assert missing == [], f"ops with no line in SPECS (and made by no gradient of one): {missing}"


def test_every_pointwise_formula_is_an_op_with_a_gradient_and_a_public_function():
    assert [op.name for op, _ in OPS.values()] == [f.name for f in FORMULAS]
    specified = {spec.op for spec in SPECS}
    assert [op.name for op, _ in OPS.values() if op not in specified] == [], "formulas with no line in SPECS"
    assert [f.name for f in FORMULAS if not callable(getattr(gn, f.name, None))] == [], "no public function"


@pytest.mark.parametrize("device", DEVICES)
def test_every_op_has_a_kernel_on_every_device(device):
    reference = set(unfused_ops(get_backend("reference")))
    assert reference >= {op for op in REGISTRY if not op.is_source and not issubclass(op, Fused)}
    missing = sorted(op.name for op in reference - set(get_backend(device).kernels))
    assert missing == [], f"device '{device}' lacks kernels for {missing}"


# The family an op's kernels live under on every backend: the op's own module, but for three copies and sums.
FAMILY = {gn.ops.elementwise.SumTo: "reduce", gn.ops.dtypes.Cast: "elementwise", gn.ops.state.Assign: "shape"}
# Where one backend keeps a kernel elsewhere, and why.
ELSEWHERE = {("cpu", gn.ops.reduce.BroadcastTo): "elementwise"}   # it walks broadcast strides like add and mul


@pytest.mark.parametrize("device", ("reference",) + DEVICES)
def test_kernel_modules_are_named_like_the_op_modules(device):
    """reference/conv.py, _ext/conv.pyx and cuda/conv.py hold the kernels of ops/conv.py, and so on."""
    backend = get_backend(device)
    misplaced = []
    for op in unfused_ops(backend):
        family = ELSEWHERE.get((device, op)) or FAMILY.get(op) or op.__module__.rsplit(".", 1)[-1]
        module = backend.kernel_modules[op].rsplit(".", 1)[-1]
        if module != family:
            misplaced.append(f"{op.name} in {module}, not {family}")
    assert misplaced == []


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("spec", SPECS, ids=repr)
def test_forward_values_agree_with_the_reference(spec, device, dtype):
    expected, = run(spec, "reference", dtype)
    got, = run(spec, device, dtype)
    np.testing.assert_allclose(got, expected, **TOLERANCE[dtype])


@pytest.mark.parametrize("spec", [s for s in SPECS if s.differentiable], ids=repr)
def test_reference_gradients_match_finite_differences(spec):
    check_gradients(spec.build, spec.values(seed=2), device="reference")


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("spec", [s for s in SPECS if s.differentiable], ids=repr)
def test_gradient_kernels_agree_with_the_reference(spec, device):
    expected = run(spec, "reference", "float64", gradients=True)
    got = run(spec, device, "float64", gradients=True)
    for g, e in zip(got, expected):
        np.testing.assert_allclose(g, e, **TOLERANCE["float64"])


# ----------------------------------------------------------------------------------------------------------------
# fused ops: each compiled fused kernel against its reference composition, on the inputs a graph gives it

def fused_examples():
    """(fused op, device) for every fused kernel a compiled backend has."""
    return [(op, device) for op in FUSED_OPS for device in DEVICES if get_backend(device).has_kernel(op)]


def chain_graph(fused, rng):
    """A graph whose schedule holds the fused op's chain, and its feeds."""
    x4, x2 = rng.uniform(-1, 1, (2, 3, 6, 6)), rng.uniform(-1, 1, (4, 5))
    w4, w2, bias = rng.uniform(-1, 1, (4, 3, 3, 3)), rng.uniform(-1, 1, (5, 3)), rng.uniform(-1, 1, 3)
    chains = {
        "conv2d_relu": lambda x, w: gn.relu(gn.conv2d(x, w, padding=1)),
        "dense": lambda x, w: gn.matmul(x, w) + gn.constant(bias),
        "dense_relu": lambda x, w: gn.relu(gn.matmul(x, w) + gn.constant(bias)),
    }
    if fused.name in chains:
        x, w = (x4, w4) if fused.name.startswith("conv") else (x2, w2)
        return chains[fused.name], [x, w], None
    gradient_chains = {     # the chain appears in the backward pass: relu's gradient after the layer's own
        "matmul_relu_grad": (lambda x, w: gn.matmul(gn.relu(gn.matmul(x, w)), gn.constant(rng.uniform(-1, 1, (3, 2)))),
                             [x2, w2]),
        "conv2d_grad_input_relu_grad": (lambda x, w: gn.conv2d(gn.relu(gn.conv2d(x, w, padding=1)),
                                                                gn.constant(rng.uniform(-1, 1, (2, 4, 3, 3)))),
                                        [x4, w4]),
        "max_pool2d_grad_relu": (lambda x, w: gn.max_pool2d(gn.relu(gn.conv2d(x, w, padding=1)), 2), [x4, w4]),
        "avg_pool2d_grad_relu": (lambda x, w: gn.avg_pool2d(gn.relu(gn.conv2d(x, w, padding=1)), 2), [x4, w4]),
    }
    if fused.name in gradient_chains:
        build, values = gradient_chains[fused.name]
        return build, values, "gradients"
    return None, None, "sgd"


def run_chain(fused, device, seed=0):
    rng = np.random.default_rng(seed)
    build, values, kind = chain_graph(fused, rng)
    with gn.Graph():
        if kind == "sgd":
            w = gn.variable(rng.uniform(-1, 1, (3, 4)), name="w")
            x = gn.placeholder((2, 3), dtype="float64", name="x")
            loss = gn.mean(gn.matmul(x, w) ** 2)
            (g,) = gn.gradients(loss, [w])     # g is a product: 0.1 · g fuses with it, g · 0.1 does not
            fetches = [gn.assign(w, w - (0.1 * g if fused.name == "matmul_sgd_update" else g * 0.1))]
            feeds = {x: rng.uniform(-1, 1, (2, 3))}
        else:
            holders = [gn.placeholder(v.shape, dtype="float64") for v in values]
            out = build(*holders)
            fetches = [out] + (gn.gradients(gn.sum(out * out), holders) if kind else [])
            feeds = dict(zip(holders, values))
        program = gn.compile(fetches, device=device)
        return program.run(feeds), program.describe()


@pytest.mark.parametrize("fused, device", fused_examples(), ids=lambda v: getattr(v, "name", v))
def test_fused_kernels_agree_with_their_reference_composition(fused, device):
    got, schedule = run_chain(fused, device)
    expected, reference_schedule = run_chain(fused, "reference")
    assert f"{device}.{fused.name}" in schedule, schedule           # the chain did run as the fused kernel
    assert fused.name not in reference_schedule                       # the reference runs each op on its own
    for g, e in zip(got, expected):
        np.testing.assert_allclose(g, e, rtol=1e-9, atol=1e-11)


def test_the_reference_compositions_are_the_chains():
    """The reference backend's fused kernels compute what the unfused chain computes (here: on a dense layer)."""
    reference = get_backend("reference")
    rng = np.random.default_rng(0)
    a, b, bias = rng.uniform(-1, 1, (4, 5)), rng.uniform(-1, 1, (5, 3)), rng.uniform(-1, 1, 3)
    out = np.empty((4, 3))
    reference.kernel(gn.ops.fused.DenseRelu)(out, a, b, bias, transpose_a=False, transpose_b=False)
    np.testing.assert_allclose(out, np.maximum(a @ b + bias, 0), rtol=1e-12)


# ----------------------------------------------------------------------------------------------------------------
# the pointwise shape rule, and what must fail

@settings(deadline=None, max_examples=20)
@given(shape=st.lists(st.one_of(st.none(), st.integers(1, 5)), max_size=4),
       formula=st.sampled_from(FORMULAS))
def test_a_pointwise_op_keeps_its_input_shape(shape, formula):
    params = example_parameters(formula)
    with gn.Graph():
        x = gn.placeholder(tuple(shape))
        y = getattr(gn, formula.name)(x, **params)
        assert y.shape == tuple(shape) and y.dtype == x.dtype
        (dx,) = gn.gradients(gn.sum(y), [x])
        assert dx.shape == x.shape


@pytest.mark.parametrize("formula", FORMULAS, ids=lambda f: f.name)
def test_a_pointwise_op_refuses_integer_inputs_and_bad_parameters(formula):
    params = example_parameters(formula)
    with gn.Graph():
        with pytest.raises(GraphError, match=formula.name):
            getattr(gn, formula.name)(gn.placeholder((2,), dtype="int64"), **params)
        for name in formula.params:
            with pytest.raises(GraphError, match=f"{name} must be a number"):
                getattr(gn, formula.name)(gn.placeholder((2,)), **dict(params, **{name: "one"}))


def test_clip_needs_its_bounds_in_order():
    with gn.Graph():
        with pytest.raises(GraphError, match="needs min <= max, got min=2, max=1"):
            gn.clip(gn.placeholder((2,)), 2, 1)
        with pytest.raises(GraphError, match="missing a required argument: 'max'"):
            gn.clip(gn.placeholder((2,)), 1)


@pytest.mark.parametrize("y, dx, message", [
    ("log(1 + exp(x))", "dy", r"mish\.y: .*'log' is not a function of the formula language \(for log\(1 \+ u\) "
                              r"write log1p\(u\)\)"),
    ("where(x > 0, x)", "dy", r"mish\.y: .*where takes 3 argument\(s\), got 2"),
    ("x * tanh(beta * x)", "dy", r"mish\.y: .*unknown name 'beta' \(known: x, betta\)"),
    ("x ** 2", "dy", r"mish\.y: .*Pow is not part of the formula language \(write x \* x, or square\(x\)\)"),
    ("x", "dy * (0 < x < 1)", r"mish\.dx: .*write a < b and b < c"),
])
def test_a_mistaken_formula_is_refused_naming_its_field(y, dx, message):
    from graphnet.ops.formula_code import FormulaError, check
    from graphnet.ops.formulas import Formula
    with pytest.raises(FormulaError, match=message):
        check(Formula("mish", y=y, dx=dx, doc="", params={"betta": 1.0}))


def test_the_compiled_pointwise_kernels_were_built_from_these_formulas():
    """The generated cpu module refuses to load when the formulas changed since it was built (it names the rebuild
    command); here it loaded, so it carries the current formulas' fingerprint."""
    from dataclasses import replace
    from graphnet._ext import pointwise
    from graphnet.ops.formula_code import fingerprint
    assert pointwise.BUILT_FROM == fingerprint(FORMULAS)
    changed = [replace(FORMULAS[0], y="maximum(x, 0.0)")] + FORMULAS[1:]
    assert fingerprint(changed) != fingerprint(FORMULAS)
