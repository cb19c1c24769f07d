"""graphnet: a define-then-run deep-learning engine for learning how deep learning works.

    import graphnet as gn
    with gn.Graph():
        x = gn.placeholder((None, 784), name="x")
        ...
        dw = gn.gradients(loss, [w])
    prog = gn.compile([loss, dw])
    print(prog)                      # the schedule
    loss_v, dw_v = prog.run({x: batch})
"""
from .autodiff import gradients
from .compiler import compile
from .drawing import draw
from .errors import DatasetError, FeedError, GraphError, GraphnetError, NumericsError, ShapeError
from .graph import Graph, Tensor, constant, get_default_graph, name_scope, placeholder, reset_default_graph, variable
from .ops import *  # noqa: F401,F403 — every op is part of the public API
from .backends import available_devices
from .threads import get_num_threads, set_num_threads
from . import checkpoint, data, nn, optim, train  # noqa: E402 — the training layer, built on the core above

__version__ = "0.1.0"
