"""Program: a compiled schedule, run many times with new feeds.

The first run with a new combination of feed shapes makes a *plan* for it — concrete shapes, kernel parameters,
the memory plan and the buffers — and keeps it; every later run with those shapes only copies the feeds in, calls
the kernels in order and copies the fetches out (on a host backend a fetch that a kernel computes is written
straight into a fresh array instead, which the run returns: no copy). `print(prog)` shows the schedule as a table.

A plan is made in two stages. Its *layout* (shapes, steps, the offset of every buffer in the arena: planning.py)
costs no memory and is all that `describe` and `plan` need; its *binding* (the arena allocated, every value a view
into it: `Program._bind`) happens before the first run with those shapes. A program keeps the plans of its
PLAN_CACHE_SIZE most recently used feed shapes (a least-recently-used cache): a run with an older shape makes its
plan again. This module runs plans; the tables it prints are made in formatting.py.
"""
import contextlib
import threading
import time
from collections import OrderedDict

import numpy as np

from .errors import FeedError, note_running
from .formatting import format_profile, format_schedule
from .graph import Tensor, format_shape
from .numerics import run_checked
from .planning import check_runnable, is_workspace, make_plan


class RngState:
    """The run counter that keys counter-based random ops (dropout): run k draws stream k of each seed.

    first_sample: the place of this run's first sample in a larger batch, of which it runs a shard (data-parallel
    training: graphnet/distributed); a dropout then draws the numbers of the stream that the same samples draw in
    the whole batch, so the shards' masks together are the whole batch's mask. 0 for a run of the whole batch."""

    def __init__(self):
        self.counter = 0
        self.first_sample = 0


