"""Matrix multiplication."""
import numpy as np

from ...ops.linalg import MatMul


def matmul(out, a, b, *, transpose_a, transpose_b):
    """out = op(a) @ op(b); op swaps the last two axes when asked."""
    if transpose_a:
        a = np.swapaxes(a, -1, -2)
    if transpose_b:
        b = np.swapaxes(b, -1, -2)
    np.matmul(a, b, out=out)


KERNELS = {MatMul: matmul}
