"""Layers: reusable pieces of a network that own their variables.

A layer is called on a tensor of a graph and adds its ops to that graph:

    dense = Dense(10)
    y_train = dense(x, training=True)     # the first call creates dense/weight and dense/bias
    y_infer = dense(x, training=False)    # later calls reuse them: both branches share the variables

Nothing is computed while the graph is built. A layer records the shape it was last called with, its
parameter count and its FLOPs per sample, which `Model.summary()` prints.

Variables are named `<layer path>/<parameter>`, e.g. `conv1/weight`, `conv1/bias`; those names are what
checkpoints store. A layer can be frozen: its variables become non-trainable (no gradient, no update).
"""
import math
import zlib

import numpy as np

from .. import ops
from ..errors import GraphError, ShapeError, user_site
from ..graph import Tensor, format_shape, variable
from ..op import numel
from ..ops.formulas import FORMULAS
from ..ops.pointwise import FUNCTIONS
from . import initializers

# Every pointwise formula declared as an activation (graphnet/ops/formulas.py), and softmax along the last axis.
ACTIVATIONS = {f.name: FUNCTIONS[f.name] for f in FORMULAS if f.activation}
ACTIVATIONS.update(softmax=ops.softmax, log_softmax=ops.log_softmax)


def activation_function(activation):
    """The op for an activation given by name, a callable, or None (identity)."""
    if activation is None or callable(activation):
        return activation
    try:
        return ACTIVATIONS[activation]
    except KeyError:
        raise GraphError(f"unknown activation {activation!r}; choose one of {', '.join(sorted(ACTIVATIONS))}, "
                         "a callable, or None") from None


def flops_per_sample(nodes):
    """The FLOPs of `nodes` (the ops a layer added) for one sample: each op's own count, with every size
    unknown at build time (the batch) set to 1 — so it agrees with the compiled schedule at batch size 1."""
    total = 0
    for node in nodes:
        if node.op.is_source:
            continue
        one = lambda shape: tuple(1 if d is None else d for d in shape)     # noqa: E731
        total += node.op.flops([one(i.shape) for i in node.inputs], one(node.shape), node.attrs)
    return total


