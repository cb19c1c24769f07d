"""From a pointwise formula (graphnet/ops/formulas.py) to code for each backend: a NumPy expression, a Cython
expression over the fused type `real`, and a Python expression for a Numba CUDA device function.

The formula is parsed with Python's `ast` and written out again node by node; only the language the formulas'
docstring describes is accepted. Plain Python (no graphnet, no NumPy), so setup.py can generate the cpu kernels
before anything is built.
"""
import ast

FUNCTIONS = {"where": 3, "maximum": 2, "minimum": 2, "abs": 1, "square": 1, "sqrt": 1, "exp": 1, "expm1": 1,
             "log1p": 1, "tanh": 1, "erf": 1, "sigmoid": 1}
COSTLY = {"exp", "expm1", "log1p", "tanh", "erf", "sigmoid", "sqrt"}     # worth more threads sooner
OPERATORS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/"}
COMPARISONS = {ast.Gt: ">", ast.GtE: ">=", ast.Lt: "<", ast.LtE: "<="}


class FormulaError(ValueError):
    pass


HINTS = {"log": "for log(1 + u) write log1p(u)", "pow": "write x * x, or square(x)", "max": "write maximum(a, b)",
         "min": "write minimum(a, b)", "tanh_": "write tanh(x)"}


def parse(text, names):
    """The expression's tree, after checking that it uses only the language and the given names."""
    try:
        tree = ast.parse(text, mode="eval").body
    except SyntaxError as error:
        raise FormulaError(f"{text!r} is not a Python expression: {error.msg}") from None
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id not in names and node.id not in FUNCTIONS:
            raise FormulaError(f"{text!r}: unknown name {node.id!r} (known: {', '.join(names)})")
        if isinstance(node, ast.Call):
            function = node.func.id if isinstance(node.func, ast.Name) else ast.unparse(node.func)
            if function not in FUNCTIONS:
                hint = f" ({HINTS[function]})" if function in HINTS else ""
                raise FormulaError(f"{text!r}: {function!r} is not a function of the formula language{hint}; its "
                                   f"functions: {', '.join(FUNCTIONS)}")
            if FUNCTIONS[function] != len(node.args) or node.keywords:
                raise FormulaError(f"{text!r}: {function} takes {FUNCTIONS[function]} argument(s), got "
                                   f"{len(node.args) + len(node.keywords)} in {ast.unparse(node)}")
        allowed = (ast.Name, ast.Constant, ast.BinOp, ast.UnaryOp, ast.Compare, ast.Call, ast.BoolOp, ast.Load,
                   ast.USub, ast.UAdd, ast.And, ast.Or, *OPERATORS, *COMPARISONS)
        if not isinstance(node, allowed):
            hint = " (write x * x, or square(x))" if isinstance(node, ast.Pow) else ""
            raise FormulaError(f"{text!r}: {type(node).__name__} is not part of the formula language{hint}")
        if isinstance(node, ast.Compare) and len(node.ops) != 1:
            raise FormulaError(f"{text!r}: write a < b and b < c, not a < b < c")
    return tree


def parsed(formula, which):
    """The tree of the value (which="y") or the gradient (which="dx"), checked against the names each may use:
    x and the parameters, and for the gradient dy and y too."""
    names = (["x"] if which == "y" else ["dy", "x", "y"]) + list(formula.params)
    return parse(getattr(formula, which), names)


def check(formula):
    """Parse a declaration's value and gradient now, naming the formula and the field of a mistake."""
    for which in ("y", "dx"):
        try:
            parsed(formula, which)
        except FormulaError as error:
            raise FormulaError(f"graphnet/ops/formulas.py, {formula.name}.{which}: {error}") from None


def fingerprint(formulas):
    """A digest of the formulas' text: the generated cpu kernels carry the one they were built from."""
    import hashlib
    text = repr([(f.name, f.y, f.dx, tuple(f.params)) for f in formulas])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def names_used(text):
    return {node.id for node in ast.walk(ast.parse(text, mode="eval")) if isinstance(node, ast.Name)}


def is_costly(formula):
    return bool((names_used(formula.y) | names_used(formula.dx)) & COSTLY)


