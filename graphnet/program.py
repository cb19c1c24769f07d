"""Program: a compiled schedule, run many times with new feeds.

The first run with a new combination of feed shapes makes a *plan* for it — concrete shapes, kernel parameters,
the memory plan and the buffers — and keeps it; every later run with those shapes only copies the feeds in, calls
the kernels in order and copies the fetches out. `print(prog)` shows the schedule as a table.

A plan is made in two stages. Its *layout* (shapes, steps, the offset of every buffer in the arena) costs no
memory and is all that `describe` and `plan` need; its *binding* (the arena allocated, every value a view into
it) happens before the first run with those shapes. A program keeps the plans of its PLAN_CACHE_SIZE most
recently used feed shapes (a least-recently-used cache): a run with an older shape makes its plan again.
"""
import contextlib
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np

from .errors import FeedError, GraphError, ShapeError, ShapeRuleViolation, note_running
from .graph import Tensor, check_sizes, format_shape
from .memory import Buffer, aligned, plan_offsets
from .numerics import run_checked
from .op import numel


class RngState:
    """The run counter that keys counter-based random ops (dropout): run k draws stream k of each seed.

    first_sample: the place of this run's first sample in a larger batch, of which it runs a shard (data-parallel
    training: graphnet/distributed); a dropout then draws the numbers of the stream that the same samples draw in
    the whole batch, so the shards' masks together are the whole batch's mask. 0 for a run of the whole batch."""

    def __init__(self):
        self.counter = 0
        self.first_sample = 0


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
    view_of: int = None     # for a free view (kernel None): the index of the input whose buffer it shares

    @property
    def node(self):
        """The node whose value this step writes."""
        return self.nodes[-1]

    @property
    def op_name(self):
        return "+".join(n.op.name for n in self.nodes)


# How many plans (one per combination of feed shapes) a program keeps, the least recently used dropped first.
PLAN_CACHE_SIZE = 8


@dataclass
class Plan:
    """Everything a run with one combination of feed shapes needs, made once.

    The layout (the first five fields) is made by `Program._make_plan` and takes no memory; `Program._bind`
    allocates the arena and fills in the last three before the first run with these shapes."""
    shapes: dict
    steps: list
    buffers: list           # one per computed value and feed, then the kernels' workspaces; each has its offset
    arena_nbytes: int
    naive_nbytes: int
    values: dict = None     # node -> its array (arena view, variable storage or feed buffer)
    calls: list = None      # (fn, out, ins, params) for the steps that run a kernel
    call_nodes: list = None  # the node of each call, for error messages
    feed_readers: dict = None   # placeholder -> [(a call's input list, position)]: where its kernels read it

    @property
    def bound(self):
        """Whether the arena is allocated and the calls are ready to run."""
        return self.calls is not None


def is_workspace(buffer):
    """Whether an arena buffer is a kernel's scratch memory (key ('workspace', step index)) rather than a value."""
    return isinstance(buffer.key, tuple) and buffer.key[0] == "workspace"


def fusion_link(element):
    """One element of a backend's fusion pattern as (op name, input slot): a plain name means the chain's previous
    node is that op's first input; ("sub", 1) means its second (as in sub(w, mul(lr, g)))."""
    return (element, 0) if isinstance(element, str) else (element[0], int(element[1]))


