"""Gradient checking by central finite differences.

For a function f built from graphnet ops, the analytic gradient that `gn.gradients` computes must match

    ∂L/∂x_i  ≈  (L(x + ε·e_i) − L(x − ε·e_i)) / (2ε)          for every element i of every input x,

where L = Σ out · R reduces the op's output to a scalar with a fixed random projection R, so that every output
element (and every path of the backward pass) matters. Everything runs in float64.

    from gradcheck import check_gradients, Variable, Fixed
    check_gradients(lambda x, w: gn.tanh(x @ w), [x_value, w_value])          # both are placeholders
    check_gradients(lambda x, g: gn.batch_norm(...), [x_value, Variable(g)])   # g is a gn.variable
    check_gradients(gn.softmax_cross_entropy, [logits, Fixed(labels)])         # labels: fed, not differentiated

The program that computes L and its gradients is compiled once; the finite differences re-run a second,
forward-only program with perturbed feeds (a variable is perturbed with `assign_value` between runs).

Random ops (dropout) draw a new mask on every run of a program (run k uses stream k of the op's seed). A finite
difference across two runs of one program would compare two different functions, so when the graph holds a
random op every evaluation uses a freshly compiled program: its first run draws stream 1, the same stream the
analytic gradients were computed with, and L is then one fixed deterministic function.
"""
import numpy as np

import graphnet as gn


class Variable:
    """An input made a `gn.variable` (state) instead of a placeholder; it is differentiated like one."""

    def __init__(self, value, trainable=True):
        self.value = np.asarray(value, dtype=np.float64)
        self.trainable = trainable


class Fixed:
    """An input fed as a placeholder of its own dtype but not differentiated (class labels, ...)."""

    def __init__(self, value):
        self.value = np.asarray(value)


class GradientMismatch(AssertionError):
    pass


def _value(spec, i):
    if isinstance(spec, (Variable, Fixed)):
        return spec.value.copy()
    value = np.array(spec)
    if value.dtype != np.float64:
        raise TypeError(f"input {i} has dtype {value.dtype}; gradient checks need float64 "
                        "(wrap integer inputs such as labels in Fixed)")
    return value


def _make_inputs(inputs, values, unknown_batch):
    """One graph tensor per input; the placeholders that `unknown_batch` names declare their first size None."""
    tensors = []
    for i, (spec, value) in enumerate(zip(inputs, values)):
        if isinstance(spec, Variable):
            tensors.append(gn.variable(value.copy(), name=f"in{i}", trainable=spec.trainable))
            continue
        shape = value.shape
        if shape and (unknown_batch is True or (unknown_batch and i in unknown_batch)):
            shape = (None,) + shape[1:]
        tensors.append(gn.placeholder(shape, dtype=value.dtype, name=f"in{i}"))
    return tensors


def _split(built):
    """`build` returns the output, or (output, probes) with probes a list of (tensor, condition) pairs."""
    if isinstance(built, tuple):
        out, probes = built
        return out, list(probes)
    return built, []


def _output_shape(build, inputs, values):
    """The concrete shape of the output, from a throwaway graph with every size known."""
    with gn.Graph():
        out, _ = _split(build(*_make_inputs(inputs, values, unknown_batch=False)))
        return out.shape


def _has_random_op(loss):
    seen, stack = set(), [loss]
    while stack:
        node = stack.pop()
        if node in seen:
            continue
        seen.add(node)
        if getattr(node.op, "uses_rng", False):
            return True
        stack.extend(node.inputs)
    return False


