"""The errors a user can cause, each raised at the earliest moment it can be detected.

Every message names the op, the line of user code that created it and the numbers involved, e.g.

    conv2d 'conv1' (model.py:12): output width floor((28 - 5 + 2*0)/3) + 1 = 8 ...
"""
import os
import sys

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


class GraphnetError(Exception):
    """Base class of every error graphnet raises on purpose."""


class ShapeError(GraphnetError, ValueError):
    """An op's inputs have shapes (or dtypes) its rule does not allow."""


class FeedError(GraphnetError, ValueError):
    """A value fed to `Program.run` is missing, misshapen or of an unsafe dtype."""


class GraphError(GraphnetError, ValueError):
    """The graph itself is wrong: mixed graphs, no gradient path, unknown device, ..."""


class DatasetError(GraphnetError, ValueError):
    """A data set's files are missing, truncated or malformed, or a loader got an argument it cannot use."""


class NumericsError(GraphnetError, FloatingPointError):
    """A step of a program run with check_numerics wrote NaN or Inf (see graphnet/numerics.py)."""


class ShapeRuleViolation(Exception):
    """Raised inside an op's shape rule; the graph layer turns it into a ShapeError with the op's context."""


def note_running(error, node):
    """Add to an exception a kernel raised which op was running, and the line of user code that created it."""
    error.add_note(f"while running {node.op.name} '{node.name}' created at {node.site}")


def user_site():
    """'file.py:LINE' of the innermost stack frame outside the graphnet package (where the user wrote the op)."""
    frame = sys._getframe(1)
    while frame is not None:
        filename = os.path.abspath(frame.f_code.co_filename)
        if not filename.startswith(_PACKAGE_DIR + os.sep):
            return f"{os.path.basename(filename)}:{frame.f_lineno}"
        frame = frame.f_back
    return "<graphnet>"
