"""Op classes by the name the schedule shows, for the tests that call a backend's kernel directly."""
import graphnet.ops.fused  # noqa: F401 — the fused ops register themselves too
from graphnet.op import REGISTRY


def op_named(name):
    """The op class whose `name` is `name` (reshape: the first of the two that share it)."""
    for op in REGISTRY:
        if op.name == name:
            return op
    raise KeyError(f"no op is named {name!r}")
