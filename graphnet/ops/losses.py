"""Losses, each the mean over the batch and numerically stable.

    softmax_cross_entropy(z, y) = mean_n [ log Σⱼ e^(z_nj) − z_{n,y_n} ]     (log-sum-exp with the max subtracted)
    mse(p, t) = mean (p − t)²
    binary_cross_entropy_with_logits(z, t) = mean [ max(z, 0) − z·t + log(1 + e^(−|z|)) ]
"""
from ..errors import GraphError, ShapeRuleViolation
from ..graph import format_shape
from ..op import Op, numel
from ._util import apply, require_float, tensors
from .elementwise import neg


class Loss(Op):
    def infer_shape(self, in_shapes, attrs, ref_shapes):
        return ()

    def flops(self, in_shapes, out_shape, attrs):
        return 4 * numel(in_shapes[0])


class LossGrad(Op):
    """Gradient of a mean loss with respect to its first tensor input, scaled by the incoming scalar dloss."""
    differentiable = False

    def infer_shape(self, in_shapes, attrs, ref_shapes):
        return in_shapes[1]

    def infer_dtype(self, in_dtypes, attrs):
        return in_dtypes[1]


def _same_shape(p, t, what):
    for a, (dp, dt) in enumerate(zip(p, t)):
        if dp is not None and dt is not None and dp != dt:
            break
    else:
        if len(p) == len(t):
            return
    hint = ""
    if len(p) == len(t) + 1 and p[-1] == 1:
        hint = (f"; the prediction is a column and the target is not: reshape the target to "
                f"{format_shape(t + (1,))} (or the prediction to {format_shape(p[:-1])})")
    elif len(t) == len(p) + 1 and t[-1] == 1:
        hint = (f"; the target is a column and the prediction is not: reshape the prediction to "
                f"{format_shape(p + (1,))} (or the target to {format_shape(t[:-1])})")
    raise ShapeRuleViolation(f"{what} {format_shape(p)} and target {format_shape(t)} must have the same shape "
                             f"(no broadcasting in a loss){hint}")


class SoftmaxCrossEntropy(Loss):
    name = "softmax_cross_entropy"

    def infer_shape(self, in_shapes, attrs, ref_shapes):
        logits, labels = in_shapes
        if len(logits) != 2:
            raise ShapeRuleViolation(f"logits must be (batch, classes), got {format_shape(logits)}"
                                     + ("; flatten them first" if len(logits) > 2 else ""))
        if len(labels) != 1:
            raise ShapeRuleViolation(f"labels must be a vector of class indices (batch,), got "
                                     f"{format_shape(labels)}" + ("; one-hot labels? pass labels.argmax(1)"
                                                                  if len(labels) == 2 else ""))
        if logits[0] is not None and labels[0] is not None and logits[0] != labels[0]:
            raise ShapeRuleViolation(f"batch sizes differ: logits {format_shape(logits)}, labels "
                                     f"{format_shape(labels)}")
        return ()

    def infer_dtype(self, in_dtypes, attrs):
        if in_dtypes[1].kind not in "iu":
            raise ShapeRuleViolation(f"labels must be integer class indices, got dtype {in_dtypes[1]}")
        return in_dtypes[0]

    def gradient(self, node, dy):
        logits, labels = node.inputs
        return [apply(SoftmaxCrossEntropyGrad(), [dy, logits, labels], name="softmax_cross_entropy_grad"), None]


class SoftmaxCrossEntropyGrad(LossGrad):
    """dloss · (softmax(z) − onehot(y)) / N"""
    name = "softmax_cross_entropy_grad"


class Mse(Loss):
    name = "mse"

    def infer_shape(self, in_shapes, attrs, ref_shapes):
        _same_shape(*in_shapes, "prediction")
        return ()

    def gradient(self, node, dy):
        p, t = node.inputs
        dp = apply(MseGrad(), [dy, p, t], name="mse_grad")
        return [dp, neg(dp)]


class MseGrad(LossGrad):
    """dloss · 2(p − t) / numel"""
    name = "mse_grad"


class BinaryCrossEntropyWithLogits(Loss):
    name = "binary_cross_entropy_with_logits"

    def infer_shape(self, in_shapes, attrs, ref_shapes):
        _same_shape(*in_shapes, "logits")
        return ()

    def gradient(self, node, dy):
        z, t = node.inputs
        return [apply(BceGrad(), [dy, z, t], {"wrt": "logits"}, name="bce_grad"),
                apply(BceGrad(), [dy, z, t], {"wrt": "targets"}, name="bce_grad")]


class BceGrad(LossGrad):
    """dloss · (sigmoid(z) − t) / numel for the logits; dloss · (−z) / numel for the targets"""
    name = "bce_grad"

    def describe(self, attrs):
        return f"wrt {attrs['wrt']}"


def softmax_cross_entropy(logits, labels, name=None):
    """Mean over the batch of −log softmax(logits)[label]; labels are int class indices of shape (batch,)."""
    logits, labels = tensors(logits, labels)
    require_float(logits, "softmax_cross_entropy")
    return apply(SoftmaxCrossEntropy(), [logits, labels], name=name)


def mse(pred, target, name=None):
    """Mean squared error, mean over every element."""
    pred, target = tensors(pred, target)
    _check_float_pair(pred, target, "mse")
    return apply(Mse(), [pred, target], name=name)


def binary_cross_entropy_with_logits(logits, targets, name=None):
    """Mean binary cross-entropy of sigmoid(logits) against targets in [0, 1], without overflow."""
    logits, targets = tensors(logits, targets)
    _check_float_pair(logits, targets, "binary_cross_entropy_with_logits")
    return apply(BinaryCrossEntropyWithLogits(), [logits, targets], name=name)


def _check_float_pair(a, b, what):
    require_float(a, what)
    if b.dtype != a.dtype:
        raise GraphError(f"{what}: '{a.name}' is {a.dtype} but target '{b.name}' is {b.dtype}; feed the target "
                         f"as {a.dtype} (placeholder(..., dtype='{a.dtype}'))")
