"""When a chain of ops the compiler offers may run as one fused kernel: rules the compiled backends share.

The compiler proposes chains by op names (a backend's FUSIONS); a rule here looks at the shapes and says whether
this chain is one the fused kernel computes exactly — anything else runs as separate steps.
"""


def is_bias_row_add(chain, shapes):
    """matmul (2-D) → add(·, bias) [→ relu] where bias is one row of n values broadcast over the m rows."""
    product_node, add_node = chain[0], chain[1]
    a, b = product_node.inputs
    if len(shapes[a]) != 2 or len(shapes[b]) != 2 or len(shapes[product_node]) != 2:
        return False
    m, n = shapes[product_node]
    bias = add_node.inputs[1]
    return (tuple(shapes[bias]) in ((n,), (1, n)) and tuple(shapes[add_node]) == (m, n)
            and bias.dtype == product_node.dtype == add_node.dtype)


def is_scaled_step(chain, shapes):
    """mul(a, x) or mul(x, a) → sub(u, ·) → assign(v, ·), a one number and x, u of v's shape, one dtype:
    v ← u − a·x (the update of plain gradient descent, w ← w − η·g, and the last step of momentum SGD)."""
    scale_node, sub_node, assign_node = chain
    first, second = scale_node.inputs
    a, x = (first, second) if all(d == 1 for d in shapes[first]) else (second, first)
    u = sub_node.inputs[0]
    target = tuple(shapes[assign_node])
    one_number = all(d == 1 for d in shapes[a])
    same_shapes = all(tuple(shapes[t]) == target for t in (x, u, scale_node, sub_node))
    return one_number and same_shapes and len({t.dtype for t in (a, x, u, scale_node, sub_node, assign_node)}) == 1
