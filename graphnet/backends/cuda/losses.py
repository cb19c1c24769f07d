"""Loss kernels (formulas in graphnet/ops/losses.py): a mean over many terms, and its gradient.

A mean loss runs in two kernels, so that the order of additions is fixed (no atomics):

    1. block b sums the terms i = b, b + B, ... of its grid-stride loop and writes partials[b]   (B ≤ 256 blocks)
    2. one block adds the B partials:   out = (Σ_b partials[b]) / count

    mse term:                    (p − t)²
    binary cross-entropy term:   max(z, 0) − z·t + log(1 + e^−|z|)
    softmax cross-entropy:       one term per row n: log Σ_j e^(z_nj − m) + m − z_{n,y_n},  m = max_j z_nj

Class labels are checked on the host as they are copied in (see CudaBackend.copy_in); a label out of range that
reaches the kernel anyway (computed on the device) makes its row's loss NaN rather than reading out of bounds.
"""
import math
import weakref

from numba import cuda, float64, types

from .launch import BLOCK, BoundLaunch, flat, grid_for, step_kernel, shape_of
from .reduce import block_sum, workspace_array
from .registry import register_generic
from ...ops.losses import (BceGrad, BinaryCrossEntropyWithLogits, Mse, MseGrad, SoftmaxCrossEntropy,
                          SoftmaxCrossEntropyGrad)

MAX_PARTIALS = 256


def mean_kernels(term):
    """The kernel of step 1 for one loss: partials[b] = Σ over block b's share of i of term(a[i], b[i])."""

    @cuda.jit
    def partial_sums(partials, a, b):
        partial = cuda.shared.array(BLOCK, float64)
        acc = 0.0
        for i in range(cuda.grid(1), a.size, cuda.gridsize(1)):
            acc += term(a[i], b[i])
        total = block_sum(partial, cuda.threadIdx.x, acc)
        if cuda.threadIdx.x == 0:
            partials[cuda.blockIdx.x] = total

    return partial_sums


@cuda.jit
def finish_mean(out, partials, count):
    """out[0] = Σ partials / count, by one block."""
    partial = cuda.shared.array(BLOCK, float64)
    t = cuda.threadIdx.x
    acc = 0.0
    for b in range(t, partials.size, BLOCK):
        acc += partials[b]
    total = block_sum(partial, t, acc)
    if t == 0:
        out[0] = total / count


@cuda.jit(device=True)
def squared_error(p, t):
    d = p - t
    return d * d


@cuda.jit(device=True)
def logistic_loss(z, t):
    """max(z, 0) − z·t + log(1 + e^−|z|): −[t log σ(z) + (1 − t) log(1 − σ(z))] without overflow."""
    return max(z, 0.0) - z * t + math.log1p(math.exp(-abs(z)))


MSE_PARTIALS = mean_kernels(squared_error)
BCE_PARTIALS = mean_kernels(logistic_loss)

_F8 = types.float64
MEAN_IN_FLOAT64 = "the mean's terms are summed in float64 partials"
register_generic("mse.partial_sums", MSE_PARTIALS, lambda f: (_F8[::1], f[::1], f[::1]), float64=MEAN_IN_FLOAT64)
register_generic("bce.partial_sums", BCE_PARTIALS, lambda f: (_F8[::1], f[::1], f[::1]), float64=MEAN_IN_FLOAT64)
register_generic("finish_mean", finish_mean, lambda f: (f[::1], _F8[::1], types.int64), float64=MEAN_IN_FLOAT64)


def partial_count(n):
    return max(1, min(MAX_PARTIALS, grid_for(n)))


def mean_workspace(params, in_shapes, out_shape, dtype):
    return partial_count(max(1, _numel(in_shapes[0]))) * 8


def _numel(shape):
    n = 1
    for size in shape:
        n *= size
    return n


def mean_launches(partial_kernel, out, a, b, workspace):
    blocks = partial_count(a.size)
    partials = workspace_array(workspace, blocks)
    return [BoundLaunch(partial_kernel, blocks, BLOCK, [partials, flat(a), flat(b)]),
            BoundLaunch(finish_mean, 1, BLOCK, [flat(out), partials, a.size])]


@step_kernel
def mse(out, pred, target, *, workspace=None):
    """mean (p − t)²"""
    return mean_launches(MSE_PARTIALS, out, pred, target, workspace)


@step_kernel
def binary_cross_entropy_with_logits(out, z, t, *, workspace=None):
    return mean_launches(BCE_PARTIALS, out, z, t, workspace)


# The gradients compute in the input's type, as the reference does: `count` (the number of terms) and `one` arrive
# in that type, since a literal 2.0 or 1.0 in a kernel is a float64.

@cuda.jit
def mse_backward(out, dloss, p, t, one, count):
    """dp = 2(p − t) · (dloss / count)"""
    scale = dloss[0] / count
    for i in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        d = p[i] - t[i]
        out[i] = (d + d) * scale


@cuda.jit
def bce_backward_logits(out, dloss, z, t, one, count):
    """dz = (σ(z) − t) · (dloss / count)"""
    scale = dloss[0] / count
    for i in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        e = math.exp(-abs(z[i]))
        sigmoid = one / (one + e) if z[i] >= 0 else e / (one + e)
        out[i] = (sigmoid - t[i]) * scale


@cuda.jit
def bce_backward_targets(out, dloss, z, t, one, count):
    """dt = −z · (dloss / count)"""
    scale = dloss[0] / count
    for i in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        out[i] = -z[i] * scale


for _name, _kernel in (("mse_backward", mse_backward), ("bce_backward_logits", bce_backward_logits),
                       ("bce_backward_targets", bce_backward_targets)):
    register_generic(_name, _kernel, lambda f: (f[::1],) * 4 + (f, f))


