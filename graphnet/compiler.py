"""compile(fetches): from a graph to a Program.

    1. prune      keep only the nodes the fetches need (plus the side effects of those nodes); a node whose shape
                  alone is read (a shape reference) has its shape inferred but is not computed
    2. order      a topological order in which every assignment to a variable runs after every read of it
    3. bind       a backend: the kernels that will run each step

Shapes, the memory plan and the buffers are made per combination of feed shapes, on the first run with it
(see planning.py): `None` sizes are only known then.
"""
import heapq

from .backends import get_backend
from .errors import GraphError, user_site
from .graph import Tensor
from .program import Program



def compile(fetches, device="cpu", reuse_memory=True, check_numerics=False):
    """Compile the part of the graph that `fetches` need into a Program for `device`: "cpu" (the default:
    compiled Cython kernels), "cuda", "auto" (cuda where a GPU is usable, else cpu) or "reference" (NumPy).

    `fetches` is a tensor or a list of tensors; `Program.run(feeds)` returns their values in the same form.
    check_numerics=True: every run stops at the first step that writes NaN or Inf, with a NumericsError naming
    the op and the line that created it (slow: for debugging; see numerics.py)."""
    site = user_site()
    single = isinstance(fetches, Tensor)
    fetch_list = [fetches] if single else list(fetches)
    if not fetch_list:
        raise GraphError(f"compile ({site}): nothing to fetch; pass a tensor or a list of tensors")
    for f in fetch_list:
        if not isinstance(f, Tensor):
            raise GraphError(f"compile ({site}): fetches must be tensors, got {type(f).__name__}")
        if f.graph is not fetch_list[0].graph:
            raise GraphError(f"compile ({site}): '{f.name}' and '{fetch_list[0].name}' belong to different graphs")
    try:
        backend = get_backend(device)
    except GraphError as error:
        raise GraphError(f"compile ({site}): {error}") from None
    nodes = prune(fetch_list)                                         # whose shapes a plan infers
    order = schedule_order(prune(fetch_list, through_refs=False), site)  # whose values a run computes
    return Program(fetch_list, single, order, nodes, backend, reuse_memory, check_numerics)


def prune(fetches, through_refs=True):
    """Every node the fetches depend on, through data inputs and side effects, and — with `through_refs` — through
    shape references. A node reached only by a shape reference (the forward output whose shape a gradient's
    broadcast takes) needs its shape, which planning infers, not its value: it is not computed."""
    needed, stack = set(), list(fetches)
    while stack:
        node = stack.pop()
        if node in needed:
            continue
        needed.add(node)
        stack.extend(node.inputs)
        if through_refs:
            stack.extend(node.refs)
        stack.extend(node.side_effects)
    return needed


def schedule_order(nodes, site):
    """The steps (non-source nodes whose value is computed) in an order that respects data dependencies and, for
    each variable, runs its reads before its assignment. Ties go to the node created first, so the schedule
    reads like the code: forward, then backward, then updates."""
    steps = sorted((n for n in nodes if not n.op.is_source), key=lambda n: n.id)
    step_set = set(steps)
    after = {n: set() for n in steps}           # node -> the nodes that must run before it
    for n in steps:
        after[n].update(i for i in n.inputs if i in step_set)
    assigns = {}
    for n in steps:
        if n.op.writes_variable:
            var = n.inputs[0]
            if var in assigns:
                raise GraphError(f"compile ({site}): variable '{var.name}' is assigned twice in one program "
                                 f"({assigns[var].site} and {n.site}); the order would be ambiguous")
            assigns[var] = n
    for var, writer in sorted(assigns.items(), key=lambda item: item[1].id):
        for reader in steps:
            if reader is not writer and var in reader.inputs:
                after[writer].add(reader)       # write after read
    ready = [(n.id, n) for n in steps if not after[n]]
    heapq.heapify(ready)
    consumers = {n: [] for n in steps}
    for n, deps in after.items():
        for d in deps:
            consumers[d].append(n)
    waiting = {n: len(deps) for n, deps in after.items()}
    order = []
    while ready:
        _, n = heapq.heappop(ready)
        order.append(n)
        for c in consumers[n]:
            waiting[c] -= 1
            if waiting[c] == 0:
                heapq.heappush(ready, (c.id, c))
    if len(order) != len(steps):
        stuck = sorted((n for n in steps if waiting[n] > 0), key=lambda n: n.id)
        raise GraphError(f"compile ({site}): no order satisfies the dependencies of "
                         f"{', '.join(repr(n.name) for n in stuck[:5])}: an assignment's value depends on a node "
                         "that must read the variable's old value after the assignment")
    return order