class Layer:
    """Base class. Subclasses define `create_variables(input_shape, dtype)` (with `add_variable`) and
    `call(x, training)` (the ops); `__call__` does the bookkeeping around them."""

    kind = "layer"          # the prefix of automatic names: dense1, conv1, ...
    penalized = ()          # parameters weight penalties apply to (the kernels; never biases or norm scales)

    def __init__(self, name=None):
        self.name = name or self.kind
        self.named_by_user = name is not None
        self.seed = None                # None: inherit the model's seed
        self.frozen = False
        self.built = False
        self.graph = None
        self.input_shape = None         # as last called (None = unknown size)
        self.output_shape = None
        self.flops = None               # FLOPs per sample of the last inference-mode call
        self._parent = None
        self._params = {}               # parameter name -> variable, in creation order
        self._statistics = set()        # parameters that are never trained (running statistics)

    # -- calling -------------------------------------------------------------------------------------------------
    def __call__(self, x, training=False):
        if not isinstance(x, Tensor):
            raise GraphError(f"{self.describe()} ({user_site()}): call it on a tensor of a graph "
                             f"(a placeholder or an op), got {type(x).__name__}")
        if self.graph is not None and x.graph is not self.graph:
            raise GraphError(f"{self.describe()} ({user_site()}): its variables live in another graph than "
                             f"'{x.name}'; call it on tensors of that graph (layer.graph), or make a new layer")
        graph = x.graph
        first_node = len(graph.nodes)
        scope = self.scope_name()
        with graph, (graph.name_scope(scope) if scope else _no_scope()):
            if not self.built:
                self.graph = graph
                try:
                    self.create_variables(x.shape, x.dtype)
                except BaseException:
                    self.graph, self._params = None, {}      # a failed build leaves the layer unbuilt
                    raise
                self.built = True
            y = self.call(x, training)
        self.input_shape, self.output_shape = x.shape, y.shape
        if not training:
            self.flops = flops_per_sample(graph.nodes[first_node:])
        return y

    def create_variables(self, input_shape, dtype):
        """Create the variables for inputs of this shape (called once, on the first call)."""

    def call(self, x, training):
        raise NotImplementedError(f"{type(self).__name__} must define call(x, training)")

    def scope_name(self):
        return self.name

    # -- naming and seeds ----------------------------------------------------------------------------------------
    @property
    def path(self):
        """The layer's full name: its name, prefixed by those of the models that contain it (not the top one)."""
        parent = self._parent
        if parent is None:
            return self.name
        prefix = parent.path
        return f"{prefix}/{self.name}" if prefix else self.name

    def root_seed(self):
        """The seed of the nearest layer or model (from here upwards) that has one; 0 if none has."""
        layer = self
        while layer is not None:
            if layer.seed is not None:
                return int(layer.seed)
            layer = layer._parent
        return 0

    def derived_seed(self, what):
        """A seed for `what` (a variable name, a dropout mask) that depends only on the model's seed and names."""
        return zlib.crc32(f"{self.root_seed()}:{what}".encode())

    def describe(self):
        return f"{type(self).__name__} '{self.path}'"

    # -- variables -----------------------------------------------------------------------------------------------
    def add_variable(self, param, shape, dtype, initializer, trainable=True):
        """Create the variable `<path>/<param>` with a value drawn by `initializer` from a generator seeded by
        (model seed, variable name). `trainable=False` marks statistics that are updated, not trained."""
        full_name = f"{self.path}/{param}"
        rng = np.random.default_rng([self.root_seed(), zlib.crc32(full_name.encode())])
        value = np.asarray(initializers.get(initializer)(tuple(shape), np.dtype(dtype), rng), dtype=dtype)
        var = variable(value, name=param, trainable=trainable and not self.frozen)
        self.graph.rename(var, full_name)
        self._params[param] = var
        if not trainable:
            self._statistics.add(param)
        return var

    def variables(self):
        """{full name: variable} of this layer (and, for a model, of every layer in it), in creation order."""
        return {f"{self.path}/{param}": var for param, var in self._params.items()}

    def trainable_variables(self):
        return {name: v for name, v in self.variables().items() if v.attrs["trainable"]}

    def penalized_variables(self):
        """The trainable kernels weight penalties apply to (dense and conv weights; not biases or norm scales)."""
        return {f"{self.path}/{p}": v for p, v in self._params.items() if p in self.penalized and v.attrs["trainable"]}

    def parameter_counts(self):
        """{'trainable': n, 'frozen': n, 'statistics': n} for this layer's own variables."""
        counts = {"trainable": 0, "frozen": 0, "statistics": 0}
        for param, var in self._params.items():
            kind = "statistics" if param in self._statistics else ("trainable" if var.attrs["trainable"] else "frozen")
            counts[kind] += numel(var.shape)
        return counts

    def count_params(self):
        return sum(self.parameter_counts().values())

    def param_formula(self):
        """How the parameter count comes about, e.g. '(400+1)·120' (empty where there is nothing to explain)."""
        return ""

    # -- freezing ------------------------------------------------------------------------------------------------
    def freeze(self):
        """Stop training this layer: its variables get no gradient and no update (build the train op after)."""
        self._set_frozen(True)
        return self

    def unfreeze(self):
        self._set_frozen(False)
        return self

    def _set_frozen(self, frozen):
        self.frozen = frozen
        for param, var in self._params.items():
            if param not in self._statistics:
                var.attrs["trainable"] = not frozen

    @property
    def trainable(self):
        return not self.frozen

    @trainable.setter
    def trainable(self, value):
        self._set_frozen(not value)

    def __repr__(self):
        return f"<{type(self).__name__} '{self.path}'{' frozen' if self.frozen else ''}>"


