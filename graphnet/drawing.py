"""Pictures of graphs and programs, drawn by Graphviz.

    gn.draw(graph)                      # a Drawing: shows itself in a notebook; .svg is its SVG text
    gn.draw([loss, dw], "net.png")      # the part of the graph these fetches need, as a PNG (or .svg, .dot)
    gn.draw(prog, "schedule.svg")       # a compiled program: step numbers, fused steps boxed with their kernel

Ops are coloured by phase (forward blue, backward orange, update green); placeholders are yellow houses,
variables lilac cylinders (dashed when not trainable), constants small grey notes; every edge carries the shape
of the value on it, and hovering over an op shows the line of your code that created it.

This module writes the DOT text with the `graphviz` Python package, and lays it out and renders it with a `dot`
program: Graphviz's own on PATH, else the static binary of the `graphviz-pure` wheel. `pip install
'graphnet[viz]'` installs both packages.
"""
import contextlib
import os
import shutil
import sys
import sysconfig
import threading

from .errors import GraphError
from .graph import ConstantOp, Graph, Placeholder, Tensor, VariableOp, format_shape

PHASE_COLOURS = {"forward": ("#dbe9f6", "#3b75af"), "backward": ("#fde2cc", "#d9822b"),
                 "update": ("#d9f0d3", "#3a8f3a")}         # phase -> (fill, border)
SOURCE_STYLES = {
    Placeholder: dict(shape="invhouse", style="filled", fillcolor="#fff3b0", color="#b59a00"),
    VariableOp: dict(shape="cylinder", style="filled", fillcolor="#e8dcf4", color="#7b52ab"),
    ConstantOp: dict(shape="note", style="filled", fillcolor="#eeeeee", color="#999999", fontsize="8"),
}
FORMATS = ("svg", "png", "dot", "gv")
INSTALL = "pip install 'graphnet[viz]'"


def draw(target, path=None, batch_size=None, phases=None, rankdir="TB"):
    """Draw a Graph, the part of a graph some fetches need (a tensor or a list of them), or a compiled Program.

    path: write the picture there, in the format its extension names (.svg, .png, or .dot/.gv for the DOT text)
    and return the path; without one, return a Drawing (its .svg text; a notebook shows it).
    batch_size: for a program, the size of its None axes in the shapes shown (default: the last run's, else 1).
    phases: draw only the ops of these phases, e.g. ("forward", "backward") to leave out the optimizer's update
    (and the placeholders, variables and constants they read). rankdir: "TB" (top to bottom) or "LR"."""
    digraph = to_digraph(target, batch_size, phases, rankdir)
    return Drawing(digraph) if path is None else write(digraph, path)


class Drawing:
    """A rendered picture: `.svg` (text), `.source` (the DOT text), `save(path)`; a notebook displays it."""

    def __init__(self, digraph):
        self.digraph = digraph
        self.svg = render(digraph, "svg").decode()

    @property
    def source(self):
        return self.digraph.source

    def save(self, path):
        """Write the picture to `path` (.svg, .png, .dot or .gv) and return the path."""
        return write(self.digraph, path)

    def _repr_svg_(self):
        return self.svg

    def __repr__(self):
        return f"<Drawing: {len(self.svg) / 1024:.0f} KiB of SVG in .svg, the DOT text in .source, .save(path)>"


def write(digraph, path):
    """Write the digraph to `path` in the format its extension names; return the path."""
    path = os.fspath(path)
    extension = os.path.splitext(path)[1].lstrip(".").lower()
    if extension not in FORMATS:
        raise GraphError(f"draw: cannot write '{path}': its extension names the format, one of "
                         f"{', '.join('.' + f for f in FORMATS)}")
    data = digraph.source.encode() if extension in ("dot", "gv") else render(digraph, extension)
    with open(path, "wb") as file:
        file.write(data)
    return path


def svg_or_none(target):
    """The SVG of `target` for a notebook's `_repr_svg_`, or None (the notebook then shows the text) when no
    renderer is installed."""
    try:
        return draw(target).svg
    except GraphError:
        return None


# ---------------------------------------------------------------------------------------------------------------
# Rendering

_render_lock = threading.Lock()