class Writer:
    """Writes a tree as source text; subclasses say how numbers, functions and logic are spelled. `names` renames
    the formula's names (x → va, slope → p0)."""

    def __init__(self, names=None):
        self.names = names or {}

    def write(self, node):
        if isinstance(node, ast.Constant):
            return self.number(float(node.value))
        if isinstance(node, ast.Name):
            return self.name(node.id)
        if isinstance(node, ast.UnaryOp):
            return f"(-{self.write(node.operand)})" if isinstance(node.op, ast.USub) else self.write(node.operand)
        if isinstance(node, ast.BinOp):
            return f"({self.write(node.left)} {OPERATORS[type(node.op)]} {self.write(node.right)})"
        if isinstance(node, ast.Compare):
            return self.compare(self.write(node.left), COMPARISONS[type(node.ops[0])],
                                self.write(node.comparators[0]))
        if isinstance(node, ast.BoolOp):
            return self.logic("and" if isinstance(node.op, ast.And) else "or", [self.write(v) for v in node.values])
        if node.func.id == "where":
            return self.where(self.condition(node.args[0]), self.write(node.args[1]), self.write(node.args[2]))
        args = [self.write(a) for a in node.args]
        return self.call(node.func.id, args)

    def name(self, name):
        return self.names.get(name, name)

    def condition(self, node):
        """A where's condition, as the language's value (nonzero is true) unless a writer says otherwise."""
        return self.write(node)

    def compare(self, a, op, b):
        return f"({a} {op} {b})"

    def where(self, condition, a, b):
        return f"({a} if {condition} else {b})"

    def logic(self, op, values):
        return "(" + f" {op} ".join(values) + ")"

    def call(self, function, args):
        return f"{function}({', '.join(args)})"


class NumpyWriter(Writer):
    """Arrays: where is np.where, and/or are & and |; a comparison is a boolean array (True is 1)."""

    def number(self, value):
        return repr(value)

    def where(self, condition, a, b):
        return f"np.where({condition}, {a}, {b})"

    def logic(self, op, values):
        return "(" + (" & " if op == "and" else " | ").join(values) + ")"

    def call(self, function, args):
        return f"{NUMPY_FUNCTIONS[function]}({', '.join(args)})"


NUMPY_FUNCTIONS = {"maximum": "np.maximum", "minimum": "np.minimum", "abs": "np.abs", "square": "np.square",
                   "sqrt": "np.sqrt", "exp": "np.exp", "expm1": "np.expm1", "log1p": "np.log1p", "tanh": "np.tanh",
                   "erf": "erf", "sigmoid": "sigmoid"}


class CythonWriter(Writer):
    """Scalars of the fused type `real` (float or double): every number is cast to it, every function is an
    inline helper of the generated module that calls the float or the double version of libm's function."""

    def number(self, value):
        return f"(<real>{value!r})"

    # Comparisons and logic are selects and bitwise operations, never short-circuit branches, so that the
    # compiler can vectorize the loop (gcc leaves a loop with control flow in it scalar).
    def condition(self, node):
        """A where's condition as a C truth value: a comparison as itself, and/or as bitwise & and |."""
        if isinstance(node, ast.Compare):
            return f"({self.write(node.left)} {COMPARISONS[type(node.ops[0])]} {self.write(node.comparators[0])})"
        if isinstance(node, ast.BoolOp):
            return "(" + (" & " if isinstance(node.op, ast.And) else " | ").join(
                self.condition(v) for v in node.values) + ")"
        return f"({self.write(node)} != 0)"

    def compare(self, a, op, b):
        return f"((<real>1) if ({a} {op} {b}) else (<real>0))"

    def logic(self, op, values):
        joined = (" & " if op == "and" else " | ").join(f"({v} != 0)" for v in values)
        return f"((<real>1) if ({joined}) else (<real>0))"

    def call(self, function, args):
        return f"_{function}({', '.join(args)})"


