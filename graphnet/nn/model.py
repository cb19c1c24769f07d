"""Models: layers made of layers. `Sequential` chains them; `Model` is the base for your own `call`.

    model = Sequential([Conv2D(6, 5, padding=2, activation="relu"), MaxPool2D(2), Flatten(), Dense(7)])
    model.build((1, 28, 28))        # a placeholder (None, 1, 28, 28) in a new graph, and the inference branch
    model.summary()
    logits = model(x, training=True)     # another branch, on another placeholder, sharing the variables

A subclass of `Model` registers the layers it assigns as attributes, named after the attribute:

    class TwoLayer(Model):
        def __init__(self):
            super().__init__(name="two_layer")
            self.hidden = Dense(64, activation="relu")     # variables hidden/weight, hidden/bias
            self.out = Dense(10)
        def call(self, x, training):
            return self.out(self.hidden(x, training), training)

The top model's name is not part of its variables' names (conv1/weight, not lenet5/conv1/weight); a model
nested in another one is (block1/conv1/weight).
"""
from .. import checkpoint
from ..errors import GraphError, ShapeError
from ..graph import Graph, format_shape, placeholder
from ..messages import warn
from .layers import Conv2D, GlobalAvgPool2D, Layer, MaxPool2D
from .summary import format_summary


def channels_last_hint(sample_shape):
    """A hint when an image's sample shape looks channels-last, (H, W, C) with C of 1, 3 or 4 — graphnet, like
    PyTorch, wants (C, H, W); '' otherwise."""
    shape = tuple(sample_shape)
    if len(shape) != 3 or shape[2] not in (1, 3, 4) or shape[0] in (1, 3, 4) or None in shape:
        return ""
    nchw = (shape[2], shape[0], shape[1])
    return (f"The sample shape {format_shape(shape)} looks channels-last (H, W, C), as Keras's default; graphnet "
            f"is NCHW, like PyTorch: build the model for {format_shape(nchw)} and feed "
            "x.transpose(0, 3, 1, 2)")


def call_with_layout_hint(model, x, training, sample_shape):
    """model(x, training) for samples of `sample_shape`; when that looks channels-last, a ShapeError gets the
    NCHW hint, and a model with image layers that builds anyway is warned about: (28, 28, 3) builds, as 28
    channels of 28x3 images, and would train on the wrong axes."""
    hint = channels_last_hint(sample_shape)
    try:
        y = model(x, training=training)
    except ShapeError as error:
        if hint:
            raise ShapeError(f"{error}\n{hint}") from None
        raise
    if hint and isinstance(model, Model) and any(isinstance(layer, (Conv2D, MaxPool2D, GlobalAvgPool2D))
                                                 for layer in model.walk()):
        warn(f"{model.describe()}: {hint}")
    return y