def check_gradients(build, inputs, *, device="reference", eps=1e-6, rtol=1e-4, atol=1e-6, seed=0,
                    unknown_batch=False):
    """Assert that the gradients of `build(*inputs)` match central finite differences; return them.

    `build` maps one graph tensor per input to an output tensor (any shape, float64). `inputs` holds NumPy
    float64 arrays (made placeholders), `Variable(array)` (made variables) and `Fixed(array)` (fed, not
    differentiated). Element i of an input passes when

        |analytic_i − numeric_i|  <=  atol · max(1, max |numeric|) + rtol · |numeric_i|

    (the absolute part scales with the input's largest gradient, since the finite differences' rounding error
    grows with the size of L). On failure the message names the worst element. Returns a list of
    (analytic, numeric) pairs, one per differentiated input.

    `unknown_batch` declares the first size of placeholders None (any batch), as a user writes
    `placeholder((None, 784))`, so that shapes are only known when the program runs: True for every placeholder,
    or a collection of input positions (e.g. {0} for x but not the weights).

    `build` may also return `(out, probes)`, where probes is a list of (intermediate tensor, condition) pairs:
    each condition must hold for its tensor's value at the unperturbed inputs, or the example is rejected
    (Hypothesis' `assume`). Random compositions use this to skip the rare draw that puts a value within reach
    of ε of a kink (a relu input near 0, a near-tie in a max-pool window), where finite differences measure no
    derivative.
    """
    values = [_value(spec, i) for i, spec in enumerate(inputs)]
    out_shape = _output_shape(build, inputs, values) if unknown_batch else None
    with gn.Graph():
        tensors = _make_inputs(inputs, values, unknown_batch)
        out, probes = _split(build(*tensors))
        if out.dtype != np.float64:
            raise TypeError(f"the output '{out.name}' is {out.dtype}; build the check in float64")
        projection = np.random.default_rng(seed).standard_normal(out_shape or out.shape)
        loss = gn.sum(out * gn.constant(np.asarray(projection, dtype=np.float64)), name="projected_loss")
        wrt = [(i, t) for i, (t, spec) in enumerate(zip(tensors, inputs)) if not isinstance(spec, Fixed)]
        grads = gn.gradients(loss, [t for _, t in wrt])
    random = _has_random_op(loss)

    def feeds_for(current):
        feeds = {}
        for t, v in zip(tensors, current):
            if t.op.name == "variable":
                t.assign_value(v)
            else:
                feeds[t] = v
        return feeds

    program = gn.compile([loss] + grads + [t for t, _ in probes], device=device)
    loss_value, *fetched = program.run(feeds_for(values))
    analytic, probe_values = fetched[:len(grads)], fetched[len(grads):]
    assert np.isfinite(loss_value), f"the loss is {loss_value} at the unperturbed inputs"
    if not all(condition(v) for (_, condition), v in zip(probes, probe_values)):
        from hypothesis import assume
        assume(False)

    forward = gn.compile(loss, device=device)

    def evaluate(current):
        prog = gn.compile(loss, device=device) if random else forward
        return float(prog.run(feeds_for(current)))

    results = []
    for (position, t), a in zip(wrt, analytic):
        base = values[position]
        assert a.shape == base.shape, f"gradient of '{t.name}' has shape {a.shape}, the input has {base.shape}"
        assert a.dtype == np.float64, f"gradient of '{t.name}' is {a.dtype}, not float64"
        numeric = np.zeros_like(a)
        for index in np.ndindex(*base.shape):
            original = base[index]
            base[index] = original + eps
            plus = evaluate(values)
            base[index] = original - eps
            minus = evaluate(values)
            base[index] = original
            numeric[index] = (plus - minus) / (2 * eps)
        if t.op.name == "variable":
            t.assign_value(base)
        _compare(t.name, f"input {position}", a, numeric, rtol, atol)
        results.append((a, numeric))
    return results


def _compare(name, where, analytic, numeric, rtol, atol):
    if not np.all(np.isfinite(analytic)):
        bad = tuple(int(i) for i in np.argwhere(~np.isfinite(analytic))[0])
        raise GradientMismatch(f"{where} '{name}' {analytic.shape}: analytic gradient is {float(analytic[bad])} "
                               f"at {bad}")
    scale = max(1.0, float(np.max(np.abs(numeric), initial=0.0)))
    tolerance = atol * scale + rtol * np.abs(numeric)
    error = np.abs(analytic - numeric)
    if analytic.size and np.any(error > tolerance):
        worst = np.unravel_index(int(np.argmax(error / tolerance)), analytic.shape)
        worst = tuple(int(i) for i in worst)
        failing = int(np.sum(error > tolerance))
        raise GradientMismatch(
            f"{where} '{name}' {analytic.shape}: {failing} of {analytic.size} gradient elements differ from "
            f"central differences; worst at {worst}: analytic {float(analytic[worst])!r}, "
            f"numeric {float(numeric[worst])!r}, |difference| {error[worst]:.3g} > tolerance {tolerance[worst]:.3g}\n"
            f"analytic:\n{np.array2string(analytic, precision=6)}\nnumeric:\n{np.array2string(numeric, precision=6)}")
