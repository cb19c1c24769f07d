"""The static graph: `Graph`, the `Tensor` handles its nodes are, and the three kinds of source node.

    g = gn.Graph()
    with g:
        x = gn.placeholder((None, 784), name="x")     # fed at run time; None = any size
        w = gn.variable(np.zeros((784, 10), "float32"), name="w")   # state that lives across runs
        y = x @ w                                      # an op: a node whose value is computed

Nothing is computed while the graph is built: each op only checks its inputs' shapes and records itself.
"""
import contextlib
import threading

import numpy as np

from .errors import GraphError, ShapeError, ShapeRuleViolation, user_site
from .op import Op


def format_shape(shape):
    return "(" + ", ".join("None" if d is None else str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"


class Tensor:
    """A node of the graph and the handle the user holds: the output of one op."""

    def __init__(self, graph, op, inputs, attrs, name, shape, dtype, refs, site, phase):
        self.graph = graph
        self.op = op
        self.inputs = inputs          # data inputs, in order
        self.attrs = attrs            # static attributes (stride, axis, ...)
        self.refs = refs              # tensors whose *shape* (not value) the op needs, e.g. a gradient's target
        self.name = name
        self.shape = shape            # tuple of ints, None where unknown until run time
        self.dtype = dtype
        self.site = site              # 'file.py:LINE' of the user code that created it
        self.phase = phase            # 'forward', 'backward' or 'update'
        self.id = len(graph.nodes)
        self.side_effects = []        # nodes that must run whenever this one runs (batch norm's running statistics)

    @property
    def ndim(self):
        return len(self.shape)

    def __repr__(self):
        return f"<Tensor '{self.name}' op={self.op.name} shape={format_shape(self.shape)} dtype={self.dtype}>"

    def __hash__(self):
        return id(self)

    def __eq__(self, other):
        return self is other

    def __bool__(self):
        raise GraphError(f"tensor '{self.name}' ({self.site}) has no value while the graph is built; "
                         "compile it and run the program to get one")

    # Python operators build ops; the functions live in graphnet.ops and are looked up lazily to avoid a cycle.
    def __add__(self, other): return _ops().add(self, other)
    def __radd__(self, other): return _ops().add(other, self)
    def __sub__(self, other): return _ops().sub(self, other)
    def __rsub__(self, other): return _ops().sub(other, self)
    def __mul__(self, other): return _ops().mul(self, other)
    def __rmul__(self, other): return _ops().mul(other, self)
    def __truediv__(self, other): return _ops().div(self, other)
    def __rtruediv__(self, other): return _ops().div(other, self)
    def __neg__(self): return _ops().neg(self)
    def __pow__(self, exponent): return _ops().pow(self, exponent)
    def __matmul__(self, other): return _ops().matmul(self, other)
    def __rmatmul__(self, other): return _ops().matmul(other, self)
    def __getitem__(self, index): return _ops().getitem(self, index)

    def reshape(self, *shape):
        return _ops().reshape(self, shape[0] if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape)

    def transpose(self, *axes):
        return _ops().transpose(self, axes[0] if len(axes) == 1 and isinstance(axes[0], (tuple, list)) else (axes or None))

    @property
    def T(self):
        return _ops().transpose(self)

    def numpy(self):
        """The current value of a variable or constant (a copy)."""
        return self._state("numpy()").read()

    def assign_value(self, value):
        """Set a variable's value from NumPy, outside any program (e.g. to load weights)."""
        state = self._state("assign_value()")
        value = np.asarray(value)
        if value.shape != self.shape:
            raise ShapeError(f"assign_value: variable '{self.name}' has shape {format_shape(self.shape)}, "
                             f"the value has {format_shape(value.shape)}")
        state.write(value.astype(self.dtype, copy=True))

    def _state(self, what):
        if not self.op.is_stored:
            raise GraphError(f"{what}: '{self.name}' is computed by {self.op.name}, not stored; compile a program "
                             "that fetches it and run it to get its value")
        return self.attrs["state"]

    def sum(self, axis=None, keepdims=False): return _ops().sum(self, axis, keepdims)
    def mean(self, axis=None, keepdims=False): return _ops().mean(self, axis, keepdims)
    def max(self, axis=None, keepdims=False): return _ops().max(self, axis, keepdims)


def _ops():
    from . import ops
    return ops


class Graph:
    """A container of nodes; `with graph:` makes it the one new ops go into."""

    def __init__(self):
        self.nodes = []
        self._names = set()
        self._scopes = []
        self._phase = "forward"

    def __enter__(self):
        _graph_stack.append(self)
        return self

    def __exit__(self, *exc):
        _graph_stack.pop()

    def __repr__(self):
        return f"<Graph with {len(self.nodes)} nodes>"

    def _repr_svg_(self):
        """A notebook shows the graph as a picture (gn.draw), or as text where no renderer is installed."""
        from .drawing import svg_or_none
        return svg_or_none(self)

    @contextlib.contextmanager
    def name_scope(self, scope):
        """Prefix the names of the nodes made inside, e.g. 'conv1/weight'."""
        self._scopes.append(scope)
        try:
            yield
        finally:
            self._scopes.pop()

    @contextlib.contextmanager
    def phase(self, phase):
        """Mark the nodes made inside as 'forward', 'backward' or 'update' (for the printed schedule)."""
        previous, self._phase = self._phase, phase
        try:
            yield
        finally:
            self._phase = previous

    def unique_name(self, base):
        base = "/".join(self._scopes + [base])
        name, k = base, 1
        while name in self._names:
            name, k = f"{base}_{k}", k + 1
        self._names.add(name)
        return name

    def rename(self, node, base):
        """Give `node` the unique name closest to `base` (used to call a gradient 'grad/w')."""
        self._names.discard(node.name)
        saved, self._scopes = self._scopes, []
        try:
            node.name = self.unique_name(base)
        finally:
            self._scopes = saved

    def variables(self, trainable_only=False):
        return [n for n in self.nodes if n.op.is_variable and (n.attrs["trainable"] or not trainable_only)]

    def trainable_variables(self):
        return self.variables(trainable_only=True)

    def apply(self, op, inputs, attrs=None, name=None, refs=(), site=None):
        """Add one node: check the inputs, run the op's shape rule, record where the user wrote it."""
        attrs = {} if attrs is None else attrs
        site = site or user_site()
        for t in list(inputs) + list(refs):
            if t.graph is not self:
                raise GraphError(f"{op.name} ({site}): input '{t.name}' belongs to another graph; "
                                 "build every op of one computation inside the same `with graph:` block")
        node_name = self.unique_name(name or op.name)
        try:
            shape = tuple(op.infer_shape([t.shape for t in inputs], attrs, [t.shape for t in refs]))
            dtype = np.dtype(op.infer_dtype([t.dtype for t in inputs], attrs))
        except ShapeRuleViolation as violation:
            raise ShapeError(f"{op.name} '{node_name}' ({site}): {violation}") from None
        check_sizes(shape, f"{op.name} '{node_name}' ({site})")
        node = Tensor(self, op, list(inputs), attrs, node_name, shape, dtype, list(refs), site, self._phase)
        self.nodes.append(node)
        return node


_default_graph = Graph()
_graph_stack = []


def get_default_graph():
    """The graph new ops go into: the innermost `with graph:` block, else a global default graph."""
    return _graph_stack[-1] if _graph_stack else _default_graph


def reset_default_graph():
    global _default_graph
    _default_graph = Graph()
    return _default_graph


def name_scope(scope):
    return get_default_graph().name_scope(scope)


# ---------------------------------------------------------------------------------------------------------------
# Source nodes: placeholder, variable, constant.

class Placeholder(Op):
    name = "placeholder"
    differentiable = False
    is_source = is_fed = True

    def infer_shape(self, in_shapes, attrs, ref_shapes):
        return attrs["shape"]

    def infer_dtype(self, in_dtypes, attrs):
        return attrs["dtype"]

    def flops(self, in_shapes, out_shape, attrs):
        return 0


class VariableState:
    """The value of a variable or constant. Each backend that runs it keeps one storage array for it, made once;
    the value lives in whichever was written last, and moves to another backend when a program there runs.

    `lock` is held by every program run that reads or writes the variable (program.py), and by `read` and `write`:
    two threads never see the value half-updated, and two programs that update it never lose an update."""

    def __init__(self, value):
        self.host = value              # the value while no backend holds a newer one
        self.storages = {}             # backend -> its storage array, stable for the variable's life
        self.latest = None             # the backend holding the newest value, or None for `host`
        self.lock = threading.RLock()

    def on(self, backend):
        """This backend's storage, holding the newest value. The caller may write it."""
        storage = self.storages.get(backend)
        if storage is None:
            storage = self.storages[backend] = backend.from_host(self.read())
        elif self.latest is not backend:
            backend.copy_in(storage, self.read())
        self.latest = backend
        return storage

    def read(self):
        """A host copy of the newest value."""
        with self.lock:
            if self.latest is None:
                return self.host.copy()
            return self.latest.to_host(self.storages[self.latest])

    def write(self, value):
        with self.lock:
            self.host = value
            self.latest = None


class Source(Op):
    """A variable or constant: a node whose value is stored, not computed."""
    differentiable = False
    is_source = is_stored = True

    def infer_shape(self, in_shapes, attrs, ref_shapes):
        return attrs["state"].host.shape

    def infer_dtype(self, in_dtypes, attrs):
        return attrs["state"].host.dtype

    def flops(self, in_shapes, out_shape, attrs):
        return 0


class VariableOp(Source):
    name = "variable"
    is_variable = True


class ConstantOp(Source):
    name = "constant"


FLOAT_DTYPES = (np.dtype("float32"), np.dtype("float64"))

# The most elements an axis of a tensor may have: BLAS and the kernels take sizes as 32-bit ints.
MAX_SIZE = 2 ** 31 - 1


def check_sizes(shape, what):
    """A ShapeError naming `what` if an axis of `shape` is longer than MAX_SIZE."""
    for axis, size in enumerate(shape):
        if size is not None and size > MAX_SIZE:
            raise ShapeError(f"{what}: axis {axis} would have {size} elements, more than graphnet's limit of "
                             f"2**31 - 1 = {MAX_SIZE} per axis (BLAS and the kernels index an axis with a 32-bit "
                             "int); split the tensor, e.g. into a batch axis")


def is_supported_dtype(dtype):
    """bool, the integers (labels, masks, counters), float32 and float64: what graphnet's kernels compute in."""
    return dtype.kind in "biu" or dtype in FLOAT_DTYPES


def _as_dtype(dtype, what, site):
    """np.dtype(dtype), or a GraphError naming `what` if it is no dtype or one graphnet has no kernels for."""
    try:
        result = np.dtype(dtype)
    except TypeError:
        raise GraphError(f"{what} ({site}): dtype {dtype!r} is not a NumPy dtype; use 'float32', 'float64' "
                         "or 'int64'") from None
    if not is_supported_dtype(result):
        raise GraphError(f"{what} ({site}): dtype {result} is not supported: {_why_not(result)}")
    return result


def _why_not(dtype):
    if dtype.kind == "c":
        return ("graphnet has no complex arithmetic; carry the real and imaginary parts as two float tensors "
                "(value.real, value.imag)")
    if dtype.kind == "f":
        return (f"graphnet computes in float32 and float64 only, and would silently widen or round a {dtype}; "
                f"use 'float32' and convert the data with .astype('float32')")
    return ("graphnet's tensors hold numbers: float32, float64, integers (labels, masks) or bool; convert the data "
            "to one of them")


def placeholder(shape, dtype="float32", name=None):
    """A value fed at run time: `prog.run({x: batch})`. `None` in `shape` means any size (usually the batch)."""
    site = user_site()
    dtype = _as_dtype(dtype, f"placeholder '{name or 'placeholder'}'", site)
    if isinstance(shape, int) or shape is None:
        raise GraphError(f"placeholder ({site}): shape must be a tuple such as (None, 784), got {shape!r}")
    shape = tuple(shape)
    for d in shape:
        if not (d is None or (isinstance(d, (int, np.integer)) and d >= 0)):
            raise GraphError(f"placeholder ({site}): shape {shape} has {d!r}; each size must be an int >= 0 "
                             "or None for 'any size'")
    shape = tuple(None if d is None else int(d) for d in shape)
    check_sizes(shape, f"placeholder '{name or 'placeholder'}' ({site}): shape {format_shape(shape)}")
    return get_default_graph().apply(Placeholder(), [], {"shape": shape, "dtype": dtype}, name=name, site=site)


def variable(value, name=None, trainable=True, dtype=None):
    """State that keeps its value across runs (weights). `value` is copied; float arrays default to float32 only
    when given as Python lists."""
    site = user_site()
    array = _to_array(value, dtype, site, f"variable '{name or 'variable'}'")
    state = VariableState(array)
    return get_default_graph().apply(VariableOp(), [], {"state": state, "trainable": bool(trainable)},
                                     name=name or "variable", site=site)


def constant(value, dtype=None, name=None):
    """A fixed value baked into the graph."""
    site = user_site()
    array = _to_array(value, dtype, site, f"constant '{name or 'constant'}'")
    return get_default_graph().apply(ConstantOp(), [], {"state": VariableState(array)},
                                     name=name or "constant", site=site)


def _to_array(value, dtype, site, what="value"):
    if isinstance(value, Tensor):
        raise GraphError(f"{what} ({site}): expected a NumPy value, got the tensor '{value.name}'")
    try:
        if dtype is None and not isinstance(value, np.ndarray):
            array = np.asarray(value)
            if array.dtype.kind == "f":
                array = array.astype("float32")
        else:
            array = np.asarray(value, dtype=None if dtype is None else _as_dtype(dtype, what, site))
    except (ValueError, OverflowError) as error:      # ragged nested lists, a number that does not fit the dtype
        raise GraphError(f"{what} ({site}): the value is not an array of one dtype: {error}") from None
    _as_dtype(array.dtype, what, site)
    return np.array(array, order="C", copy=True)


def as_tensor(value, like=None):
    """A tensor for `value`: tensors pass through; numbers and arrays become constants. A number next to a tensor
    `like` gets the dtype NumPy 2 would give the pair (NEP 50): `x * 2` keeps x's float32, `labels * 0.5` is
    float64 — the number is never truncated to an integer dtype."""
    if isinstance(value, Tensor):
        return value
    graph = like.graph if like is not None else get_default_graph()
    with _graph_context(graph):
        if like is not None and isinstance(value, (bool, int, float, np.bool_, np.integer, np.floating)):
            number = value.item() if isinstance(value, np.generic) else value
            dtype = np.result_type(like.dtype, number)
            try:
                array = np.asarray(number, dtype=dtype)
            except OverflowError:
                raise ShapeError(f"the Python integer {number} next to '{like.name}' ({user_site()}) does not fit "
                                 f"{dtype}, its dtype (NumPy 2 raises here too); cast '{like.name}' to a wider "
                                 f"integer first, e.g. gn.cast({like.name}, 'int64')") from None
            return constant(array)
        return constant(value)


@contextlib.contextmanager
def _graph_context(graph):
    _graph_stack.append(graph)
    try:
        yield
    finally:
        _graph_stack.pop()