def find_dot():
    """The `dot` program to render with: Graphviz's on PATH, else graphviz-pure's (installed beside this Python's
    scripts, or on PATH); None if there is neither."""
    found = shutil.which("dot")
    if found:
        return found
    for folder in (sysconfig.get_path("scripts"), os.path.dirname(sys.executable)):
        candidate = os.path.join(folder, "graphviz-pure")
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return shutil.which("graphviz-pure")


def render(digraph, fmt):
    """The digraph laid out and rendered by dot, as bytes in format `fmt` ('svg' or 'png')."""
    dot = find_dot()
    if dot is None:
        raise GraphError(f"draw: rendering needs a dot program, and none was found (neither Graphviz's `dot` on "
                         f"PATH nor graphviz-pure's): {INSTALL} (or apt-get install graphviz). Pictures can still "
                         f"be written as DOT text: draw(..., 'picture.dot')")
    with _dot_binary(dot):
        return digraph.pipe(format=fmt, quiet=True)


@contextlib.contextmanager
def _dot_binary(path):
    """Point the graphviz package at `path` while rendering (it runs its module-level DOT_BINARY, 'dot' by
    default; graphviz-pure installs a binary of another name)."""
    from graphviz.backend import dot_command
    with _render_lock:
        saved, dot_command.DOT_BINARY = dot_command.DOT_BINARY, path
        try:
            yield
        finally:
            dot_command.DOT_BINARY = saved


def _graphviz():
    try:
        import graphviz
    except ImportError:
        raise GraphError(f"draw needs the graphviz Python package and a dot program: {INSTALL}") from None
    return graphviz


# ---------------------------------------------------------------------------------------------------------------
# The picture


def to_digraph(target, batch_size=None, phases=None, rankdir="TB"):
    """A graphviz.Digraph of a Graph, of the nodes some fetches need, or of a Program's schedule."""
    graphviz = _graphviz()
    picture = picture_of(target, batch_size)
    if phases is not None:
        picture.keep_phases(phases)
    digraph = graphviz.Digraph("graphnet")
    digraph.attr(rankdir=rankdir, fontname="Helvetica", fontsize="10", nodesep="0.25", ranksep="0.35",
                 tooltip=" ")
    digraph.attr("node", fontname="Helvetica", fontsize="10", height="0.3", margin="0.08,0.04")
    digraph.attr("edge", fontname="Helvetica", fontsize="8", color="#666666", fontcolor="#444444",
                 arrowsize="0.6")
    picture.add_to(digraph)
    return digraph


def picture_of(target, batch_size=None):
    """What to draw of a Program (its plan for batch_size), a Graph (every node) or fetches (the nodes they need)."""
    from .compiler import prune
    from .program import Program
    if isinstance(target, Program):
        plan = target.plan(batch_size)
        return Picture(sorted(target.nodes, key=lambda n: n.id), plan.shapes, set(target.fetches), plan.steps)
    if isinstance(target, Graph):
        return Picture(list(target.nodes))
    fetches = [target] if isinstance(target, Tensor) else list(target) if isinstance(target, (list, tuple)) else []
    if not fetches or not all(isinstance(f, Tensor) for f in fetches):
        raise GraphError(f"draw: cannot draw {type(target).__name__} {target!r:.60}; pass a Graph, a tensor or a "
                         "list of tensors (the part of the graph they need), or a compiled Program")
    return Picture(sorted(prune(fetches), key=lambda n: n.id), fetched=set(fetches))


