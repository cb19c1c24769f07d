"""Program: a compiled schedule, run many times with new feeds.

The first run with a new combination of feed shapes makes a *plan* for it — concrete shapes, kernel parameters,
the memory plan and the buffers — and keeps it; every later run with those shapes only copies the feeds in, calls
the kernels in order and copies the fetches out. `print(prog)` shows the schedule as a table.
"""
import time
from dataclasses import dataclass, field

import numpy as np

from .errors import FeedError, GraphError, ShapeError, ShapeRuleViolation
from .graph import Tensor, format_shape
from .memory import Buffer, aligned, plan_offsets
from .op import numel


class RngState:
    """The run counter that keys counter-based random ops (dropout): run k draws stream k of each seed."""

    def __init__(self):
        self.counter = 0


@dataclass
class Step:
    """One kernel call. Usually one node; a fused step runs a chain of nodes and writes only the last one."""
    nodes: list
    inputs: list            # the nodes whose values the kernel reads
    kernel: object          # fn(out, *inputs, **params), or None for a free view
    label: str
    params: dict
    out: object = None
    ins: list = field(default_factory=list)
    flops: int = 0
    nbytes: int = 0         # bytes read + written

    @property
    def node(self):
        """The node whose value this step writes."""
        return self.nodes[-1]

    @property
    def op_name(self):
        return "+".join(n.op.name for n in self.nodes)


@dataclass
class Plan:
    """Everything a run with one combination of feed shapes needs, made once."""
    shapes: dict
    steps: list
    buffers: list
    arena_nbytes: int
    naive_nbytes: int
    values: dict            # node -> its array (arena view, variable storage or feed buffer)
    calls: list             # (fn, out, ins, params) for the steps that run a kernel
    call_nodes: list        # the node of each call, for error messages


def fusion_link(element):
    """One element of a backend's fusion pattern as (op name, input slot): a plain name means the chain's previous
    node is that op's first input; ("sub", 1) means its second (as in sub(w, mul(lr, g)))."""
    return (element, 0) if isinstance(element, str) else (element[0], int(element[1]))