class NumbaWriter(Writer):
    """Scalars of one float type T (float32 or float64), bound as a global of the generated module: every number
    is T(…) so that a float32 kernel never computes in float64; functions are math's or the module's helpers."""

    def number(self, value):
        return f"T({value!r})"

    def compare(self, a, op, b):
        return f"T({a} {op} {b})"

    def logic(self, op, values):
        return "T(" + f" {op} ".join(f"({v} != T(0.0))" for v in values) + ")"

    def call(self, function, args):
        return f"{NUMBA_FUNCTIONS[function]}({', '.join(args)})"


NUMBA_FUNCTIONS = {"maximum": "_maximum", "minimum": "_minimum", "abs": "abs", "square": "_square",
                   "sqrt": "math.sqrt", "exp": "math.exp", "expm1": "math.expm1", "log1p": "math.log1p",
                   "tanh": "math.tanh", "erf": "math.erf", "sigmoid": "_sigmoid"}


def inputs_of_gradient(formula):
    """The arrays the gradient op reads, in its argument order: dy, then x and/or y as its expression names them."""
    used = names_used(formula.dx)
    return ["dy"] + [name for name in ("x", "y") if name in used]


def expression(formula, which, writer):
    """Source text of the value (which="y") or the gradient (which="dx") for one backend's writer."""
    return writer.write(parsed(formula, which))


def kernel_inputs(formula, which):
    """The arrays the value's kernel (x) or the gradient's kernel reads, in argument order."""
    return ["x"] if which == "y" else inputs_of_gradient(formula)


def renaming(formula, which, arrays, params):
    """{formula name: name in the kernel}: its arrays as `arrays` (in kernel_inputs order), its parameters as
    `params` (in declaration order)."""
    return dict(zip(kernel_inputs(formula, which), arrays)) | dict(zip(formula.params, params))


def kernels_of(formulas):
    """(formula, which, kernel name) for every value and gradient kernel."""
    return [(f, which, f.name if which == "y" else f"{f.name}_grad") for f in formulas for which in ("y", "dx")]


MAX_PARAMS = 2
CYTHON_HEADER = '''# cython: language_level=3, boundscheck=False, cdivision=True, initializedcheck=False
# Generated from graphnet/ops/formulas.py by graphnet/ops/formula_code.py when the package is built: do not edit.
"""The pointwise ops of graphnet/ops/formulas.py as cpu kernels: one loop per formula, over float or double.

Parallel (OpenMP) over tiles of TILE elements once a tensor is large enough to pay for waking the threads (sooner
for formulas with exp, tanh, erf, …).
"""
from cython.parallel cimport prange
cimport numpy as cnp

from ._buffers cimport (PARALLEL_MIN, PARALLEL_MIN_COSTLY, RELEASE_GIL_MIN, data, is_single, real, require_floats,
                        require_size, same_floats, size)
from ._scalar cimport _abs, _erf, _exp, _expm1, _log1p, _maximum, _minimum, _sigmoid, _sqrt, _square, _tanh
from graphnet.ops.formula_code import fingerprint
from graphnet.ops.formulas import FORMULAS
from graphnet.ops.pointwise import OPS

cnp.import_array()
if fingerprint(FORMULAS) != BUILT_FROM:
    raise ImportError("graphnet/_ext/pointwise was built from other formulas than graphnet/ops/formulas.py holds "
                      "now; rebuild the kernels: python setup.py build_ext --inplace (or pip install -e .)")

cdef enum:
    TILE = 4096

'''