# How many plans (one per combination of feed shapes) a program keeps, the least recently used dropped first.
PLAN_CACHE_SIZE = 8


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
        self._by_name = None            # (the graph's node count, its placeholders by name): _placeholders_by_name

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
            plan, ready = self._execute(feeds, check_numerics=checked)
            results = [ready[f] if f in ready else self.backend.to_host(plan.values[f]) for f in self.fetches]
        return results[0] if self.single else results

    @contextlib.contextmanager
    def _exclusive(self):
        held = []
        try:
            for lock in [self._lock, *self._state_locks]:
                lock.acquire()
                held.append(lock)
            yield
        finally:
            for lock in reversed(held):
                lock.release()

    def _execute(self, feeds, call_seconds=None, check_numerics=False):
        """One run of the schedule: feeds in, every call in order; returns the plan and the fetches already on the
        host ({node: array}: the variables as the run read them, and the fetches written straight into fresh
        arrays). The loop is chosen once per run: the plain one; with `call_seconds` (a list per call) the timed
        one; with `check_numerics` the checked one (numerics.py)."""
        arrays = self._check_feeds(feeds or {})
        plan = self._plan_for(arrays)
        backend = self.backend
        backend.prepare_calling_thread()
        for node in self.stored:
            node.attrs["state"].on(backend)       # pull values written elsewhere (host, another device)
        try:
            self._feed(plan, arrays)
            self.rng.counter += 1
            ready = {f: backend.to_host(plan.values[f]) for f in self.fetched_before_update}
            ready.update(self._fetch_writers_to_fresh(plan))
            if call_seconds is not None:
                _call_timed(plan, backend, call_seconds)
            elif check_numerics:
                run_checked(self, plan)
            else:
                _call(plan)
        finally:
            self._feed_readers_to_arena(plan)       # keep no reference to the caller's arrays after the run
            self._fetch_writers_to_arena(plan)      # nor to the arrays handed to the caller
        return plan, ready

    def _feed(self, plan, arrays):
        """Give the kernels each feed. A C-contiguous array of the placeholder's dtype on a host backend is read
        where it lies (no copy: an 8 MB batch costs ~0.6 ms to copy); anything else is converted into the
        placeholder's buffer in the arena."""
        backend = self.backend
        for node, array in arrays.items():
            readers = plan.feed_readers.get(node)
            if (readers and backend.reads_host_arrays and type(array) is np.ndarray and array.dtype == node.dtype
                    and array.flags.c_contiguous and array.flags.aligned):
                _point(readers, array)
            else:
                backend.copy_in(plan.values[node], array)

    @staticmethod
    def _feed_readers_to_arena(plan):
        for node, readers in plan.feed_readers.items():
            _point(readers, plan.values[node])

    @staticmethod
    def _fetch_writers_to_fresh(plan):
        """A fresh array for each fetch in plan.fetch_writers, given to the call that writes it and to the calls
        that read it: the run returns it as it is, where a copy out of the arena would read and write it once more
        (10 MB of pooling gradient: as long as the pooling step itself)."""
        fresh = {}
        for node, (call, readers) in plan.fetch_writers.items():
            fresh[node] = call[1] = np.empty_like(plan.values[node])
            _point(readers, fresh[node])
        return fresh

    @staticmethod
    def _fetch_writers_to_arena(plan):
        for node, (call, readers) in plan.fetch_writers.items():
            call[1] = plan.values[node]
            _point(readers, plan.values[node])

    def _placeholders_by_name(self, graph):
        """{name: placeholder} of the graph, made again only when the graph has grown (a graph only gains nodes):
        not a walk over every node of a large model on every run."""
        if self._by_name is None or self._by_name[0] != len(graph.nodes):
            self._by_name = (len(graph.nodes), {n.name: n for n in graph.nodes if n.op.is_fed})
        return self._by_name[1]

    def _check_feeds(self, feeds):
        """{placeholder: array}: each placeholder of this program's graph fed once (as the tensor or by its name)
        with a value that fits it (check_feed), and every placeholder the fetches need fed."""
        if not isinstance(feeds, dict):
            raise FeedError(f"feeds must be a dict {{placeholder: array}}, got {type(feeds).__name__}")
        graph = self.fetches[0].graph
        by_name = self._placeholders_by_name(graph)
        arrays, fed_as = {}, {}
        for key, value in feeds.items():
            node = by_name.get(key) if isinstance(key, str) else key
            if not isinstance(node, Tensor) or not node.op.is_fed:
                what = f"'{key}'" if isinstance(key, str) else repr(key)
                raise FeedError(f"cannot feed {what}: only placeholders are fed; this program's are "
                                f"{', '.join(repr(p.name) for p in self.placeholders) or 'none'}")
            if node.graph is not graph:
                namesake = by_name.get(node.name)
                raise FeedError(f"placeholder '{node.name}' ({node.site}) belongs to another graph than this "
                                f"program's fetches ({', '.join(repr(f.name) for f in self.fetches)}); a program "
                                "is fed the placeholders of the graph it was built from"
                                + (f": feed its '{node.name}' ({namesake.site}) instead" if namesake is not None
                                   else ""))
            fed = f"the name '{key}'" if isinstance(key, str) else "the tensor"
            if node in fed_as:
                raise FeedError(f"placeholder '{node.name}' ({node.site}) is fed twice, as {fed_as[node]} and as "
                                f"{fed}; feed it once")
            fed_as[node] = fed
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
                plan = make_plan(self, feed_shapes)
            self._plans[key] = plan
            while len(self._plans) > PLAN_CACHE_SIZE:
                self._plans.popitem(last=False)
        return plan

    def _bind(self, plan):
        """Allocate the plan's arena and give every value its array: a view of the arena at its offset, the
        storage of a variable or constant, or (for a free view or an assignment) its source's array. Then the
        calls: (kernel, out, ins, params) for each step that runs one."""
        backend, shapes, steps = self.backend, plan.shapes, plan.steps
        check_runnable(self.nodes, shapes)
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
                calls.append([step.kernel, step.out, step.ins, step.params])
        plan.values, plan.calls = values, calls
        plan.call_nodes = [s.node for s in steps if s.kernel is not None]
        # A feed the kernels may read where the user's array lies: not fetched, no view of it taken.
        viewed = {s.node.inputs[s.view_of] for s in steps if s.kernel is None}
        running = [s for s in steps if s.kernel is not None]
        plan.feed_readers = {p: _readers(p, running)
                             for p in self.placeholders if p not in viewed and p not in self.fetches}
        plan.fetch_writers = self._fetch_writers(running, calls, viewed)
        return plan

    def _fetch_writers(self, running, calls, viewed):
        """{fetch: (the call that writes it, [(a call's input list, position)] where calls read it)} for the fetches
        a host backend's kernel may write straight into the array the run returns: computed by a kernel (not a
        variable's assignment), fetched once, no view taken of it. `running`: the steps that run a kernel, one per
        call."""
        if not self.backend.reads_host_arrays:
            return {}
        writer = {s.node: call for s, call in zip(running, calls)}
        return {f: (writer[f], _readers(f, running))
                for f in self.fetches if f in writer and not f.op.writes_variable and f not in viewed
                and self.fetches.count(f) == 1}

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
        print(format_profile(result))
        return result


def _readers(node, running):
    """[(a call's input list, position)] for every place where the kernels of `running` read `node`."""
    return [(s.ins, k) for s in running for k, i in enumerate(s.inputs) if i is node]


def _point(readers, array):
    """Have every reader (a call's input list, position) read `array`."""
    for ins, position in readers:
        ins[position] = array


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
    safe = (source == target or np.can_cast(source, target, "same_kind")
            or (target.kind == "f" and source.kind in "iub")
            or (target.kind in "iu" and source.kind in "iu"))       # integers: their values are checked below
    if not safe:
        raise FeedError(f"placeholder '{node.name}' ({node.site}) has dtype {target}; a {source} array does not "
                        f"convert safely" + (" (floats are not class labels: round them and cast to int64)"
                                             if target.kind in "iu" and source.kind == "f" else ""))
    if (source != target and target.kind in "iu" and source.kind in "iu" and not np.can_cast(source, target, "safe")
            and array.size):
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