class Program:
    def __init__(self, fetches, single, order, nodes, backend, reuse_memory):
        self.fetches = fetches
        self.single = single
        self.order = order
        self.backend = backend
        self.reuse_memory = reuse_memory
        by_id = sorted(nodes, key=lambda n: n.id)
        self.nodes = by_id
        self.placeholders = [n for n in by_id if n.op.name == "placeholder"]
        self.stored = [n for n in by_id if n.op.name in ("variable", "constant")]
        # A fetched variable that this program also assigns is fetched as the run's reads of it saw it: before
        # the update (the value after it is the assign node's, or the variable's at the next run).
        assigned = {n.inputs[0] for n in by_id if n.op.name == "assign"}
        self.fetched_before_update = [f for f in fetches if f in assigned]
        self.rng = RngState()
        self._plans = {}
        self._last_plan = None

    def rng_state(self):
        """The random state of this program (the run counter dropout keys its masks with), for checkpoints."""
        return {"counter": self.rng.counter}

    def set_rng_state(self, state):
        self.rng.counter = int(state["counter"])

    # -- running -------------------------------------------------------------------------------------------------
    def run(self, feeds=None):
        """Feed the placeholders, run the schedule, return the fetches as NumPy arrays (in the fetches' form)."""
        plan, before_update = self._execute(feeds)
        results = [before_update[f] if f in before_update else self.backend.to_host(plan.values[f])
                   for f in self.fetches]
        return results[0] if self.single else results

    def _execute(self, feeds, call_seconds=None):
        """One run of the schedule: feeds in, every call in order. With `call_seconds` (a list per call), each call
        is timed — the backend synchronized before the clock is read, so a GPU's time counts where it is spent."""
        arrays = self._check_feeds(feeds or {})
        plan = self._plan_for(arrays)
        backend = self.backend
        for node in self.stored:
            node.attrs["state"].on(backend)       # pull values written elsewhere (host, another device)
        for node, array in arrays.items():
            backend.copy_in(plan.values[node], array)
        self.rng.counter += 1
        before_update = {f: backend.to_host(plan.values[f]) for f in self.fetched_before_update}
        for index, (fn, out, ins, params) in enumerate(plan.calls):
            try:
                if call_seconds is None:
                    fn(out, *ins, **params)
                    continue
                backend.synchronize()
                start = time.perf_counter()
                fn(out, *ins, **params)
                backend.synchronize()
                call_seconds[index].append(time.perf_counter() - start)
            except Exception as error:
                node = plan.call_nodes[index]
                error.add_note(f"while running {node.op.name} '{node.name}' created at {node.site}")
                raise
        return plan, before_update

    def _check_feeds(self, feeds):
        if not isinstance(feeds, dict):
            raise FeedError(f"feeds must be a dict {{placeholder: array}}, got {type(feeds).__name__}")
        graph = self.fetches[0].graph
        by_name = {n.name: n for n in graph.nodes if n.op.name == "placeholder"}
        arrays = {}
        for key, value in feeds.items():
            node = by_name.get(key) if isinstance(key, str) else key
            if not isinstance(node, Tensor) or node.op.name != "placeholder":
                what = f"'{key}'" if isinstance(key, str) else repr(key)
                raise FeedError(f"cannot feed {what}: only placeholders are fed; this program's are "
                                f"{', '.join(repr(p.name) for p in self.placeholders) or 'none'}")
            if node not in self.placeholders:
                continue                          # a placeholder these fetches do not need
            arrays[node] = check_feed(node, value)
        missing = [p for p in self.placeholders if p not in arrays]
        if missing:
            names = ", ".join(f"'{p.name}' {format_shape(p.shape)} {p.dtype}" for p in missing)
            wanted = ", ".join(repr(f.name) for f in self.fetches)
            raise FeedError(f"missing feeds: the fetches {wanted} need the placeholder(s) {names}; pass them as "
                            f"prog.run({{{missing[0].name}: array, ...}})")
        return arrays

    def _plan_for(self, arrays):
        key = tuple(arrays[p].shape for p in self.placeholders)
        plan = self._plans.get(key)
        if plan is None:
            plan = self._plans[key] = self._make_plan({p: arrays[p].shape for p in self.placeholders})
        self._last_plan = plan
        return plan

    # -- planning ------------------------------------------------------------------------------------------------
    def _make_plan(self, feed_shapes):
        backend = self.backend
        shapes = self._concrete_shapes(feed_shapes)
        steps = [self._make_step(chain, pattern, shapes) for chain, pattern in self._fuse(shapes)]
        buffers, root = self._lifetimes(steps, shapes)
        workspaces = []
        for index, step in enumerate(steps):
            if step.kernel is None:
                continue
            nbytes = backend.workspace_nbytes(step.kernel_name, step.params, [shapes[i] for i in step.inputs],
                                              shapes[step.node], step.node.dtype)
            if nbytes:
                workspaces.append(Buffer(("workspace", index), nbytes, index, index))
        all_buffers = buffers + workspaces
        arena_nbytes = plan_offsets(all_buffers, reuse=self.reuse_memory)
        naive = sum(aligned(b.nbytes) for b in all_buffers)
        arena = backend.allocate(max(arena_nbytes, 1))
        values = {}
        for node in self.stored:
            values[node] = node.attrs["state"].on(backend)
        for b in buffers:
            values[b.key] = backend.view(arena, b.offset, shapes[b.key], b.key.dtype)
        for step in steps:
            node = step.node
            if node.op.name == "assign":
                values[node] = values[node.inputs[0]]          # the variable's own storage
            elif step.kernel is None:
                values[node] = backend.reshape(values[node.inputs[node.op.view_of_input]], shapes[node])
        for b in workspaces:
            steps[b.key[1]].params["workspace"] = backend.view(arena, b.offset, (b.nbytes,), np.uint8)
        calls = []
        for step in steps:
            step.ins = [values[i] for i in step.inputs]
            step.out = values[step.node]
            if step.kernel is not None:
                calls.append((step.kernel, step.out, step.ins, step.params))
        call_nodes = [s.node for s in steps if s.kernel is not None]
        return Plan(shapes, steps, all_buffers, arena_nbytes, naive, values, calls, call_nodes)

    def _make_step(self, chain, pattern, shapes):
        """Bind one step: its kernel (chosen by the backend for these shapes), parameters and costs."""
        backend = self.backend
        first, node = chain[0], chain[-1]
        slots = [fusion_link(element)[1] for element in pattern[1:]] if pattern else []
        inputs = list(first.inputs) + [i for n, slot in zip(chain[1:], slots)
                                       for k, i in enumerate(n.inputs) if k != slot]
        in_shapes = [shapes[i] for i in inputs]
        params = first.op.kernel_params([shapes[i] for i in first.inputs], shapes[first], first.attrs,
                                        [shapes[r] for r in first.refs])
        if getattr(first.op, "uses_rng", False):
            params["rng"] = self.rng
        is_view = len(chain) == 1 and node.op.view_of_input is not None and self._can_alias(node)
        if len(chain) > 1:
            kernel_name = backend.fusions[pattern]
        else:
            kernel_name = node.op.name
        flops = 0 if is_view else sum(n.op.flops([shapes[i] for i in n.inputs], shapes[n], n.attrs) for n in chain)
        read = {id(i): i for i in inputs}.values()      # a fused step may take one array twice: count it once
        moved = 0 if is_view else (sum(numel(shapes[i]) * i.dtype.itemsize for i in read)
                                   + numel(shapes[node]) * node.dtype.itemsize)
        if is_view:
            step = Step(chain, inputs, None, "view (no copy)", params)
        else:
            params = backend.specialize(kernel_name, params, in_shapes, shapes[node], node.dtype)
            step = Step(chain, inputs, backend.kernel(kernel_name), backend.kernel_label(kernel_name, params), params,
                        flops=flops, nbytes=moved)
        step.kernel_name = kernel_name
        return step

    def _fuse(self, shapes):
        """Group the schedule into steps: chains of nodes the backend runs as one kernel, else single nodes.

        A chain a -> b fuses when b is a's only reader and takes a as the input the pattern says (its first,
        unless the pattern names another: see fusion_link), a is not fetched, and b's other inputs are ready before
        a runs (the fused step takes a's place in the schedule). A chain that ends in an assignment fuses only
        where every other read of the variable comes before that place: the fused step writes the variable.
        Returns [(chain, pattern)], pattern None for a single node."""
        fusions = self.backend.fusions
        if not fusions:
            return [([n], None) for n in self.order]
        position = {n: i for i, n in enumerate(self.order)}
        readers = {n: [] for n in self.order}
        for n in self.order:
            for i in n.inputs:
                if i in readers and n not in readers[i]:
                    readers[i].append(n)
        fetched = set(self.fetches)
        taken, groups = set(), []
        for node in self.order:
            if node in taken:
                continue
            chain, chosen = [node], None
            for pattern in sorted(fusions, key=len, reverse=True):
                candidate = self._match(node, pattern, readers, fetched, position, taken)
                if candidate and self.backend.can_fuse(pattern, candidate, shapes):
                    chain, chosen = candidate, pattern
                    break
            taken.update(chain)
            groups.append((chain, chosen))
        return groups

    @staticmethod
    def _match(node, pattern, readers, fetched, position, taken):
        if node.op.name != fusion_link(pattern[0])[0]:
            return None
        chain = [node]
        for element in pattern[1:]:
            op_name, slot = fusion_link(element)
            current = chain[-1]
            if current in fetched or len(readers[current]) != 1:
                return None
            nxt = readers[current][0]
            if (nxt in taken or nxt.op.name != op_name or len(nxt.inputs) <= slot or nxt.inputs[slot] is not current
                    or sum(i is current for i in nxt.inputs) != 1):
                return None
            others = [i for k, i in enumerate(nxt.inputs) if k != slot]
            if any(position.get(i, -1) >= position[node] for i in others):
                return None
            chain.append(nxt)
        for assignment in (n for n in chain if n.op.name == "assign"):
            variable = assignment.inputs[0]
            if any(variable in n.inputs and position[n] >= position[node] for n in position if n not in chain):
                return None
        return chain

    def _can_alias(self, node):
        source = node.inputs[node.op.view_of_input]
        return source.op.name not in ("variable", "constant")   # a view of stored state would see it change

    def _concrete_shapes(self, feed_shapes):
        shapes = {}
        for node in self.nodes:
            if node.op.name == "placeholder":
                shapes[node] = tuple(feed_shapes[node])
                continue
            try:
                shape = tuple(node.op.infer_shape([shapes[i] for i in node.inputs], node.attrs,
                                                  [shapes[r] for r in node.refs]))
            except ShapeRuleViolation as violation:
                fed = ", ".join(f"'{p.name}' {format_shape(s)}" for p, s in feed_shapes.items())
                raise ShapeError(f"{node.op.name} '{node.name}' ({node.site}): {violation} (with the feeds {fed})") from None
            if len(shape) != len(node.shape) or any(d is not None and d != c for d, c in zip(node.shape, shape)):
                raise GraphError(f"internal: {node.op.name} '{node.name}' inferred {format_shape(shape)} at run "
                                 f"time but {format_shape(node.shape)} at build time")
            shapes[node] = shape
        return shapes

    def _lifetimes(self, steps, shapes):
        """One arena buffer per computed value (and per feed), live from its writer to its last reader. A view
        extends the life of the buffer it looks into; an assignment writes variable storage, not the arena."""
        root = {}
        for step in steps:
            node = step.node
            if step.kernel is None:
                source = node.inputs[node.op.view_of_input]
                root[node] = root.get(source, source)
        buffers = {}
        for p in self.placeholders:
            buffers[p] = Buffer(p, numel(shapes[p]) * p.dtype.itemsize, -1, -1)
        for index, step in enumerate(steps):
            node = step.node
            if step.kernel is not None and node.op.name != "assign":
                buffers[node] = Buffer(node, numel(shapes[node]) * node.dtype.itemsize, index, index)
            for i in step.inputs:
                owner = root.get(i, i)
                if owner in buffers:
                    buffers[owner].last = max(buffers[owner].last, index)
        end = len(steps)
        for f in self.fetches:
            owner = root.get(f, f)
            if owner in buffers:
                buffers[owner].last = end
        return list(buffers.values()), root

    # -- reading -------------------------------------------------------------------------------------------------
    def plan(self, batch_size=None, feed_shapes=None):
        """The plan for given feed shapes, or with every None size of the placeholders set to `batch_size`."""
        if feed_shapes is None:
            if batch_size is None and self._last_plan is not None:
                return self._last_plan
            n = 1 if batch_size is None else batch_size
            feed_shapes = {p: tuple(n if d is None else d for d in p.shape) for p in self.placeholders}
        key = tuple(tuple(feed_shapes[p]) for p in self.placeholders)
        if key not in self._plans:
            self._plans[key] = self._make_plan(feed_shapes)
        return self._plans[key]

    def __str__(self):
        return self.describe()

    def describe(self, batch_size=None, phases=None):
        """The schedule as a table: one row per step, forward then backward, and the memory plan's summary.

        phases: show only the rows of these phases, e.g. ("forward", "backward") to leave out the optimizer's
        update steps (a line says how many were left out; the totals still count every step)."""
        fresh = self._last_plan is None or batch_size is not None
        plan = self.plan(batch_size)
        return format_schedule(self, plan, fresh and batch_size is None, phases)

    def profile(self, feeds=None, repeat=20):
        """Time each step: the median over `repeat` whole runs (after one to warm up), in seconds; returns
        [(step, seconds)] and prints a table. The runs are real runs: a training program's updates happen."""
        plan, _ = self._execute(feeds)
        call_seconds = [[] for _ in plan.calls]
        for _ in range(repeat):
            self._execute(feeds, call_seconds)
        seconds = dict(zip(plan.call_nodes, (float(np.median(t)) for t in call_seconds)))
        result = [(step, seconds.get(step.node, 0.0)) for step in plan.steps]
        total = sum(t for _, t in result) or 1.0
        print(f"{'step':>4}  {'op':<28} {'name':<34} {'time':>10} {'share':>6} {'GFLOP/s':>8}")
        for index, (step, t) in enumerate(result):
            rate = step.flops / t / 1e9 if t else 0.0
            print(f"{index:>4}  {step.op_name:<28} {step_name(step.nodes):<34} {t * 1e6:>8.1f}µs {t / total:>6.1%} "
                  f"{rate:>8.2f}")
        print(f"total {total * 1e3:.3f} ms per run (the steps' medians summed)")
        return result


