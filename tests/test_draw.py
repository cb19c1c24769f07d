"""gn.draw: pictures of graphs, of the part some fetches need, and of compiled programs (steps, fused kernels),
rendered as SVG and PNG by Graphviz's dot (or graphviz-pure's); a clear error where no renderer is installed."""
import os
import sys
import xml.etree.ElementTree as ET

import numpy as np
import pytest

import graphnet as gn
from graphnet import drawing, optim

HERE = os.path.basename(__file__)
SVG = "{http://www.w3.org/2000/svg}"


def small_cnn():
    """A conv -> relu -> pool -> dense classifier trained by SGD, and one node the loss does not need."""
    g = gn.Graph()
    with g:
        x = gn.placeholder((None, 1, 8, 8), name="x")
        y = gn.placeholder((None,), dtype="int64", name="y")
        w = gn.variable(np.full((4, 1, 3, 3), 0.1, "float32"), name="w")
        v = gn.variable(np.full((64, 3), 0.01, "float32"), name="v")
        h = gn.max_pool2d(gn.relu(gn.conv2d(x, w, padding=1)), 2)          # the line of the convolution
        loss = gn.softmax_cross_entropy(gn.flatten(h) @ v, y)
        train_op = optim.SGD(0.1).minimize(loss)
        unused = gn.exp(x, name="unused")
    return g, x, y, loss, train_op, unused


def svg_nodes(svg):
    """{title: tooltip} of the SVG's nodes (Graphviz writes a node's id as its <title>)."""
    root = ET.fromstring(svg)
    nodes = {}
    for group in root.iter(f"{SVG}g"):
        if group.get("class") == "node":
            link = group.find(f".//{SVG}a")
            nodes[group.find(f"{SVG}title").text] = link.get("{http://www.w3.org/1999/xlink}title")
    return nodes


def test_a_program_is_drawn_with_its_steps_fused_kernels_and_shapes():
    g, x, y, loss, train_op, unused = small_cnn()
    program = gn.compile([loss, train_op])
    program.run({x: np.zeros((5, 1, 8, 8), "float32"), y: np.zeros(5, "int64")})
    picture = gn.draw(program)
    source = picture.source
    assert "subgraph cluster_step0" in source and "step 0: cpu.conv2d_relu" in source        # fused: one box
    assert 'label="0: conv2d pad=1"' in source and 'label="0: relu"' in source
    assert "(5, 4, 8, 8)" in source and "(None" not in source          # the shapes of the last run's batch
    for fill, _ in drawing.PHASE_COLOURS.values():                     # forward, backward and update steps
        assert f'fillcolor="{fill}"' in source
    assert "shape=invhouse" in source and "shape=cylinder" in source   # placeholders, variables
    assert 'label="unused' not in source                               # only the program's nodes
    nodes = svg_nodes(picture.svg)
    assert len(nodes) == len(program.nodes)
    convolution = nodes[f"n{next(n.id for n in program.nodes if n.op.name == 'conv2d')}"]
    assert convolution.startswith("conv2d 'conv2d' created at " + HERE + ":")
    assert "step 0, cpu.conv2d_relu" in convolution


def test_a_graph_and_a_set_of_fetches_are_drawn_before_compiling():
    g, x, y, loss, train_op, unused = small_cnn()
    whole, needed = gn.draw(g), gn.draw(loss)
    assert len(svg_nodes(whole.svg)) == len(g.nodes)
    assert 'label="exp\\nunused"' in whole.source and "(None, 1, 8, 8)" in whole.source
    assert "unused" not in needed.source and "sgd" not in needed.source     # only what the loss needs
    assert {f"n{n.id}" for n in (x, y, loss)} <= set(svg_nodes(needed.svg))


def test_svg_png_and_dot_files_by_extension(tmp_path):
    g, x, y, loss, train_op, unused = small_cnn()
    program = gn.compile([loss, train_op])
    assert gn.draw(program, tmp_path / "prog.png") == str(tmp_path / "prog.png")
    png = (tmp_path / "prog.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
    assert width > 400 and height > 400
    gn.draw(g, tmp_path / "graph.svg", rankdir="LR")
    assert ET.parse(tmp_path / "graph.svg").getroot().tag == f"{SVG}svg"
    gn.draw(loss, tmp_path / "loss.dot")
    assert (tmp_path / "loss.dot").read_text().startswith("digraph graphnet {")
    with pytest.raises(gn.GraphError, match=r"\.svg, \.png, \.dot, \.gv"):
        gn.draw(loss, tmp_path / "loss.pdf")


def test_notebooks_show_programs_and_graphs_as_pictures():
    g, x, y, loss, train_op, unused = small_cnn()
    for target in (g, gn.compile(loss)):
        svg = target._repr_svg_()
        assert svg.lstrip().startswith("<?xml") and "<svg" in svg
    assert gn.draw(loss)._repr_svg_() == gn.draw(loss).svg


def test_without_a_renderer_the_error_says_what_to_install(monkeypatch, tmp_path):
    g, x, y, loss, train_op, unused = small_cnn()
    monkeypatch.setattr(drawing, "find_dot", lambda: None)
    with pytest.raises(gn.GraphnetError, match=r"pip install 'graphnet\[viz\]'"):
        gn.draw(loss)
    assert g._repr_svg_() is None                  # a notebook falls back to the text
    gn.draw(loss, tmp_path / "loss.dot")           # DOT text needs no renderer
    monkeypatch.setitem(sys.modules, "graphviz", None)
    with pytest.raises(gn.GraphnetError, match=r"graphviz Python package .*pip install 'graphnet\[viz\]'"):
        gn.draw(loss)


def test_the_graphviz_package_keeps_its_own_dot_setting():
    from graphviz.backend import dot_command
    before = dot_command.DOT_BINARY
    g, *_ = small_cnn()
    gn.draw(g)
    assert dot_command.DOT_BINARY == before


def test_what_cannot_be_drawn_is_named():
    with pytest.raises(gn.GraphError, match="cannot draw int 42; pass a Graph, a tensor"):
        gn.draw(42)
    with pytest.raises(gn.GraphError, match="cannot draw list"):
        gn.draw([])


def test_phases_leave_out_the_optimizers_update():
    g, x, y, loss, train_op, unused = small_cnn()
    program = gn.compile([loss, train_op])
    drawn = set(svg_nodes(gn.draw(program, phases=("forward", "backward")).svg))
    ops = [n for n in program.nodes if n.op.name not in ("placeholder", "variable", "constant")]
    assert {f"n{n.id}" for n in ops if n.phase != "update"} <= drawn
    assert not {f"n{n.id}" for n in ops if n.phase == "update"} & drawn            # no sgd/... step
    variables = {n.name: f"n{n.id}" for n in program.nodes if n.op.name == "variable"}
    assert variables["w"] in drawn and variables["sgd/learning_rate"] not in drawn   # read only by the update
