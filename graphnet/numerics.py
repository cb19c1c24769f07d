"""The numerics check: run a schedule step by step and stop at the first step that writes NaN or Inf.

    prog = gn.compile([loss, train_op], check_numerics=True)     # or prog.run(feeds, check_numerics=True)
    prog.run(feeds)     # NumericsError: step 7 of the schedule, log 'log' (model.py:14), wrote -inf ...

Like tf.debugging.enable_check_numerics and torch.autograd.detect_anomaly, but the error names the line where
you created the op, the ranges of its inputs and the step number that `print(prog)` shows. A checked run copies
every floating-point output to the host and looks at it, so it is slow: a switch for debugging, off by default.
When it is off the program runs its plain loop (program.py), which checks nothing.

A failed run changes nothing: the variables it assigns are put back to their values from before the run, and
its run counter (dropout's random stream) is wound back. Its fetches are not returned.
"""
import numpy as np

from .errors import NumericsError, note_running
from .ops.elementwise import Div, Exp, Log, Pow, Sqrt

# Why a NaN or Inf comes out of an op whose inputs were finite, and what to do about it (by op class).
HINTS = {
    Log: "log(0) = -inf and the log of a negative number is NaN: keep the input positive, e.g. "
         "gn.log(gn.maximum(x, 1e-12)), or use a loss that takes logits (softmax_cross_entropy, "
         "binary_cross_entropy_with_logits)",
    Sqrt: "the square root of a negative number is NaN: keep the input >= 0, e.g. gn.sqrt(gn.maximum(x, 0.0)) "
          "(and add a small epsilon where its gradient, 1/(2·sqrt(x)), is taken at 0)",
    Div: "a division by 0 gives ±inf, and 0/0 gives NaN: add a small epsilon to the denominator",
    Exp: "exp overflows above 88.7 in float32 (709.8 in float64): subtract the maximum first (as softmax does) "
         "or use log_softmax",
    Pow: "a negative base to a fractional power is NaN, and 0 to a negative power is inf",
}


def run_checked(program, plan):
    """Call the plan's kernels in order, looking at each floating-point output; raise NumericsError at the first
    NaN or Inf, after putting back the variables this program assigns and winding back its run counter."""
    backend = program.backend
    saved = {var: backend.to_host(plan.values[var]) for var in program.assigned}
    for index, (fn, out, ins, params) in enumerate(plan.calls):
        node = plan.call_nodes[index]
        in_place = {k: backend.to_host(a) for k, a in enumerate(ins) if a is out}   # an assignment's old value
        try:
            fn(out, *ins, **params)
        except Exception as error:
            note_running(error, node)
            raise
        if node.dtype.kind != "f":
            continue
        value = backend.to_host(out)
        if np.isfinite(value).all():
            continue
        inputs = [in_place.get(k) if k in in_place else backend.to_host(a) for k, a in enumerate(ins)]
        message = report(program, plan, index, value, inputs)
        for var, old in saved.items():
            backend.copy_in(plan.values[var], old)
        program.rng.counter -= 1
        raise NumericsError(message)


def report(program, plan, call_index, value, inputs):
    """The error message: which step, which op and where it was written, what it wrote, its inputs' ranges, a
    hint, and what became of the run."""
    step_index, step = [(i, s) for i, s in enumerate(plan.steps) if s.kernel is not None][call_index]
    node = step.node
    sites = ", ".join(dict.fromkeys(n.site for n in step.nodes))
    what = (f"{node.op.name} '{node.name}'" if len(step.nodes) == 1
            else f"the fused step {step.op_name} ({', '.join(repr(n.name) for n in step.nodes)})")
    lines = [f"{what} ({sites}) wrote {_bad_values(value)} — step {step_index} of the schedule ({node.phase}, "
             f"{step.label})", "  its inputs:"]
    seen = {}
    for n, a in zip(step.inputs, inputs):
        seen.setdefault(n, a)                       # a fused update reads its variable twice: show it once
    lines += [f"    {_describe_input(n, a)}" for n, a in seen.items()]
    lines.append("  " + _hint(step, inputs, value, bool(program.assigned)))
    assigned = program.assigned
    names = ", ".join(repr(v.name) for v in assigned) if len(assigned) <= 4 else f"{len(assigned)} of them"
    restored = (f"; the variables it assigns ({names}) hold their values from before the run" if assigned else "")
    lines.append(f"The run stopped at step {step_index} and returned nothing{restored}. print(prog) shows the "
                 "schedule.")
    return "\n".join(lines)


def _bad_values(value):
    """What kinds of non-finite values an array holds, and how many: '-inf (4 of 4 values)', 'NaN and +inf (3 of
    8 values: 2 NaN, 1 +inf)'."""
    counts = {"NaN": int(np.isnan(value).sum()), "+inf": int(np.isposinf(value).sum()),
              "-inf": int(np.isneginf(value).sum())}
    kinds = {k: n for k, n in counts.items() if n}
    detail = f": {', '.join(f'{n} {k}' for k, n in kinds.items())}" if len(kinds) > 1 else ""
    return f"{' and '.join(kinds)} ({sum(kinds.values())} of {value.size} values{detail})"


def _describe_input(node, array):
    """One input: what it is, where it was made, its shape and dtype, and its range (or its NaN and Inf)."""
    kind = "placeholder (fed)" if node.op.is_fed else node.op.name
    where = f"{kind} '{node.name}' ({node.site}) {tuple(array.shape)} {array.dtype}"
    if array.size == 0:
        return f"{where}: empty"
    if array.dtype.kind not in "fc":
        return f"{where}: min {array.min()}, max {array.max()}"
    finite = array[np.isfinite(array)]
    span = f"min {finite.min():.6g}, max {finite.max():.6g}" if finite.size else "no finite value"
    bad = "" if finite.size == array.size else f"; holds {_bad_values(array)}"
    return f"{where}: {span}{bad}"


def _hint(step, inputs, value, assigns):
    """The likely cause: a bad value that came in from outside the run, a known trap of the op, or an overflow."""
    for node, array in zip(step.inputs, inputs):
        if array.dtype.kind == "f" and not np.isfinite(array).all():
            if node.op.is_fed:
                return f"The NaN/Inf came in with the feed of '{node.name}': check the data fed to it"
            return (f"The NaN/Inf was already in {node.op.name} '{node.name}' before this run (a run without "
                    "check_numerics, or a value assigned from outside, put it there)")
    for n in step.nodes:
        if type(n.op) in HINTS:
            return f"Hint: {HINTS[type(n.op)]}."
    for node, array in zip(step.inputs, inputs):
        if node.op.is_variable and array.dtype.kind == "f" and array.size and np.abs(array).max() > 1e15:
            return (f"Hint: the variable '{node.name}' holds values up to {np.abs(array).max():.3g}: a learning "
                    "rate that large, or weights grown that large because training diverged (a learning rate too "
                    "large, exploding gradients); lower the rate, or clip the gradients (e.g. optim.SGD(..., "
                    "clip_norm=1.0)).")
    if np.isinf(value).any():
        largest = np.finfo(value.dtype).max
        training = (": in a training program this usually means training has diverged — a learning rate too "
                    "large or exploding gradients; lower the rate, or clip the gradients (e.g. optim.SGD(..., "
                    "clip_norm=1.0))" if assigns else "")
        return f"Hint: the result overflowed {value.dtype} (largest finite value {largest:.4g}){training}."
    return ("Hint: NaN from finite inputs comes from an overflow inside the op followed by inf - inf, 0 · inf or "
            "inf / inf: look for inputs of very large magnitude.")
