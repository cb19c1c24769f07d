"""Fusion: the compile-time rewrite of chains of the schedule into the fused ops of graphnet/ops/fused.py.

A chain a → b → … fuses into a fused op when the backend has a kernel for that op and

* the chain matches the op's links: each node's only reader is the next node, which takes it as the input the
  link names (its first, unless the link says otherwise), and no node but the last is fetched;
* the later nodes' other inputs are ready before the first node runs (the fused step takes its place);
* the fused op's own rule accepts the concrete shapes (a dense layer's bias must be one row);
* an assignment in the chain is not read-after-write: every other read of the variable comes before the step.

Longer chains are tried first (matmul → add → relu before matmul → add); a node belongs to one step.
"""
from .ops.fused import FUSED_OPS


def fuse(order, fetches, backend, shapes):
    """The schedule as steps: [(nodes, fused op class)] for the chains the backend runs as one kernel, and
    ([node], None) for every other node, in schedule order."""
    candidates = sorted((op for op in FUSED_OPS if backend.has_kernel(op)), key=lambda op: len(op.chain),
                        reverse=True) if backend.fuses else []
    if not candidates:
        return [([n], None) for n in order]
    position = {n: i for i, n in enumerate(order)}
    readers = {n: [] for n in order}
    for n in order:
        for i in n.inputs:
            if i in readers and n not in readers[i]:
                readers[i].append(n)
    fetched = set(fetches)
    taken, steps = set(), []
    for node in order:
        if node in taken:
            continue
        chain, chosen = [node], None
        for fused in candidates:
            matched = _match(node, fused.chain, readers, fetched, position, taken)
            if matched and fused.applies(matched, shapes):
                chain, chosen = matched, fused
                break
        taken.update(chain)
        steps.append((chain, chosen))
    return steps


def _match(node, links, readers, fetched, position, taken):
    """The nodes of the chain starting at `node` that follows `links`, or None."""
    if type(node.op) is not links[0][0]:
        return None
    chain = [node]
    for op_class, slot in links[1:]:
        current = chain[-1]
        if current in fetched or len(readers[current]) != 1:
            return None
        nxt = readers[current][0]
        if (nxt in taken or type(nxt.op) is not op_class or len(nxt.inputs) <= slot or nxt.inputs[slot] is not current
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
