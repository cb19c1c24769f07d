"""Planning: what a run with one combination of feed shapes will do, worked out before any run does it.

    plan = make_plan(program, feed_shapes)      # shapes, steps, the memory plan's offsets; allocates nothing

1. concrete shapes   every node's shape with the feeds' sizes put in for None (each op's shape rule again)
2. steps             the schedule after fusion (fusion.py), each step with its kernel chosen by the backend for
                     these shapes, its parameters and its costs (FLOPs, bytes moved); a free view has no kernel
3. lifetimes         one arena buffer per computed value and feed, live from its writer to its last reader, and
                     the kernels' workspaces
4. layout            every buffer's offset in one arena (memory.py), so that buffers never live at once share bytes

A plan made here is a layout only: `Program` (program.py) allocates its arena and binds the calls before the first
run with those shapes, after `check_runnable`.
"""
from dataclasses import dataclass, field

from .errors import GraphError, ShapeError, ShapeRuleViolation
from .fusion import fuse
from .graph import check_sizes, format_shape
from .memory import Buffer, aligned, plan_offsets
from .op import numel


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
    op: type = None         # the op class whose kernel runs: the node's, or the fused op of a chain

    @property
    def node(self):
        """The node whose value this step writes."""
        return self.nodes[-1]

    @property
    def op_name(self):
        return "+".join(n.op.name for n in self.nodes)


@dataclass
class Plan:
    """Everything a run with one combination of feed shapes needs, made once.

    The layout (the first five fields) is made by `make_plan` and takes no memory; `Program._bind` allocates the
    arena and fills in the rest before the first run with these shapes."""
    shapes: dict
    steps: list
    buffers: list           # one per computed value and feed, then the kernels' workspaces; each has its offset
    arena_nbytes: int
    naive_nbytes: int
    values: dict = None     # node -> its array (arena view, variable storage or feed buffer)
    calls: list = None      # [fn, out, ins, params] for the steps that run a kernel
    call_nodes: list = None  # the node of each call, for error messages
    feed_readers: dict = None   # placeholder -> [(a call's input list, position)]: where its kernels read it
    fetch_writers: dict = None  # fetch -> (its call, [(a call's input list, position)]): written into a fresh array

    @property
    def bound(self):
        """Whether the arena is allocated and the calls are ready to run."""
        return self.calls is not None


def is_workspace(buffer):
    """Whether an arena buffer is a kernel's scratch memory (key ('workspace', step index)) rather than a value."""
    return isinstance(buffer.key, tuple) and buffer.key[0] == "workspace"


def make_plan(program, feed_shapes):
    """The layout for these feed shapes ({placeholder: shape}): concrete shapes, steps (kernels chosen, costs
    counted) and the memory plan's offsets. Of the program it reads its nodes, order, fetches, backend, random
    state and reuse_memory. Nothing is allocated."""
    backend = program.backend
    shapes = concrete_shapes(program.nodes, feed_shapes)
    steps = [make_step(chain, fused, shapes, backend, program.rng)
             for chain, fused in fuse(program.order, program.fetches, backend, shapes)]
    buffers = lifetimes(steps, shapes, program.placeholders, program.fetches)
    for index, step in enumerate(steps):
        if step.kernel is None:
            continue
        nbytes = backend.workspace_nbytes(step.op, step.params, [shapes[i] for i in step.inputs],
                                          shapes[step.node], step.node.dtype)
        if nbytes:
            buffers.append(Buffer(("workspace", index), nbytes, index, index))
    arena_nbytes = plan_offsets(buffers, reuse=program.reuse_memory)
    naive = sum(aligned(b.nbytes) for b in buffers)
    return Plan(shapes, steps, buffers, arena_nbytes, naive)