class Model(Layer):
    kind = "model"

    def __init__(self, name=None, seed=None):
        object.__setattr__(self, "_layers", [])
        super().__init__(name)
        self.seed = seed
        self.input = None           # the placeholder and output of `build`
        self.output = None

    # -- the layers ------------------------------------------------------------------------------------------------
    def __setattr__(self, key, value):
        if isinstance(value, Layer) and not key.startswith("_"):
            old = self.__dict__.get(key)
            if isinstance(old, Layer) and old in self._layers:
                self._layers[self._layers.index(old)] = value
                old._parent = None
                self._adopt(value, key, replacing=old)
            else:
                self._adopt(value, key)
                self._layers.append(value)
        object.__setattr__(self, key, value)

    def _adopt(self, layer, automatic_name, replacing=None):
        if layer._parent is not None and layer._parent is not self:
            raise GraphError(f"{layer!r} already belongs to model '{layer._parent.name}'; make a new layer")
        if layer is self:
            raise GraphError(f"model '{self.name}' cannot contain itself")
        if not layer.named_by_user:
            layer.name = automatic_name
        for other in self._layers:
            if other is not layer and other is not replacing and other.name == layer.name:
                raise GraphError(f"model '{self.name}' already has a layer named '{layer.name}'; "
                                 "give the new one another name")
        layer._parent = self

    @property
    def layers(self):
        """The direct sublayers, in order."""
        return list(self._layers)

    def walk(self):
        """Every layer inside this model, depth first (models before their layers)."""
        for layer in self._layers:
            yield layer
            if isinstance(layer, Model):
                yield from layer.walk()

    def get_layer(self, name):
        """A layer by name or path ('conv1', 'block1/conv1')."""
        for layer in self.walk():
            if name in (layer.name, layer.path):
                return layer
        raise GraphError(f"model '{self.name}' has no layer '{name}'; its layers are "
                         f"{', '.join(l.path for l in self.walk())}")

    # -- calling and building --------------------------------------------------------------------------------------
    @property
    def path(self):
        """'' for the top model (its layers are named conv1, not lenet5/conv1); the usual path when nested."""
        return "" if self._parent is None else Layer.path.fget(self)

    def describe(self):
        return f"{type(self).__name__} '{self.name}'"

    def scope_name(self):
        return self.name if self._parent is not None else None

    def call(self, x, training):
        raise NotImplementedError(f"{type(self).__name__} must define call(self, x, training)")

    def build(self, input_shape, dtype="float32"):
        """Create the variables for samples of `input_shape` (without the batch axis): a placeholder
        (None, *input_shape) named 'input' in the model's graph (a new graph if it has none yet), and the
        inference branch on it. Returns the output tensor; `model.input`, `model.output` keep both."""
        graph = self.graph if self.graph is not None else Graph()
        with graph:
            self.input = placeholder((None,) + tuple(input_shape), dtype, name="input")
        self.output = call_with_layout_hint(self, self.input, False, input_shape)
        return self.output

    # -- variables -----------------------------------------------------------------------------------------------
    def variables(self):
        found = {}
        for layer in self._layers:
            found.update(layer.variables())
        return found

    def penalized_variables(self):
        found = {}
        for layer in self._layers:
            found.update(layer.penalized_variables())
        return found

    def parameter_counts(self):
        counts = {"trainable": 0, "frozen": 0, "statistics": 0}
        for layer in self._layers:
            for kind, n in layer.parameter_counts().items():
                counts[kind] += n
        return counts

    def get_weights(self):
        """{name: array}: a copy of every variable's current value."""
        return checkpoint.values_of(self.variables())

    def set_weights(self, values, strict=True):
        """Set variables from {name: array}; everything is checked before anything is written."""
        return checkpoint.assign_values(self.variables(), values, where=f"set_weights on '{self.name}'",
                                        strict=strict)

    def save_weights(self, path):
        """Save every variable (as model/<name>) to a .npz checkpoint, atomically."""
        return checkpoint.save_variables(path, self.variables(), group="model", state={"model": self.name})

    def load_weights(self, path, strict=True, include=None):
        """Load variables by name from a checkpoint (of weights or a whole training run); returns the names loaded.

        strict=True: the file and the model must have the same variables. strict=False: load those they share
        (e.g. all but a replaced head). include: only these names, layer prefixes ('conv1'), or a predicate.
        A missing, corrupted or mismatched file raises CheckpointError and changes no variable."""
        return checkpoint.load_variables(path, self.variables(), group="model", strict=strict, include=include)

    def export_onnx(self, path):
        """Write the model's inference graph (built by `build`, training=False) to an ONNX file, its batch axis
        dynamic; returns the onnx ModelProto. See graphnet.onnx."""
        from .. import onnx as graphnet_onnx
        if self.output is None:
            raise GraphError(f"export_onnx: model '{self.name}' is not built yet; call model.build(input_shape) "
                             "first (the ONNX file needs its input's shape)")
        return graphnet_onnx.export(path, [self.input], [self.output], name=self.name)

    # -- freezing --------------------------------------------------------------------------------------------------
    def freeze(self, *which):
        """Freeze layers: all of them, or those named (name or path) or of the given classes, e.g.
        model.freeze(nn.Conv2D). Freeze before building the train op: frozen variables get no gradient."""
        for layer in self._selected(which):
            layer._set_frozen(True)
        return self

    def unfreeze(self, *which):
        for layer in self._selected(which):
            layer._set_frozen(False)
        return self

    def _selected(self, which):
        if not which:
            return [self]
        chosen = []
        for item in which:
            if isinstance(item, str):
                chosen.append(self.get_layer(item))
            elif isinstance(item, type) and issubclass(item, Layer):
                chosen.extend(layer for layer in self.walk() if isinstance(layer, item))
            elif isinstance(item, Layer):
                chosen.append(item)
            else:
                raise GraphError(f"freeze: expected layer names, layer classes or layers, got {item!r}")
        return chosen

    def _set_frozen(self, frozen):
        self.frozen = frozen
        for layer in self._layers:
            layer._set_frozen(frozen)

    @property
    def frozen_layers(self):
        return [layer for layer in self.walk() if layer.frozen and not isinstance(layer, Model)]

    # -- reading ---------------------------------------------------------------------------------------------------
    def summary(self, print_fn=print):
        """Print (or, with print_fn=None, return) a table of the layers: output shape, parameters with their
        formula, FLOPs per sample, and the totals split into trainable, frozen and statistics."""
        text = format_summary(self, [layer for layer in self.walk() if not isinstance(layer, Model)])
        if print_fn is None:
            return text
        print_fn(text)

    def __len__(self):
        return len(self._layers)

    def __iter__(self):
        return iter(self._layers)

    def __getitem__(self, index):
        return self.get_layer(index) if isinstance(index, str) else self._layers[index]