class Picture:
    """The nodes to draw, their shapes, and for a program its steps (numbered; fused ones boxed together)."""

    def __init__(self, nodes, shapes=None, fetched=(), steps=None):
        self.nodes = nodes
        self.shapes = shapes or {n: n.shape for n in nodes}
        self.fetched = fetched
        self.steps = steps or []          # a program's steps in order (None for one left out)
        self.index_steps()

    def index_steps(self):
        self.step_of = {n: (index, s) for index, s in enumerate(self.steps) if s is not None for n in s.nodes}

    def keep_phases(self, phases):
        """Leave out the ops of other phases, and the sources that only they read."""
        ops = {n for n in self.nodes if not n.op.is_source and n.phase in phases}
        read = {i for n in ops for i in n.inputs}
        self.nodes = [n for n in self.nodes if (n.op.is_source and n in read) or n in ops]
        self.steps = [s if all(n in ops for n in s.nodes) else None for s in self.steps]
        self.index_steps()

    def add_to(self, digraph):
        drawn = set(self.nodes)
        fused = [(index, step) for index, step in enumerate(self.steps) if step is not None and len(step.nodes) > 1]
        in_cluster = {n for _, step in fused for n in step.nodes}
        for node in self.nodes:
            if node not in in_cluster:
                digraph.node(node_id(node), **self.node_attrs(node))
        for index, step in fused:
            with digraph.subgraph(name=f"cluster_step{index}") as cluster:
                cluster.attr(label=f"step {index}: {step.label}", style="rounded,dashed", color="#888888",
                             fontsize="9", fontcolor="#555555", tooltip=f"step {index}: {step.nodes[0].op.name}"
                             f" fused into one kernel, {step.label}")
                for node in step.nodes:
                    cluster.node(node_id(node), **self.node_attrs(node))
        for node in self.nodes:
            for position, source in enumerate(node.inputs):
                if source in drawn:
                    digraph.edge(node_id(source), node_id(node), **self.edge_attrs(source, node, position))
            for source in node.refs:
                if source in drawn:
                    digraph.edge(node_id(source), node_id(node), style="dotted", arrowhead="odot",
                                 tooltip=f"{node.name} uses only the shape of {source.name}")
        digraph.attr(label=legend({type(n.op) if n.op.is_source else n.phase for n in self.nodes},
                                  bool(fused)), labelloc="b", labeljust="l")

    def node_attrs(self, node):
        shape = format_shape(self.shapes[node])
        tooltip = [f"{node.op.name} '{node.name}' created at {node.site}", f"{shape} {node.dtype}"]
        if node.op.is_source:
            attrs = dict(SOURCE_STYLES[type(node.op)])
            label = [_text(node.name), f"{shape} {node.dtype}" if node.op.is_variable or not node.op.is_stored else shape]
            if node.op.is_stored and not node.op.is_variable and node.attrs["state"].host.size == 1:
                label = [f"{node.attrs['state'].host.item():.4g}"]
            if node.op.is_variable and not node.attrs["trainable"]:
                attrs["style"] = "filled,dashed"
                tooltip.append("not trainable")
        else:
            fill, border = PHASE_COLOURS.get(node.phase, ("#ffffff", "#333333"))
            attrs = dict(shape="box", style="rounded,filled", fillcolor=fill, color=border)
            described = node.op.describe(node.attrs)
            label = [node.op.name + (f" {described}" if described else "")]
            if node.name != node.op.name:
                label.append(_text(node.name))
            if node in self.step_of:
                index, step = self.step_of[node]
                label[0] = f"{index}: {label[0]}"
                if step.kernel is None:
                    attrs["style"] = "rounded,filled,dashed"
                tooltip.append(f"step {index}, {step.label}" + (f", {step.flops:,} FLOPs" if step.flops else ""))
        if node in self.fetched:
            attrs["penwidth"] = "2.5"
            tooltip.append("fetched")
        attrs["label"] = "\\n".join(label)
        attrs["tooltip"] = _text("\n".join(tooltip))
        return attrs

    def edge_attrs(self, source, node, position):
        attrs = {"label": format_shape(self.shapes[source]),
                 "tooltip": _text(f"{source.name} -> {node.name} (input {position}): "
                                  f"{format_shape(self.shapes[source])} {source.dtype}")}
        step = self.step_of.get(node)
        if step is not None and source in step[1].nodes:
            attrs["style"] = "dashed"         # inside a fused kernel: the value never reaches memory
        if source.op.is_stored and not source.op.is_variable:
            attrs["label"] = ""
        return attrs


def node_id(node):
    return f"n{node.id}"


def _text(text):
    """Text for a DOT string: backslashes kept as written, newlines as DOT's line breaks."""
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def legend(kinds, fused):
    """An HTML-like label: a colour swatch for each kind of node in the picture."""
    cells = []
    for phase, (fill, border) in PHASE_COLOURS.items():
        if phase in kinds:
            cells.append(f'<td bgcolor="{fill}" color="{border}" border="1">{phase}</td>')
    for kind, style in SOURCE_STYLES.items():
        if kind in kinds:
            cells.append(f'<td bgcolor="{style["fillcolor"]}" color="{style["color"]}" border="1">{kind.name}</td>')
    if fused:
        cells.append('<td border="1" style="dashed" color="#888888">fused step</td>')
    return f'<<table border="0" cellspacing="4" cellpadding="3"><tr>{"".join(cells)}</tr></table>>'