def check_feed(node, value):
    """The fed value as an array, after checking its rank, its known sizes and that its dtype converts safely."""
    array = np.asarray(value)
    expected = node.shape
    if array.ndim != len(expected) or any(d is not None and d != a for d, a in zip(expected, array.shape)):
        hint = ""
        if len(expected) == 4 and array.ndim == 4 and expected[1] is not None and array.shape[3] == expected[1] \
                and array.shape[1] != expected[1]:
            hint = "; it looks NHWC: graphnet expects NCHW, use array.transpose(0, 3, 1, 2)"
        elif array.ndim == len(expected) - 1:
            hint = "; a size-1 axis is missing (a channel or batch axis?): use array[:, None] or array[None]"
        raise FeedError(f"placeholder '{node.name}' ({node.site}) expects shape {format_shape(expected)} (None = any "
                        f"size), got {format_shape(array.shape)}{hint}")
    target = node.dtype
    source = array.dtype
    safe = (np.can_cast(source, target, "same_kind")
            or (target.kind == "f" and source.kind in "iub"))
    if not safe:
        raise FeedError(f"placeholder '{node.name}' ({node.site}) has dtype {target}; a {source} array does not "
                        f"convert safely" + (" (floats are not class labels: round them and cast to int64)"
                                             if target.kind in "iu" and source.kind == "f" else ""))
    return array