CYTHON_RUNNER = '''

cdef void _pointwise(int fn, bint costly, real* out, const real* a, const real* b, const real* c, real p0, real p1,
                     Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t tile, start, n_tiles = (n + TILE - 1) // TILE
    if n_tiles > 1 and n >= (PARALLEL_MIN_COSTLY if costly else PARALLEL_MIN):
        for tile in prange(n_tiles, schedule="static"):
            start = tile * TILE
            _run(fn, out + start, a + start, (b + start) if b != NULL else b, (c + start) if c != NULL else c,
                 p0, p1, min(<Py_ssize_t>TILE, n - start))
    else:
        _run(fn, out, a, b, c, p0, p1, n)


cdef void _pointwise_typed(bint single, int fn, bint costly, void* out, const void* a, const void* b,
                           const void* c, double p0, double p1, Py_ssize_t n) noexcept nogil:
    if single:
        _pointwise(fn, costly, <float*>out, <const float*>a, <const float*>b, <const float*>c, <float>p0,
                   <float>p1, n)
    else:
        _pointwise(fn, costly, <double*>out, <const double*>a, <const double*>b, <const double*>c, p0, p1, n)


cdef int _launch(int fn, bint costly, str kernel, cnp.ndarray out, cnp.ndarray a, cnp.ndarray b=None,
                 cnp.ndarray c=None, double p0=0.0, double p1=0.0) except -1:
    if not same_floats(out, a, b, c):
        require_floats(kernel, out, tuple(x for x in (a, b, c) if x is not None))
    cdef Py_ssize_t n = size(out)
    require_size(kernel, "input 1", a, n)
    if b is not None:
        require_size(kernel, "input 2", b, n)
    if c is not None:
        require_size(kernel, "input 3", c, n)
    cdef void* po = data(out)
    cdef void* pa = data(a)
    cdef void* pb = NULL if b is None else data(b)
    cdef void* pc = NULL if c is None else data(c)
    cdef bint single = is_single(out)
    if n >= RELEASE_GIL_MIN:
        with nogil:
            _pointwise_typed(single, fn, costly, po, pa, pb, pc, p0, p1, n)
    else:
        _pointwise_typed(single, fn, costly, po, pa, pb, pc, p0, p1, n)
    return 0
'''


def cython_source(formulas):
    """The text of graphnet/_ext/pointwise.pyx for these formulas."""
    kernels = kernels_of(formulas)
    for formula in formulas:
        if len(formula.params) > MAX_PARAMS:
            raise FormulaError(f"{formula.name}: at most {MAX_PARAMS} parameters")
    built_from = f"BUILT_FROM = {fingerprint(formulas)!r}     # the formulas' fingerprint\ncnp.import_array()"
    header = CYTHON_HEADER.replace("cnp.import_array()", built_from)
    lines = [header, "cdef void _run(int fn, real* out, const real* a, const real* b, const real* c, "
             "real p0, real p1,", "              Py_ssize_t n) noexcept nogil:",
             '    """One loop per formula, so each compiles (and vectorizes) on its own. Every input is loaded before',
             "    the expression, so that a branch of a `where` holds no load the compiler could not move out of it.",
             '    """',
             "    cdef Py_ssize_t i",
             "    cdef real va, vb, vc"]
    for number, (formula, which, name) in enumerate(kernels):
        text = expression(formula, which, CythonWriter(renaming(formula, which, ["va", "vb", "vc"], ["p0", "p1"])))
        arity = len(kernel_inputs(formula, which))
        loads = [f"{v} = {array}[i]" for v, array in zip(("va", "vb", "vc"), "abc")][:arity]
        lines += [f"    {'if' if number == 0 else 'elif'} fn == {number}:{' ' * 4}# {name}: "
                  f"{formula.y if which == 'y' else formula.dx}",
                  "        for i in range(n):", f"            {'; '.join(loads)}", f"            out[i] = {text}"]
    lines.append(CYTHON_RUNNER)
    for number, (formula, which, name) in enumerate(kernels):
        arrays = kernel_inputs(formula, which)
        params = list(formula.params)
        signature = ", ".join(["cnp.ndarray out"] + [f"cnp.ndarray {a}" for a in arrays])
        if params:
            signature += ", *, " + ", ".join(f"double {p}" for p in params)
        values = ", ".join(arrays + ["None"] * (3 - len(arrays)) + params + ["0.0"] * (MAX_PARAMS - len(params)))
        lines += ["", "", f"def {name}({signature}):",
                  f'    """{formula.y if which == "y" else formula.dx}"""',
                  f"    _launch({number}, {is_costly(formula)}, {name!r}, out, {values})"]
    table = ", ".join(f"OPS[{f.name!r}][{0 if which == 'y' else 1}]: {name}" for f, which, name in kernels)
    lines += ["", "", f"KERNELS = {{{table}}}", ""]
    return "\n".join(lines)
