"""How graphnet tells you things: news through the `graphnet` logger, doubts about your arguments as warnings.

    logger.info(...)      what happened: "EarlyStopping: stopped after epoch 9; restored the weights of epoch 6"
    warn(...)             what you passed and probably did not mean: a float64 x, a Keras-style momentum

You see both without configuring anything. Until your program configures logging (the root logger has a handler:
`logging.basicConfig(...)`, a framework's setup), graphnet's own handler writes INFO and above to stderr as
`graphnet: <message>`; from then on the records go to your handlers instead, never to both. To silence graphnet:

    logging.getLogger("graphnet").setLevel(logging.WARNING)       # or logging.ERROR
    warnings.simplefilter("ignore", GraphnetWarning)               # from graphnet.messages; or fix what it names

Output you ask for — `model.summary()`, `print(program)`, `program.profile()` — is printed, not logged.
"""
import logging
import os
import sys
import warnings

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))

logger = logging.getLogger("graphnet")


class GraphnetWarning(UserWarning):
    """What graphnet warns about: an argument that works but is probably not what you meant."""


class _StderrUntilConfigured(logging.Handler):
    """Writes to the current sys.stderr, but only while the root logger has no handler of its own."""

    def filter(self, record):
        return not logging.getLogger().handlers and super().filter(record)

    def emit(self, record):
        try:
            sys.stderr.write(self.format(record) + "\n")
            sys.stderr.flush()
        except Exception:
            self.handleError(record)


if not any(isinstance(h, _StderrUntilConfigured) for h in logger.handlers):
    _handler = _StderrUntilConfigured()
    _handler.setFormatter(logging.Formatter("graphnet: %(message)s"))
    logger.addHandler(_handler)
    if logger.level == logging.NOTSET:
        logger.setLevel(logging.INFO)


def warn(message, category=GraphnetWarning):
    """warnings.warn, attributed to the line of user code that called into graphnet (not to graphnet itself)."""
    level, frame = 2, sys._getframe(1)          # stacklevel 2: the frame that called warn()
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(_PACKAGE_DIR + os.sep):
        level, frame = level + 1, frame.f_back
    warnings.warn(message, category, stacklevel=level)