class _no_scope:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


def _require_rank(layer, shape, ranks, layout, hint=""):
    if len(shape) not in ranks:
        raise ShapeError(f"{layer.describe()} ({user_site()}): input must be {layout}, got {format_shape(shape)}"
                         + hint)


def _require_known(layer, shape, axes, what):
    for axis in axes:
        if shape[axis] is None:
            raise ShapeError(f"{layer.describe()} ({user_site()}): the {what} (axis {axis} of "
                             f"{format_shape(shape)}) must be known when the layer is built; give the placeholder "
                             "that size instead of None")


# ---------------------------------------------------------------------------------------------------------------
# Dense and convolution

class Dense(Layer):
    """A fully connected layer: y = activation(x · W + b), x (N, n_in), W (n_in, n_out), b (n_out,).

    parameters = (n_in + 1) · n_out        (a weight per input and a bias, for each output)
    FLOPs per sample = 2 · n_in · n_out + n_out    (a multiply and an add per weight, then the bias)
    """
    kind = "dense"
    penalized = ("weight",)

    def __init__(self, units, activation=None, use_bias=True, weight_init="glorot_uniform", bias_init="zeros",
                 seed=None, name=None):
        super().__init__(name)
        if not isinstance(units, (int, np.integer)) or units < 1:
            raise GraphError(f"Dense: units must be a positive int, got {units!r}")
        self.units = int(units)
        self.activation = activation
        self._activation = activation_function(activation)
        self.use_bias = use_bias
        self.weight_init, self.bias_init = weight_init, bias_init
        self.seed = seed

    def create_variables(self, input_shape, dtype):
        hint = "; add a Flatten() layer before it" if len(input_shape) > 2 else ""
        _require_rank(self, input_shape, (2,), "(batch, features)", hint)
        _require_known(self, input_shape, (1,), "number of features")
        self.weight = self.add_variable("weight", (input_shape[1], self.units), dtype, self.weight_init)
        self.bias = self.add_variable("bias", (self.units,), dtype, self.bias_init) if self.use_bias else None

    def call(self, x, training):
        y = ops.matmul(x, self.weight, name="matmul")
        if self.bias is not None:
            y = ops.add(y, self.bias, name="bias_add")
        return self._activation(y) if self._activation else y

    def param_formula(self):
        if not self.built:
            return ""
        n_in = self.weight.shape[0]
        return f"({n_in}+1)·{self.units}" if self.use_bias else f"{n_in}·{self.units}"


