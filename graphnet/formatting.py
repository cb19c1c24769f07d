"""Formatting: the tables graphnet prints, and the numbers in them.

    format_schedule   print(program): one row per step, then the totals and the memory plan
    format_profile    program.profile(): each step's median time, share and GFLOP/s
    step_name         a step's name in those tables (train/conv1/conv2d+relu for a fused step)
    format_si         1.23 GFLOP: a count with a decimal prefix
    format_bytes      4.50 MiB: a size with a binary prefix

model.summary() (nn/summary.py) uses the same numbers.
"""
from .graph import format_shape
from .op import numel

SI_PREFIXES = ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k"))
BINARY_UNITS = ((2 ** 30, "GiB"), (2 ** 20, "MiB"), (2 ** 10, "KiB"))


def format_si(value, unit="", largest="T"):
    """`value` with the largest decimal prefix it reaches, up to `largest`, and two decimals: 1.23 kFLOP; below a
    thousand a whole number: 980 FLOP."""
    top = dict((prefix, scale) for scale, prefix in SI_PREFIXES)[largest]
    for scale, prefix in SI_PREFIXES:
        if scale <= top and abs(value) >= scale:
            return f"{value / scale:.2f} {prefix}{unit}".rstrip()
    return f"{value:.0f} {unit}".rstrip()


def format_bytes(n, largest="GiB"):
    """`n` bytes in the largest binary unit it reaches, up to `largest`: 4.50 MiB; below a KiB: 512 B."""
    top = dict((unit, scale) for scale, unit in BINARY_UNITS)[largest]
    for scale, unit in BINARY_UNITS:
        if scale <= top and n >= scale:
            return f"{n / scale:.2f} {unit}"
    return f"{n} B"


def step_name(nodes, width=34):
    """A step's name: the node's, or for a fused step the nodes' names joined by '+' with the first one's scope
    not repeated (train/conv1/conv2d+relu); a name longer than `width` keeps its end."""
    first = nodes[0].name
    scope = first.rsplit("/", 1)[0] + "/" if "/" in first else ""
    name = "+".join([first] + [n.name[len(scope):] if scope and n.name.startswith(scope) else n.name
                               for n in nodes[1:]])
    return name if len(name) <= width else "…" + name[-(width - 1):]


def format_schedule(program, plan, guessed_batch, phases=None):
    """The schedule of `program` with `plan`'s shapes: a header (device, feeds, fetches), one row per step grouped
    by phase (only `phases` if given: a line counts the rows left out), then the FLOPs per run, the memory plan
    and the stored bytes. guessed_batch: the feeds' None sizes were set to 1 for want of a run, and a note says so."""
    steps = plan.steps
    per_phase = {}
    for s in steps:
        per_phase[s.node.phase] = per_phase.get(s.node.phase, 0) + 1
    counts = ", ".join(f"{n} {p}" for p, n in per_phase.items())
    feeds = ", ".join(f"{p.name} {format_shape(plan.shapes[p])}" for p in program.placeholders) or "none"
    lines = [f"Program on '{program.backend.name}': {len(steps)} step{'s' if len(steps) != 1 else ''} ({counts})",
             f"  feeds: {feeds}" + ("   [None sizes shown as 1: run the program, or describe(batch_size=N)]"
                                    if guessed_batch and any(None in p.shape for p in program.placeholders) else ""),
             f"  fetches: {', '.join(f.name for f in program.fetches)}", ""]
    header = (f"{'#':>3}  {'phase':<8} {'op':<30} {'name':<34} {'output shape':<18} {'FLOPs':>10} {'bytes':>10}"
              f"  kernel")
    lines += [header, "-" * len(header)]
    previous = None
    hidden = {}
    for index, s in enumerate(steps):
        node = s.node
        if phases is not None and node.phase not in phases:
            hidden[node.phase] = hidden.get(node.phase, 0) + 1
            continue
        if previous is not None and node.phase != previous:
            lines.append("")
        previous = node.phase
        first = s.nodes[0]
        op = s.op_name + (f" {first.op.describe(first.attrs)}" if first.op.describe(first.attrs) else "")
        lines.append(f"{index:>3}  {node.phase:<8} {op:<30.30} {step_name(s.nodes):<34} "
                     f"{format_shape(plan.shapes[node]):<18} {format_si(s.flops):>10} {format_bytes(s.nbytes):>10}"
                     f"  {s.label}")
    if hidden:
        lines += ["", "  (not shown: " + ", ".join(f"{n} {p} steps" for p, n in hidden.items()) + ")"]
    total_flops = sum(s.flops for s in steps)
    stored = sum(numel(plan.shapes[n]) * n.dtype.itemsize for n in program.stored)
    saved = 1 - plan.arena_nbytes / plan.naive_nbytes if plan.naive_nbytes else 0.0
    lines += ["", f"total: {format_si(total_flops, 'FLOP')} per run",
              f"memory plan: {len(plan.buffers)} buffers in one arena of {format_bytes(plan.arena_nbytes)} "
              f"(planned peak) vs {format_bytes(plan.naive_nbytes)} naive (a buffer each): {saved:.0%} saved by reuse",
              f"stored (variables and constants): {format_bytes(stored)}"]
    return "\n".join(lines)


def format_profile(timed_steps):
    """The profile's table from [(step, seconds)]: each step's time, its share of the run and its GFLOP/s."""
    total = sum(t for _, t in timed_steps) or 1.0
    lines = [f"{'step':>4}  {'op':<28} {'name':<34} {'time':>10} {'share':>6} {'GFLOP/s':>8}"]
    for index, (step, t) in enumerate(timed_steps):
        rate = step.flops / t / 1e9 if t else 0.0
        lines.append(f"{index:>4}  {step.op_name:<28} {step_name(step.nodes):<34} {t * 1e6:>8.1f}µs "
                     f"{t / total:>6.1%} {rate:>8.2f}")
    lines.append(f"total {total * 1e3:.3f} ms per run (the steps' medians summed)")
    return "\n".join(lines)
