"""The ops: one module per family, each op a shape rule, a gradient rule and a FLOP count; pointwise ops are
declared as formulas (formulas.py)."""
from .activations import log_softmax, maxout, softmax
from .pointwise import *  # noqa: F401,F403 — relu, sigmoid, softplus, gelu, clip, … (graphnet/ops/formulas.py)
from .pointwise import __all__ as _pointwise
from .conv import conv2d
from .dtypes import cast
from .elementwise import add, div, exp, log, maximum, minimum, mul, neg, pow, sqrt, sub
from .linalg import matmul
from .losses import binary_cross_entropy_with_logits, mse, softmax_cross_entropy
from .lrn import local_response_norm
from .pool import avg_pool2d, global_avg_pool2d, max_pool2d
from .reduce import max, mean, sum
from .regularization import batch_norm, dropout
from .shape import concat, flatten, getitem, reshape, transpose
from .state import assign

__all__ = _pointwise + ['log_softmax', 'maxout', 'softmax', 'conv2d', 'cast', 'add', 'div', 'exp', 'log', 'maximum', 'minimum', 'mul', 'neg', 'pow', 'sqrt', 'sub', 'matmul', 'binary_cross_entropy_with_logits', 'mse', 'softmax_cross_entropy', 'local_response_norm', 'avg_pool2d', 'global_avg_pool2d', 'max_pool2d', 'max', 'mean', 'sum', 'batch_norm', 'dropout', 'concat', 'flatten', 'getitem', 'reshape', 'transpose', 'assign']