class Sequential(Model):
    """Layers applied one after the other: y = f_n(... f_2(f_1(x))).

    Layers without a name of their own are named by kind and position among their kind: conv1, maxpool1,
    conv2, ..., dense3. Numbers are never reused, so a replaced head gets a fresh name (dense4) unless you name
    it, and its variables never collide with the old head's."""
    kind = "sequential"

    def __init__(self, layers=(), name=None, seed=None):
        super().__init__(name=name, seed=seed)
        self._counters = {}
        for layer in layers:
            self.add(layer)

    def _next_name(self, kind):
        taken = {layer.name for layer in self._layers}
        while True:
            self._counters[kind] = self._counters.get(kind, 0) + 1
            name = f"{kind}{self._counters[kind]}"
            if name not in taken:
                return name

    def add(self, layer):
        """Append a layer; returns it."""
        if not isinstance(layer, Layer):
            raise GraphError(f"Sequential.add: expected a layer, got {type(layer).__name__}")
        self._adopt(layer, layer.name if layer.named_by_user else self._next_name(layer.kind))
        self._layers.append(layer)
        return layer

    def pop(self):
        """Remove and return the last layer (its variables stay in the graph, unused by new branches)."""
        if not self._layers:
            raise GraphError(f"Sequential '{self.name}' has no layer to pop")
        layer = self._layers.pop()
        layer._parent = None
        return layer

    def replace(self, which, layer):
        """Put `layer` in the place of the layer `which` (an index or a name); returns the old layer.

        The new layer is built on the model's next call, e.g. a new head for transfer learning:
        model.replace("dense3", Dense(3, name="head"))."""
        index = which if isinstance(which, int) else self._layers.index(self.get_layer(which))
        old = self._layers[index]
        self._adopt(layer, layer.name if layer.named_by_user else self._next_name(layer.kind), replacing=old)
        self._layers[index] = layer
        old._parent = None
        return old

    def call(self, x, training):
        if not self._layers:
            raise GraphError(f"Sequential '{self.name}' has no layers; add some first")
        for layer in self._layers:
            x = layer(x, training=training)
        return x
