"""Reverse-mode automatic differentiation on the graph.

gradients(y, xs) walks the nodes that lie between the xs and y in reverse topological order. Each op's gradient
rule turns the gradient of its output (dy) into gradients of its inputs, written as new ops of the same graph;
where a node feeds several consumers, their contributions are added (the multivariable chain rule):

    dL/dx = Σ over consumers c of x:  (dL/dc) · (dc/dx)
"""
from .errors import GraphError, user_site
from .graph import Tensor, constant, format_shape


def gradients(y, xs):
    """d y / d x for each x in `xs` (a tensor or a list). `y` must be a scalar float tensor.

    Every x must influence y through differentiable ops; if one does not, this raises a GraphError naming it —
    it never returns None."""
    single = isinstance(xs, Tensor)
    xs = [xs] if single else list(xs)
    site = user_site()
    _check_arguments(y, xs, site)
    graph = y.graph
    on_path = _nodes_between(xs, y)
    for x in xs:
        if x not in on_path:
            raise GraphError(f"gradients ({site}): '{x.name}' ({x.op.name}, {x.site}) does not affect "
                             f"'{y.name}': no chain of differentiable ops leads from it to '{y.name}'. "
                             "Remove it from the list, or check that the loss really uses it")
    grads = {}
    first_new_id = len(graph.nodes)
    with graph.phase("backward"), graph.name_scope("grad"):
        grads[y] = constant(_one(y), name=f"d{y.name}")
        for node in reversed(_topological_order(y, on_path)):
            dy = grads.get(node)
            if dy is None or node.op.is_source:
                continue
            input_grads = node.op.gradient(node, dy)
            for inp, g in zip(node.inputs, input_grads):
                if g is None or inp not in on_path:
                    continue
                grads[inp] = g if inp not in grads else grads[inp] + g
    result = [grads[x] for x in xs]
    named = set()
    for x, g in zip(xs, result):
        if g.id >= first_new_id and g not in named:     # made here: call it after what it is the gradient of
            graph.rename(g, f"grad/{x.name}")
            named.add(g)
    return result[0] if single else result


def _one(y):
    import numpy as np
    return np.ones((), dtype=y.dtype)


def _check_arguments(y, xs, site):
    if not isinstance(y, Tensor):
        raise GraphError(f"gradients ({site}): y must be a tensor, got {type(y).__name__}")
    if y.shape != ():
        raise GraphError(f"gradients ({site}): y '{y.name}' has shape {format_shape(y.shape)}; it must be a "
                         "scalar — reduce it first, e.g. gn.mean(y) or gn.sum(y)")
    if y.dtype.kind != "f":
        raise GraphError(f"gradients ({site}): y '{y.name}' has dtype {y.dtype}; only float tensors have gradients")
    for x in xs:
        if not isinstance(x, Tensor):
            raise GraphError(f"gradients ({site}): expected tensors in xs, got {type(x).__name__}")
        if x.graph is not y.graph:
            raise GraphError(f"gradients ({site}): '{x.name}' belongs to another graph than '{y.name}'")
        if x.dtype.kind != "f":
            raise GraphError(f"gradients ({site}): '{x.name}' has dtype {x.dtype}; integer tensors such as "
                             "labels have no gradient")


def _nodes_between(xs, y):
    """The nodes on some differentiable path from one of the xs to y (the xs and y included)."""
    reaches_x = set(xs)
    for node in y.graph.nodes[: y.id + 1]:           # graph order is a topological order
        if node not in reaches_x and node.op.differentiable and any(i in reaches_x for i in node.inputs):
            reaches_x.add(node)
    between, stack = set(), [y]
    while stack:
        node = stack.pop()
        if node in between or node not in reaches_x:
            continue
        between.add(node)
        stack.extend(node.inputs)
    return between


def _topological_order(y, nodes):
    return sorted(nodes, key=lambda n: n.id)