def _si(value, unit=""):
    for scale, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= scale:
            return f"{value / scale:.2f} {prefix}{unit}".rstrip()
    return f"{value:.0f} {unit}".rstrip()


def _bytes(n):
    for scale, unit in ((2 ** 30, "GiB"), (2 ** 20, "MiB"), (2 ** 10, "KiB")):
        if n >= scale:
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
                     f"{format_shape(plan.shapes[node]):<18} {_si(s.flops):>10} {_bytes(s.nbytes):>10}  {s.label}")
    if hidden:
        lines += ["", "  (not shown: " + ", ".join(f"{n} {p} steps" for p, n in hidden.items()) + ")"]
    total_flops = sum(s.flops for s in steps)
    stored = sum(numel(plan.shapes[n]) * n.dtype.itemsize for n in program.stored)
    saved = 1 - plan.arena_nbytes / plan.naive_nbytes if plan.naive_nbytes else 0.0
    lines += ["", f"total: {_si(total_flops, 'FLOP')} per run",
              f"memory plan: {len(plan.buffers)} buffers in one arena of {_bytes(plan.arena_nbytes)} (planned peak) "
              f"vs {_bytes(plan.naive_nbytes)} naive (a buffer each): {saved:.0%} saved by reuse",
              f"stored (variables and constants): {_bytes(stored)}"]
    return "\n".join(lines)