class Program:
    def __init__(self, fetches, single, order, nodes, backend, reuse_memory, check_numerics=False):
        self.fetches = fetches
        self.single = single
        self.order = order
        self.backend = backend
        self.reuse_memory = reuse_memory
        by_id = sorted(nodes, key=lambda n: n.id)
        self.nodes = by_id
        self.placeholders = [n for n in by_id if n.op.is_fed]
        self.stored = [n for n in by_id if n.op.is_stored]
        # A fetched variable that this program also assigns is fetched as the run's reads of it saw it: before
        # the update (the value after it is the assign node's, or the variable's at the next run).
        self.assigned = [n.inputs[0] for n in by_id if n.op.writes_variable]
        self.fetched_before_update = [f for f in fetches if f in self.assigned]
        self.check_numerics = bool(check_numerics)     # every run stops at the first NaN or Inf (numerics.py)
        self.rng = RngState()
        # A run holds this program's lock and the lock of every variable it reads or writes, taken in one global
        # order (by id) so that two programs sharing variables cannot deadlock.
        self._lock = threading.Lock()
        self._state_locks = [s.lock for s in sorted({id(n.attrs["state"]): n.attrs["state"]
                                                     for n in self.stored}.values(), key=id)]
        self._plans = OrderedDict()     # feed shapes -> Plan, the most recently used last (PLAN_CACHE_SIZE)
        self._plans_lock = threading.Lock()     # plan() and describe() may run beside a run
        self._last_plan = None

    def rng_state(self):
        """The random state of this program (the run counter dropout keys its masks with), for checkpoints."""
        return {"counter": self.rng.counter}

    def set_rng_state(self, state):
        self.rng.counter = int(state["counter"])

    # -- running -------------------------------------------------------------------------------------------------
    def run(self, feeds=None, check_numerics=None):
        """Feed the placeholders, run the schedule, return the fetches as NumPy arrays (in the fetches' form).

        check_numerics: stop at the first step that writes NaN or Inf with a NumericsError naming the op, your
        line and its inputs' ranges (slow: for debugging); None takes the program's setting (compile's argument).

        Safe to call from several Python threads: runs of one program, and runs of programs that share a
        variable, take turns (each sees and leaves the variables whole); other programs run at the same time."""
        checked = self.check_numerics if check_numerics is None else check_numerics
        with self._exclusive():
            plan, before_update = self._execute(feeds, check_numerics=checked)
            results = [before_update[f] if f in before_update else self.backend.to_host(plan.values[f])
                       for f in self.fetches]
        return results[0] if self.single else results

    @contextlib.contextmanager
    def _exclusive(self):
        with contextlib.ExitStack() as held:
            held.enter_context(self._lock)
            for lock in self._state_locks:
                held.enter_context(lock)
            yield

    def _execute(self, feeds, call_seconds=None, check_numerics=False):
        """One run of the schedule: feeds in, every call in order. The loop is chosen once per run: the plain one;
        with `call_seconds` (a list per call) the timed one; with `check_numerics` the checked one (numerics.py)."""
        arrays = self._check_feeds(feeds or {})
        plan = self._plan_for(arrays)
        backend = self.backend
        backend.prepare_calling_thread()
        for node in self.stored:
            node.attrs["state"].on(backend)       # pull values written elsewhere (host, another device)
        self._feed(plan, arrays)
        self.rng.counter += 1
        before_update = {f: backend.to_host(plan.values[f]) for f in self.fetched_before_update}
        try:
            if call_seconds is not None:
                _call_timed(plan, backend, call_seconds)
            elif check_numerics:
                run_checked(self, plan)
            else:
                _call(plan)
        finally:
            self._feed_readers_to_arena(plan)       # keep no reference to the caller's arrays after the run
        return plan, before_update

    def _feed(self, plan, arrays):
        """Give the kernels each feed. A C-contiguous array of the placeholder's dtype on a host backend is read
        where it lies (no copy: an 8 MB batch costs ~0.6 ms to copy); anything else is converted into the
        placeholder's buffer in the arena."""
        backend = self.backend
        for node, array in arrays.items():
            readers = plan.feed_readers.get(node)
            if (readers and backend.reads_host_arrays and type(array) is np.ndarray and array.dtype == node.dtype
                    and array.flags.c_contiguous and array.flags.aligned):
                for ins, position in readers:
                    ins[position] = array
            else:
                backend.copy_in(plan.values[node], array)

    @staticmethod
    def _feed_readers_to_arena(plan):
        for node, readers in plan.feed_readers.items():
            for ins, position in readers:
                ins[position] = plan.values[node]

    def _check_feeds(self, feeds):
        """{placeholder: array}: each placeholder of this program's graph fed once (as the tensor or by its name)
        with a value that fits it (check_feed), and every placeholder the fetches need fed."""
        if not isinstance(feeds, dict):
            raise FeedError(f"feeds must be a dict {{placeholder: array}}, got {type(feeds).__name__}")
        graph = self.fetches[0].graph
        by_name = {n.name: n for n in graph.nodes if n.op.is_fed}
        arrays, fed_as = {}, {}
        for key, value in feeds.items():
            node = by_name.get(key) if isinstance(key, str) else key
            what = f"'{key}'" if isinstance(key, str) else repr(key)
            if not isinstance(node, Tensor) or not node.op.is_fed:
                raise FeedError(f"cannot feed {what}: only placeholders are fed; this program's are "
                                f"{', '.join(repr(p.name) for p in self.placeholders) or 'none'}")
            if node.graph is not graph:
                namesake = by_name.get(node.name)
                raise FeedError(f"placeholder '{node.name}' ({node.site}) belongs to another graph than this "
                                f"program's fetches ({', '.join(repr(f.name) for f in self.fetches)}); a program "
                                "is fed the placeholders of the graph it was built from"
                                + (f": feed its '{node.name}' ({namesake.site}) instead" if namesake is not None
                                   else ""))
            if node in fed_as:
                raise FeedError(f"placeholder '{node.name}' ({node.site}) is fed twice, as {fed_as[node]} and as "
                                f"{'the name ' + what if isinstance(key, str) else 'the tensor'}; feed it once")
            fed_as[node] = f"the name '{key}'" if isinstance(key, str) else "the tensor"
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
        """The plan for a run with these feeds, bound (its arena allocated) and ready to run."""
        plan = self._cached_plan({p: arrays[p].shape for p in self.placeholders})
        if not plan.bound:
            self._bind(plan)
        self._last_plan = plan
        return plan

    def _cached_plan(self, feed_shapes):
        """The plan for these feed shapes from the cache (which it becomes the most recent entry of), or a new
        layout; the least recently used plan is dropped, with its arena, when there are more than
        PLAN_CACHE_SIZE."""
        key = tuple(tuple(feed_shapes[p]) for p in self.placeholders)
        with self._plans_lock:
            plan = self._plans.pop(key, None)
            if plan is None:
                plan = self._make_plan(feed_shapes)
            self._plans[key] = plan
            while len(self._plans) > PLAN_CACHE_SIZE:
                self._plans.popitem(last=False)
        return plan

    # -- planning ------------------------------------------------------------------------------------------------
    def _make_plan(self, feed_shapes):
        """The layout for these feed shapes: concrete shapes, steps (kernels chosen, costs counted) and the memory
        plan's offsets. Nothing is allocated: `_bind` does that before a run."""
        backend = self.backend
        shapes = self._concrete_shapes(feed_shapes)
        steps = [self._make_step(chain, pattern, shapes) for chain, pattern in self._fuse(shapes)]
        buffers = self._lifetimes(steps, shapes)
        for index, step in enumerate(steps):
            if step.kernel is None:
                continue
            nbytes = backend.workspace_nbytes(step.kernel_name, step.params, [shapes[i] for i in step.inputs],
                                              shapes[step.node], step.node.dtype)
            if nbytes:
                buffers.append(Buffer(("workspace", index), nbytes, index, index))
        arena_nbytes = plan_offsets(buffers, reuse=self.reuse_memory)
        naive = sum(aligned(b.nbytes) for b in buffers)
        return Plan(shapes, steps, buffers, arena_nbytes, naive)

    def _bind(self, plan):
        """Allocate the plan's arena and give every value its array: a view of the arena at its offset, the
        storage of a variable or constant, or (for a free view or an assignment) its source's array. Then the
        calls: (kernel, out, ins, params) for each step that runs one."""
        backend, shapes, steps = self.backend, plan.shapes, plan.steps
        self._check_runnable(shapes)
        arena = backend.allocate(max(plan.arena_nbytes, 1))
        values = {node: node.attrs["state"].on(backend) for node in self.stored}
        for b in plan.buffers:
            if is_workspace(b):
                steps[b.key[1]].params["workspace"] = backend.view(arena, b.offset, (b.nbytes,), np.uint8)
            else:
                values[b.key] = backend.view(arena, b.offset, shapes[b.key], b.key.dtype)
        for step in steps:
            node = step.node
            if node.op.writes_variable:
                values[node] = values[node.inputs[0]]          # the variable's own storage
            elif step.kernel is None:
                values[node] = backend.reshape(values[node.inputs[step.view_of]], shapes[node])
        calls = []
        for step in steps:
            step.ins = [values[i] for i in step.inputs]
            step.out = values[step.node]
            if step.kernel is not None:
                calls.append((step.kernel, step.out, step.ins, step.params))
        plan.values, plan.calls = values, calls
        plan.call_nodes = [s.node for s in steps if s.kernel is not None]
        # A feed the kernels may read where the user's array lies: not fetched, no view of it taken.
        viewed = {s.node.inputs[s.view_of] for s in steps if s.kernel is None}
        plan.feed_readers = {p: [(s.ins, k) for s in steps if s.kernel is not None
                                 for k, i in enumerate(s.inputs) if i is p]
                             for p in self.placeholders if p not in viewed and p not in self.fetches}
        return plan

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
        if first.op.uses_rng:
            params["rng"] = self.rng
        view_of = node.op.view_of([shapes[i] for i in node.inputs], shapes[node]) if len(chain) == 1 else None
        is_view = view_of is not None and self._can_alias(node, view_of)
        if len(chain) > 1:
            kernel_name = backend.fusions[pattern]
        else:
            kernel_name = node.op.name
        flops = 0 if is_view else sum(n.op.flops([shapes[i] for i in n.inputs], shapes[n], n.attrs) for n in chain)
        read = {id(i): i for i in inputs}.values()      # a fused step may take one array twice: count it once
        moved = 0 if is_view else (sum(numel(shapes[i]) * i.dtype.itemsize for i in read)
                                   + numel(shapes[node]) * node.dtype.itemsize)
        if is_view:
            step = Step(chain, inputs, None, "view (no copy)", params, view_of=view_of)
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
        for assignment in (n for n in chain if n.op.writes_variable):
            variable = assignment.inputs[0]
            if any(variable in n.inputs and position[n] >= position[node] for n in position if n not in chain):
                return None
        return chain

    @staticmethod
    def _can_alias(node, index):
        source = node.inputs[index]
        return not source.op.is_stored          # a view of stored state would see it change

    def _concrete_shapes(self, feed_shapes):
        shapes = {}
        for node in self.nodes:
            if node.op.is_fed:
                shapes[node] = tuple(feed_shapes[node])
                continue
            try:
                shape = tuple(node.op.infer_shape([shapes[i] for i in node.inputs], node.attrs,
                                                  [shapes[r] for r in node.refs]))
            except ShapeRuleViolation as violation:
                raise ShapeError(f"{node.op.name} '{node.name}' ({node.site}): {violation} (with the feeds "
                                 f"{self._fed(feed_shapes)})") from None
            if len(shape) != len(node.shape) or any(d is not None and d != c for d, c in zip(node.shape, shape)):
                raise GraphError(f"internal: {node.op.name} '{node.name}' inferred {format_shape(shape)} at run "
                                 f"time but {format_shape(node.shape)} at build time")
            check_sizes(shape, f"{node.op.name} '{node.name}' ({node.site}) with the feeds {self._fed(feed_shapes)}")
            shapes[node] = shape
        return shapes

    @staticmethod
    def _fed(feed_shapes):
        return ", ".join(f"'{p.name}' {format_shape(s)}" for p, s in feed_shapes.items()) or "none"

    def _check_runnable(self, shapes):
        """Shapes every rule allows but no run can compute (e.g. batch norm's variance of one value): refused when
        a plan is bound for a run — describing it is still fine."""
        feed_shapes = {p: shapes[p] for p in self.placeholders}
        for node in self.nodes:
            try:
                node.op.check_runnable([shapes[i] for i in node.inputs], node.attrs)
            except ShapeRuleViolation as violation:
                raise ShapeError(f"{node.op.name} '{node.name}' ({node.site}): {violation} (with the feeds "
                                 f"{self._fed(feed_shapes)})") from None

    def _lifetimes(self, steps, shapes):
        """One arena buffer per computed value (and per feed), live from its writer to its last reader. A view
        extends the life of the buffer it looks into; an assignment writes variable storage, not the arena."""
        root = {}
        for step in steps:
            node = step.node
            if step.kernel is None:
                source = node.inputs[step.view_of]
                root[node] = root.get(source, source)
        buffers = {}
        for p in self.placeholders:
            buffers[p] = Buffer(p, numel(shapes[p]) * p.dtype.itemsize, -1, -1)
        for index, step in enumerate(steps):
            node = step.node
            if step.kernel is not None and not node.op.writes_variable:
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
        return list(buffers.values())

    # -- reading -------------------------------------------------------------------------------------------------
    def plan(self, batch_size=None, feed_shapes=None):
        """The plan for given feed shapes, or with every None size of the placeholders set to `batch_size` (without
        either: the last run's plan, else batch size 1). A plan no run has used yet is a layout only: it allocates
        nothing, so describing a program at any batch size costs no memory."""
        if feed_shapes is None:
            if batch_size is None and self._last_plan is not None:
                return self._last_plan
            n = 1 if batch_size is None else batch_size
            feed_shapes = {p: tuple(n if d is None else d for d in p.shape) for p in self.placeholders}
        return self._cached_plan(feed_shapes)

    def __str__(self):
        return self.describe()

    def __repr__(self):
        fetched = ", ".join(repr(f.name) for f in self.fetches)
        return (f"<Program on '{self.backend.name}': {len(self.order)} ops, fetches {fetched}; print(program) shows "
                f"the schedule>")

    def _repr_svg_(self):
        """A notebook shows the program as a picture of its schedule (gn.draw), or as text where no renderer is
        installed."""
        from .drawing import svg_or_none
        return svg_or_none(self)

    def describe(self, batch_size=None, phases=None):
        """The schedule as a table: one row per step, forward then backward, and the memory plan's summary.
        Describing allocates nothing (the memory plan is a layout of offsets), whatever the batch size.

        phases: show only the rows of these phases, e.g. ("forward", "backward") to leave out the optimizer's
        update steps (a line says how many were left out; the totals still count every step)."""
        fresh = self._last_plan is None or batch_size is not None
        plan = self.plan(batch_size)
        return format_schedule(self, plan, fresh and batch_size is None, phases)

    def profile(self, feeds=None, repeat=20):
        """Time each step: the median over `repeat` whole runs (after one to warm up), in seconds; returns
        [(step, seconds)] and prints a table. The runs are real runs: a training program's updates happen."""
        with self._exclusive():
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