def make_step(chain, fused, shapes, backend, rng):
    """One step: its kernel (chosen by the backend for these shapes), parameters and costs. A chain runs as its
    fused op, on the inputs the fused op lists, with the first node's parameters."""
    first, node = chain[0], chain[-1]
    inputs = fused.kernel_inputs(chain, shapes) if fused else list(node.inputs)
    op = fused or type(node.op)
    in_shapes = [shapes[i] for i in inputs]
    params = first.op.kernel_params([shapes[i] for i in first.inputs], shapes[first], first.attrs,
                                    [shapes[r] for r in first.refs])
    if first.op.uses_rng:
        params["rng"] = rng
    view_of = node.op.view_of([shapes[i] for i in node.inputs], shapes[node]) if not fused else None
    if view_of is not None and can_alias(node, view_of):
        return Step(chain, inputs, None, "view (no copy)", params, view_of=view_of, op=op)
    flops = sum(n.op.flops([shapes[i] for i in n.inputs], shapes[n], n.attrs) for n in chain)
    read = {id(i): i for i in inputs}.values()      # a fused step may take one array twice: count it once
    moved = (sum(numel(shapes[i]) * i.dtype.itemsize for i in read) + numel(shapes[node]) * node.dtype.itemsize)
    params = backend.specialize(op, params, in_shapes, shapes[node], node.dtype)
    return Step(chain, inputs, backend.kernel(op), backend.kernel_label(op, params), params, flops=flops,
                nbytes=moved, op=op)


def can_alias(node, index):
    """Whether `node` may be a free view of its input `index`."""
    source = node.inputs[index]
    return not source.op.is_stored          # a view of stored state would see it change


def concrete_shapes(nodes, feed_shapes):
    """{node: shape} for `nodes` (in creation order) with the feeds' shapes: each op's shape rule run again on
    concrete sizes, and checked against the shape it inferred at build time."""
    shapes = {}
    for node in nodes:
        if node.op.is_fed:
            shapes[node] = tuple(feed_shapes[node])
            continue
        try:
            shape = tuple(node.op.infer_shape([shapes[i] for i in node.inputs], node.attrs,
                                              [shapes[r] for r in node.refs]))
        except ShapeRuleViolation as violation:
            raise ShapeError(f"{node.op.name} '{node.name}' ({node.site}): {violation} (with the feeds "
                             f"{fed(feed_shapes)})") from None
        if len(shape) != len(node.shape) or any(d is not None and d != c for d, c in zip(node.shape, shape)):
            raise GraphError(f"internal: {node.op.name} '{node.name}' inferred {format_shape(shape)} at run "
                             f"time but {format_shape(node.shape)} at build time")
        check_sizes(shape, f"{node.op.name} '{node.name}' ({node.site}) with the feeds {fed(feed_shapes)}")
        shapes[node] = shape
    return shapes


def fed(feed_shapes):
    """The feeds' shapes for an error message: 'x' (4, 3), 'y' (4,) — or 'none'."""
    return ", ".join(f"'{p.name}' {format_shape(s)}" for p, s in feed_shapes.items()) or "none"


def check_runnable(nodes, shapes):
    """Shapes every rule allows but no run can compute (e.g. batch norm's variance of one value): refused when a
    plan is bound for a run — describing it is still fine."""
    feed_shapes = {n: shapes[n] for n in nodes if n.op.is_fed}
    for node in nodes:
        try:
            node.op.check_runnable([shapes[i] for i in node.inputs], node.attrs)
        except ShapeRuleViolation as violation:
            raise ShapeError(f"{node.op.name} '{node.name}' ({node.site}): {violation} (with the feeds "
                             f"{fed(feed_shapes)})") from None


def lifetimes(steps, shapes, placeholders, fetches):
    """One arena buffer per computed value (and per feed), live from its writer to its last reader. A view extends
    the life of the buffer it looks into; an assignment writes variable storage, not the arena."""
    root = {}
    for step in steps:
        node = step.node
        if step.kernel is None:
            source = node.inputs[step.view_of]
            root[node] = root.get(source, source)
    buffers = {}
    for p in placeholders:
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
    for f in fetches:
        owner = root.get(f, f)
        if owner in buffers:
            buffers[owner].last = end
    return list(buffers.values())
