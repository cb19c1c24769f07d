"""Fused ops: a chain of ops that one kernel runs as one step, declared once for every backend.

The compiler rewrites a chain of the graph into one of these where the backend has a kernel for it (see
graphnet/fusion.py); the printed schedule still names every op of the chain (conv2d+relu). Each fused op's
reference kernel (graphnet/backends/reference/fused.py) is the composition of its chain's reference kernels, and a
compiled backend's fused kernel is tested against it like any other op.

A chain is a tuple of links (op class, input slot): the slot is the input of that op which the previous link's
output enters (0, the first, unless the link says otherwise: ("sub", 1) in sub(w, mul(lr, g))). The fused kernel
is called as fn(out, *inputs, **params) with the inputs `kernel_inputs` lists (by default the first node's inputs,
then each later node's other inputs in order) and the first node's params.
"""
from ..op import Op
from .activations import Relu, ReluGrad
from .conv import Conv2d, Conv2dGradInput
from .elementwise import Add, Mul, Sub
from .linalg import MatMul
from .pool import AvgPool2dGrad, MaxPool2dGrad
from .state import Assign


class Fused(Op):
    chain = ()               # ((op class, slot), ...)
    differentiable = False

    @classmethod
    def applies(cls, nodes, shapes):
        """Whether this chain of nodes (already matched link by link) is one the fused kernel computes exactly."""
        return True

    @classmethod
    def kernel_inputs(cls, nodes, shapes):
        """The nodes whose values the fused kernel reads, in its argument order."""
        later = [i for node, (_, slot) in zip(nodes[1:], cls.chain[1:])
                 for k, i in enumerate(node.inputs) if k != slot]
        return list(nodes[0].inputs) + later

    def infer_shape(self, in_shapes, attrs, ref_shapes):
        from ..errors import GraphError
        raise GraphError(f"{self.name} is made by the compiler from a chain of ops, not built in a graph")


def is_bias_row_add(nodes, shapes):
    """matmul (2-D) → add(·, bias) [→ relu] where bias is one row of n values broadcast over the m rows."""
    product_node, add_node = nodes[0], nodes[1]
    a, b = product_node.inputs
    if len(shapes[a]) != 2 or len(shapes[b]) != 2 or len(shapes[product_node]) != 2:
        return False
    m, n = shapes[product_node]
    bias = add_node.inputs[1]
    return (tuple(shapes[bias]) in ((n,), (1, n)) and tuple(shapes[add_node]) == (m, n)
            and bias.dtype == product_node.dtype == add_node.dtype)


class Conv2dRelu(Fused):
    """relu(conv2d(x, w, b)): the ReLU applied as each output tile is written."""
    name = "conv2d_relu"
    chain = ((Conv2d, 0), (Relu, 0))


class Dense(Fused):
    """a @ b + bias, the bias one row added to every row of the product."""
    name = "dense"
    chain = ((MatMul, 0), (Add, 0))
    applies = classmethod(lambda cls, nodes, shapes: is_bias_row_add(nodes, shapes))


class DenseRelu(Fused):
    """relu(a @ b + bias)"""
    name = "dense_relu"
    chain = ((MatMul, 0), (Add, 0), (Relu, 0))
    applies = classmethod(lambda cls, nodes, shapes: is_bias_row_add(nodes, shapes))


class MatMulReluGrad(Fused):
    """relu_grad(a @ b, y) = (a @ b)·[y > 0]: the gradient entering a ReLU's input, from the layer after it."""
    name = "matmul_relu_grad"
    chain = ((MatMul, 0), (ReluGrad, 0))


class Conv2dGradInputReluGrad(Fused):
    """relu_grad(conv2d_grad_input(dy, w), y)"""
    name = "conv2d_grad_input_relu_grad"
    chain = ((Conv2dGradInput, 0), (ReluGrad, 0))


class MaxPool2dGradReluGrad(Fused):
    """relu_grad(max_pool2d_grad(dy, x, y), relu_y): a pooled ReLU layer's gradient in one pass."""
    name = "max_pool2d_grad_relu"
    chain = ((MaxPool2dGrad, 0), (ReluGrad, 0))


class AvgPool2dGradReluGrad(Fused):
    """relu_grad(avg_pool2d_grad(dy), relu_y)"""
    name = "avg_pool2d_grad_relu"
    chain = ((AvgPool2dGrad, 0), (ReluGrad, 0))


class SgdUpdate(Fused):
    """variable ← u − scale·x: mul(scale, x) (either order) → sub(u, ·) → assign(variable, ·), the update of plain
    gradient descent w ← w − η·g and the last step of momentum SGD. Its kernel writes the variable's storage (out)
    and reads (scale, x, u, variable): the scale, one number, always first."""
    name = "sgd_update"
    chain = ((Mul, 0), (Sub, 1), (Assign, 1))
    writes_variable = True

    @classmethod
    def kernel_inputs(cls, nodes, shapes):
        scale, x = _scale_first(nodes[0], shapes)
        return [scale, x, nodes[1].inputs[0], nodes[2].inputs[0]]

    @classmethod
    def applies(cls, nodes, shapes):
        scale_node, sub_node, assign_node = nodes
        a, x = _scale_first(scale_node, shapes)
        u = sub_node.inputs[0]
        target = tuple(shapes[assign_node])
        one_number = all(d == 1 for d in shapes[a])
        same_shapes = all(tuple(shapes[t]) == target for t in (x, u, scale_node, sub_node))
        return one_number and same_shapes and len({t.dtype for t in (a, x, u, scale_node, sub_node,
                                                                     assign_node)}) == 1


class MatMulSgdUpdate(Fused):
    """w ← w − scale·(a @ b): the weight gradient of a dense layer (matmul) → mul(scale, ·) → sub(w, ·) →
    assign(w, ·), plain gradient descent on a weight whose gradient is one product. One GEMM computes it in place,
    C ← −scale·op(A)·op(B) + 1·C with C the weight's storage, so the gradient is never written. Its kernel reads
    (a, b, scale, w, w) and writes w's storage (out)."""
    name = "matmul_sgd_update"
    chain = ((MatMul, 0), (Mul, 1), (Sub, 1), (Assign, 1))
    writes_variable = True

    @classmethod
    def applies(cls, nodes, shapes):
        product_node, scale_node, sub_node, assign_node = nodes
        variable, scale = assign_node.inputs[0], scale_node.inputs[0]
        two_d = all(len(shapes[t]) == 2 for t in (*product_node.inputs, product_node))
        same_shapes = all(tuple(shapes[t]) == tuple(shapes[variable]) for t in (product_node, scale_node, sub_node))
        return (two_d and same_shapes and all(d == 1 for d in shapes[scale]) and sub_node.inputs[0] is variable
                and variable not in product_node.inputs            # the product must not read what it writes
                and len({t.dtype for t in (scale, variable, product_node, scale_node, sub_node)}) == 1)


def _scale_first(mul_node, shapes):
    """(scale, x) of mul(scale, x) or mul(x, scale): the scale is the input of one element."""
    first, second = mul_node.inputs
    return (first, second) if all(d == 1 for d in shapes[first]) else (second, first)


FUSED_OPS = (DenseRelu, Dense, MatMulReluGrad, Conv2dRelu, Conv2dGradInputReluGrad, MaxPool2dGradReluGrad,
             AvgPool2dGradReluGrad, SgdUpdate, MatMulSgdUpdate)