def gradient_launch(kernel, out, dloss, a, b):
    """One thread per element of out; `one` and `count` (out's size) in out's type."""
    constants = [out.dtype.type(1), out.dtype.type(out.size)]
    return BoundLaunch(kernel, grid_for(out.size), BLOCK, [flat(out), flat(dloss), flat(a), flat(b)] + constants)


@step_kernel
def mse_grad(out, dloss, pred, target):
    return [gradient_launch(mse_backward, out, dloss, pred, target)]


@step_kernel
def bce_grad(out, dloss, z, t, *, wrt):
    kernel = bce_backward_logits if wrt == "logits" else bce_backward_targets
    return [gradient_launch(kernel, out, dloss, z, t)]


# ---------------------------------------------------------------------------------------------------------------
# softmax cross-entropy: one thread per row of logits (N, K)

@cuda.jit(device=True)
def row_log_sum_exp(z, base, classes):
    """(m, log Σ_j e^(z_j − m)) of one row."""
    m = z[base]
    for j in range(1, classes):
        if z[base + j] > m or z[base + j] != z[base + j]:
            m = z[base + j]
    total = 0.0
    for j in range(classes):
        total += math.exp(z[base + j] - m)
    return m, math.log(total)


@cuda.jit
def cross_entropy_rows(rows, z, labels, classes):
    """rows[n] = log Σ_j e^(z_nj) − z_{n,y_n}"""
    for n in range(cuda.grid(1), labels.size, cuda.gridsize(1)):
        base = n * classes
        m, log_total = row_log_sum_exp(z, base, classes)
        label = labels[n]
        if 0 <= label < classes:
            rows[n] = m + log_total - z[base + label]
        else:
            rows[n] = math.nan


@cuda.jit
def cross_entropy_backward(out, dloss, z, labels, classes):
    """dz_nj = (softmax(z_n)_j − [j = y_n]) · dloss / N"""
    batch = labels.size
    scale = dloss[0] / batch
    for n in range(cuda.grid(1), batch, cuda.gridsize(1)):
        base = n * classes
        m, log_total = row_log_sum_exp(z, base, classes)
        for j in range(classes):
            p = math.exp(z[base + j] - m - log_total)
            if j == labels[n]:
                p -= 1.0
            out[base + j] = p * scale


_I8 = types.int64
ROW_IN_FLOAT64 = "a row's log-sum-exp accumulates in float64, and its loss goes to float64 partials"
register_generic("cross_entropy_rows", cross_entropy_rows, lambda f: (_F8[::1], f[::1], _I8[::1], _I8),
                 float64=ROW_IN_FLOAT64)
register_generic("cross_entropy_backward", cross_entropy_backward,
                 lambda f: (f[::1], f[::1], f[::1], _I8[::1], _I8), float64=ROW_IN_FLOAT64)

#: id(labels buffer) -> (weak reference to it, class count): CudaBackend.copy_in checks what is fed into them
LABEL_BUFFERS = {}


def labels_of(buffer):
    """The class count that labels copied into `buffer` must stay below, or None if no loss reads it."""
    entry = LABEL_BUFFERS.get(id(buffer))
    if entry is None or entry[0]() is not buffer:
        return None
    return entry[1]


def cross_entropy_workspace(params, in_shapes, out_shape, dtype):
    batch = in_shapes[0][0]
    return (batch + partial_count(batch)) * 8


@step_kernel
def softmax_cross_entropy(out, logits, labels, *, workspace=None):
    """mean over rows of −log softmax(z_n)[y_n]"""
    batch, classes = (int(d) for d in shape_of(logits))
    LABEL_BUFFERS[id(labels)] = (weakref.ref(labels), classes)
    check_labels(labels.copy_to_host() if hasattr(labels, "copy_to_host") else labels, classes)
    space = workspace_array(workspace, batch + partial_count(batch))
    rows, partials = space[:batch], space[batch:]
    blocks = partial_count(batch)
    return [BoundLaunch(cross_entropy_rows, grid_for(batch), BLOCK, [rows, flat(logits), flat(labels), classes]),
            BoundLaunch(SUM_ROWS, blocks, BLOCK, [partials, rows, rows]),
            BoundLaunch(finish_mean, 1, BLOCK, [flat(out), partials, batch])]


@cuda.jit(device=True)
def first_of_pair(a, b):
    return a


SUM_ROWS = mean_kernels(first_of_pair)
register_generic("cross_entropy.partial_sums", SUM_ROWS, lambda f: (_F8[::1], _F8[::1], _F8[::1]),
                 float64=MEAN_IN_FLOAT64)


@step_kernel
def softmax_cross_entropy_grad(out, dloss, logits, labels):
    batch, classes = (int(d) for d in shape_of(logits))
    return [BoundLaunch(cross_entropy_backward, grid_for(batch), BLOCK,
                        [flat(out), flat(dloss), flat(logits), flat(labels), classes])]


def check_labels(labels, classes):
    """The reference's error for labels that are not class indices in [0, classes)."""
    from ...errors import FeedError
    bad = labels[(labels < 0) | (labels >= classes)]
    if bad.size:
        raise FeedError(f"softmax_cross_entropy: labels must be class indices in [0, {classes}), got {bad[0]} "
                        f"({bad.size} out of range)")


WORKSPACE = {Mse: mean_workspace, BinaryCrossEntropyWithLogits: mean_workspace,
             SoftmaxCrossEntropy: cross_entropy_workspace}


KERNELS = {SoftmaxCrossEntropy: softmax_cross_entropy, SoftmaxCrossEntropyGrad: softmax_cross_entropy_grad, Mse: mse,
           MseGrad: mse_grad, BinaryCrossEntropyWithLogits: binary_cross_entropy_with_logits, BceGrad: bce_grad}
