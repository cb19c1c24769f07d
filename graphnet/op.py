"""The `Op` protocol: what every operation of the graph declares, once, for every backend.

An op is four things, kept apart as in PyTensor/Theano:

* a shape rule, `infer_shape` (run at build time with `None` for unknown sizes, and again at compile time with
  the concrete sizes of the feeds),
* a gradient rule, `gradient`, written with other ops so that the backward pass is part of the same graph,
* a cost, `flops`,
* a name, `name`, for the printed schedule and the nodes it makes.

The class itself is the key every backend registers its kernel under (`KERNELS = {Relu: relu, ...}` in a kernel
module); every concrete op class (one with a name) is listed in `REGISTRY`, which the op-specification tests walk.
"""
import math

REGISTRY = []   # every concrete op class, in the order its module defined it


class Op:
    name = None          # the op's name in the schedule; None for an abstract family (Activation, Pool2d, ...)
    differentiable = True
    view_of_input = None  # index of the input whose buffer the output shares (reshape is free), else None
    # What an op is, declared on its class and read as attributes (never by comparing names):
    is_source = False        # its value is not computed: a placeholder (fed) or a variable or constant (stored)
    is_fed = False           # a placeholder: each run copies a feed into it
    is_stored = False        # a variable or constant: its value lives in storage that outlives a run
    is_variable = False      # a variable: stored, and written by assignments and optimizers
    writes_variable = False  # writes its first input, a variable, in place (assign): no buffer of its own
    uses_rng = False         # draws random numbers from the program's run counter (dropout)

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if cls.__dict__.get("name") is not None:
            REGISTRY.append(cls)

    def infer_shape(self, in_shapes, attrs, ref_shapes):
        """Output shape from input shapes. Raise `ShapeRuleViolation` with the formula when the rule is broken."""
        raise NotImplementedError(f"op {type(self).__name__} must define infer_shape")

    def infer_dtype(self, in_dtypes, attrs):
        return in_dtypes[0]

    def gradient(self, node, dy):
        """Gradients with respect to `node.inputs` (one entry each, None where there is none), as graph tensors."""
        from .errors import GraphError
        raise GraphError(f"op {self.name!r} has no gradient rule; gradients of gradients (second derivatives) "
                         "are not supported for it")

    def view_of(self, in_shapes, out_shape):
        """The index of the input whose buffer the output can share for these concrete shapes (no kernel runs),
        else None: `view_of_input` by default (reshape always shares)."""
        return self.view_of_input

    def check_runnable(self, in_shapes, attrs):
        """Refuse concrete shapes that the shape rule allows but a run cannot compute (raise ShapeRuleViolation);
        checked when a plan is made for a run, not when a schedule is only described."""

    def flops(self, in_shapes, out_shape, attrs):
        """Floating-point operations for one execution; by default one per output element."""
        return numel(out_shape)

    def kernel_params(self, in_shapes, out_shape, attrs, ref_shapes):
        """Keyword arguments the kernel receives, computed once at compile time from the concrete shapes."""
        return dict(attrs)

    def describe(self, attrs):
        """A short reading of the attributes for the printed schedule, e.g. 'stride=2 pad=1'."""
        return ""


def numel(shape):
    return math.prod(shape)