class Conv2D(Layer):
    """2-D convolution of NCHW input: y = activation(conv2d(x, W) + b), W (K, C/groups, R, S), b (K,).

    parameters = K · (C/groups · R · S + 1)     (one R×S filter per input channel of the group, and a bias, for
                                                 each of the K output channels)
    FLOPs per sample = 2 · K · H' · W' · (C/groups · R · S) + K · H' · W'
    output size H' = floor((H + 2P − D·(R − 1) − 1) / S) + 1, and likewise W'
    """
    kind = "conv"
    penalized = ("weight",)

    def __init__(self, filters, kernel_size, stride=1, padding=0, dilation=1, groups=1, activation=None,
                 use_bias=True, weight_init="glorot_uniform", bias_init="zeros", seed=None, name=None):
        super().__init__(name)
        if not isinstance(filters, (int, np.integer)) or filters < 1:
            raise GraphError(f"Conv2D: filters must be a positive int, got {filters!r}")
        self.filters = int(filters)
        self.kernel_size = (kernel_size, kernel_size) if isinstance(kernel_size, (int, np.integer)) \
            else tuple(kernel_size)
        self.stride, self.padding, self.dilation, self.groups = stride, padding, dilation, groups
        self.activation = activation
        self._activation = activation_function(activation)
        self.use_bias = use_bias
        self.weight_init, self.bias_init = weight_init, bias_init
        self.seed = seed

    def create_variables(self, input_shape, dtype):
        hint = "; add a channel axis: x.reshape(N, 1, H, W)" if len(input_shape) == 3 else ""
        _require_rank(self, input_shape, (4,), "(N, C, H, W)", hint)
        _require_known(self, input_shape, (1,), "number of channels")
        channels = input_shape[1]
        if channels % self.groups or self.filters % self.groups:
            raise ShapeError(f"{self.describe()} ({user_site()}): groups={self.groups} must divide both the "
                             f"{channels} input channels and the {self.filters} filters")
        shape = (self.filters, channels // self.groups) + self.kernel_size
        self.weight = self.add_variable("weight", shape, dtype, self.weight_init)
        self.bias = self.add_variable("bias", (self.filters,), dtype, self.bias_init) if self.use_bias else None

    def call(self, x, training):
        y = ops.conv2d(x, self.weight, self.bias, stride=self.stride, padding=self.padding,
                       dilation=self.dilation, groups=self.groups, name="conv2d")
        return self._activation(y) if self._activation else y

    def param_formula(self):
        if not self.built:
            return ""
        k, c, r, s = self.weight.shape
        return f"{k}·({c}·{r}·{s}+1)" if self.use_bias else f"{k}·{c}·{r}·{s}"


# ---------------------------------------------------------------------------------------------------------------
# Pooling and reshaping: no parameters

class MaxPool2D(Layer):
    """Max over kernel_size windows of NCHW input; stride defaults to the window size. FLOPs = C·H'·W'·R·S.

    padding: int, (ph, pw) or ((top, bottom), (left, right)). ceil_mode=True rounds the output size up, keeping a
    partial last window (GoogLeNet's pools): H' = ceil((H + P_top + P_bottom − R)/S) + 1, less one if that window
    would start in the bottom padding."""
    kind = "maxpool"

    def __init__(self, kernel_size=2, stride=None, padding=0, ceil_mode=False, name=None):
        super().__init__(name)
        self.kernel_size, self.stride, self.padding, self.ceil_mode = kernel_size, stride, padding, ceil_mode

    def call(self, x, training):
        return ops.max_pool2d(x, self.kernel_size, self.stride, self.padding, ceil_mode=self.ceil_mode,
                              name="max_pool2d")


class AvgPool2D(MaxPool2D):
    """Mean over kernel_size windows of NCHW input; stride defaults to the window size. FLOPs = C·H'·W'·R·S.

    padding and ceil_mode as MaxPool2D's. count_include_pad=True (PyTorch's default) divides by the window's
    positions inside the padded input, False by those inside the input (ONNX's default)."""
    kind = "avgpool"

    def __init__(self, kernel_size=2, stride=None, padding=0, ceil_mode=False, count_include_pad=True, name=None):
        super().__init__(kernel_size, stride, padding, ceil_mode, name=name)
        self.count_include_pad = count_include_pad

    def call(self, x, training):
        return ops.avg_pool2d(x, self.kernel_size, self.stride, self.padding, ceil_mode=self.ceil_mode,
                              count_include_pad=self.count_include_pad, name="avg_pool2d")


class GlobalAvgPool2D(Layer):
    """Mean over the whole height and width: (N, C, H, W) -> (N, C)."""
    kind = "globalpool"

    def call(self, x, training):
        return ops.global_avg_pool2d(x, name="global_avg_pool2d")


class Flatten(Layer):
    """(N, C, H, W) -> (N, C·H·W): merge every axis from `start_dim` on. Free: a view, no copy."""
    kind = "flatten"

    def __init__(self, start_dim=1, name=None):
        super().__init__(name)
        self.start_dim = start_dim

    def call(self, x, training):
        return ops.flatten(x, self.start_dim, name="flatten")


# ---------------------------------------------------------------------------------------------------------------
# Dropout and activations

class Dropout(Layer):
    """Inverted dropout: in training y = x · m / (1 − rate), m ~ Bernoulli(1 − rate); in inference y = x.

    The mask comes from the program's counter-based generator, keyed by (seed, run number); the seed is derived
    from the model's seed and the layer's name unless given, so a rebuilt model draws the same masks."""
    kind = "dropout"

    def __init__(self, rate, seed=None, name=None):
        super().__init__(name)
        if not 0 <= rate < 1:
            raise GraphError(f"Dropout: rate must be in [0, 1), got {rate!r}")
        self.rate = float(rate)
        self.mask_seed = seed

    def call(self, x, training):
        seed = self.mask_seed if self.mask_seed is not None else self.derived_seed(f"{self.path}/mask")
        return ops.dropout(x, self.rate, training=training, seed=seed, name="dropout")


class Activation(Layer):
    """An activation function as a layer: Activation('relu'), or one of the named subclasses (ReLU(), ...)."""
    kind = "activation"
    function = None

    def __init__(self, function=None, name=None, **kwargs):
        if function is not None:
            self.function = function
            if isinstance(function, str) and name is None:
                self.kind = function
        super().__init__(name)
        self._fn = activation_function(self.function)
        self.kwargs = kwargs

    def call(self, x, training):
        return self._fn(x, **self.kwargs)


class ReLU(Activation):
    """max(x, 0)"""
    kind, function = "relu", "relu"


class LeakyReLU(Activation):
    """x if x > 0 else slope·x"""
    kind, function = "leaky_relu", "leaky_relu"

    def __init__(self, slope=0.01, name=None):
        super().__init__(name=name, slope=slope)


class ELU(Activation):
    """x if x > 0 else α(eˣ − 1)"""
    kind, function = "elu", "elu"

    def __init__(self, alpha=1.0, name=None):
        super().__init__(name=name, alpha=alpha)


class ReLU6(Activation):
    """min(max(x, 0), 6)"""
    kind, function = "relu6", "relu6"


class GELU(Activation):
    """x·Φ(x); approximate="tanh" takes the tanh form (as PyTorch's nn.GELU)"""
    kind, function = "gelu", "gelu"

    def __init__(self, approximate="none", name=None):
        if approximate not in ("none", "tanh"):
            raise GraphError(f"GELU: approximate must be 'none' or 'tanh', got {approximate!r}")
        if approximate == "tanh":
            self.kind = self.function = "gelu_tanh"
        super().__init__(name=name)


class SiLU(Activation):
    """x·σ(x) (swish)"""
    kind, function = "silu", "silu"


class Softplus(Activation):
    """log(1 + eˣ)"""
    kind, function = "softplus", "softplus"


class Hardsigmoid(Activation):
    """relu6(x + 3) / 6"""
    kind, function = "hard_sigmoid", "hard_sigmoid"


class Hardswish(Activation):
    """x·relu6(x + 3) / 6"""
    kind, function = "hard_swish", "hard_swish"


class Sigmoid(Activation):
    """1 / (1 + e⁻ˣ)"""
    kind, function = "sigmoid", "sigmoid"


class Tanh(Activation):
    kind, function = "tanh", "tanh"


class Softmax(Activation):
    """e^(xᵢ − m) / Σⱼ e^(xⱼ − m) along `axis`"""
    kind, function = "softmax", "softmax"

    def __init__(self, axis=-1, name=None):
        super().__init__(name=name, axis=axis)


class LogSoftmax(Activation):
    kind, function = "log_softmax", "log_softmax"

    def __init__(self, axis=-1, name=None):
        super().__init__(name=name, axis=axis)


def output_size(size, kernel, stride=1, padding=0, dilation=1):
    """floor((W + 2P − D·(F − 1) − 1) / S) + 1 — a helper for working out shapes by hand."""
    return math.floor((size + 2 * padding - dilation * (kernel - 1) - 1) / stride) + 1