def _call(plan):
    """The steady-state loop: every kernel in order, and nothing else."""
    index = 0
    try:
        for index, (fn, out, ins, params) in enumerate(plan.calls):
            fn(out, *ins, **params)
    except Exception as error:
        note_running(error, plan.call_nodes[index])
        raise


def _call_timed(plan, backend, call_seconds):
    """Every kernel in order, each timed between two synchronizations (a GPU's time counts where it is spent)."""
    index = 0
    try:
        for index, (fn, out, ins, params) in enumerate(plan.calls):
            backend.synchronize()
            start = time.perf_counter()
            fn(out, *ins, **params)
            backend.synchronize()
            call_seconds[index].append(time.perf_counter() - start)
    except Exception as error:
        note_running(error, plan.call_nodes[index])
        raise


def check_feed(node, value):
    """The fed value as an array, after checking that it is one (not a ragged list), its rank, its sizes, that its
    dtype converts safely and that its values fit the placeholder's integer dtype (no wrapping around)."""
    try:
        array = np.asarray(value)
    except (ValueError, TypeError) as error:
        raise FeedError(f"placeholder '{node.name}' ({node.site}) expects an array of shape "
                        f"{format_shape(node.shape)}; the value fed is not one (rows of different lengths?): "
                        f"{error}") from None
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
            or (target.kind == "f" and source.kind in "iub")
            or (target.kind in "iu" and source.kind in "iu"))       # integers: their values are checked below
    if not safe:
        raise FeedError(f"placeholder '{node.name}' ({node.site}) has dtype {target}; a {source} array does not "
                        f"convert safely" + (" (floats are not class labels: round them and cast to int64)"
                                             if target.kind in "iu" and source.kind == "f" else ""))
    if target.kind in "iu" and source.kind in "iu" and not np.can_cast(source, target, "safe") and array.size:
        low, high = np.iinfo(target).min, np.iinfo(target).max
        outside = array[(array < low) | (array > high)]
        if outside.size:
            raise FeedError(f"placeholder '{node.name}' ({node.site}) has dtype {target}, which holds {low}..{high}; "
                            f"the {source} array fed has {outside[0]} ({outside.size} value(s) outside), which "
                            f"would wrap around. Feed values in range, or declare the placeholder with a wider "
                            f"dtype such as 'int64'")
    from .graph import MAX_SIZE
    too_long = [size for size in array.shape if size > MAX_SIZE]
    if too_long:
        raise FeedError(f"placeholder '{node.name}' ({node.site}): the array fed has shape "
                        f"{format_shape(array.shape)}, an axis of {too_long[0]} elements; graphnet's limit is "
                        f"2**31 - 1 = {MAX_SIZE} per axis (BLAS and the kernels index an axis with a 32-bit int)")
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
