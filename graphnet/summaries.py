"""What TensorBoard is shown of a graphnet model: its graph as a GraphDef, and convolution filters as an image.

TensorBoard's Graphs tab reads TensorFlow's GraphDef: a list of NodeDefs, each with a name (whose '/' make the
groups you open and close: train/conv1/...), an op, the names of its inputs and attributes. A graphnet node maps
onto one directly; its output shape goes in `_output_shapes` (which TensorBoard writes on the edges), and the line
that created it in `site`. tensorboardX ships the protocol buffers.
"""
import math

import numpy as np

DATA_TYPES = {"float32": "DT_FLOAT", "float64": "DT_DOUBLE", "int64": "DT_INT64", "int32": "DT_INT32",
              "int16": "DT_INT16", "int8": "DT_INT8", "uint8": "DT_UINT8", "uint16": "DT_UINT16",
              "bool": "DT_BOOL"}


def graph_def(nodes):
    """A tensorboardX GraphDef of graphnet nodes (those of a program: program.nodes)."""
    from tensorboardX.proto.attr_value_pb2 import AttrValue
    from tensorboardX.proto.graph_pb2 import GraphDef
    from tensorboardX.proto.node_def_pb2 import NodeDef
    from tensorboardX.proto.tensor_shape_pb2 import TensorShapeProto
    from tensorboardX.proto.types_pb2 import DataType
    from tensorboardX.proto.versions_pb2 import VersionDef

    def shape(node):
        dims = [TensorShapeProto.Dim(size=-1 if d is None else d) for d in node.shape]
        return AttrValue(list=AttrValue.ListValue(shape=[TensorShapeProto(dim=dims)]))

    defs = []
    for node in sorted(nodes, key=lambda n: n.id):
        attrs = {"_output_shapes": shape(node),
                 "dtype": AttrValue(type=DataType.Value(DATA_TYPES.get(str(node.dtype), "DT_INVALID"))),
                 "site": AttrValue(s=node.site.encode()),
                 "phase": AttrValue(s=node.phase.encode())}
        described = node.op.describe(node.attrs)
        if described:
            attrs["attributes"] = AttrValue(s=described.encode())
        defs.append(NodeDef(name=node.name, op=node.op.name, input=[i.name for i in node.inputs], attr=attrs))
    return GraphDef(node=defs, versions=VersionDef(producer=22))


def filter_grid(weight, tile=32, gap=1):
    """The filters of a convolution weight (K, C, R, S) as one (H, W, 3) image in [0, 1]: one tile per filter
    (in colour when C is 3), else a row of C grey tiles per filter. One scale for all, so strengths compare
    (0.5 grey is 0); each tile is enlarged to about `tile` pixels."""
    weight = np.asarray(weight, dtype=np.float64)
    k, c, r, s = weight.shape
    limit = np.abs(weight).max() or 1.0
    scaled = 0.5 + 0.5 * weight / limit
    if c == 3:
        tiles = scaled.transpose(0, 2, 3, 1)                                 # (K, R, S, RGB)
    else:
        tiles = np.repeat(scaled.reshape(k * c, r, s, 1), 3, axis=3)         # (K·C, R, S, grey as RGB)
    columns = c if c not in (1, 3) else math.ceil(math.sqrt(k))
    zoom = max(1, tile // max(r, s))
    tiles = tiles.repeat(zoom, axis=1).repeat(zoom, axis=2)
    rows = math.ceil(len(tiles) / columns)
    height, width = tiles.shape[1] + gap, tiles.shape[2] + gap
    grid = np.ones((rows * height + gap, columns * width + gap, 3))
    for index, picture in enumerate(tiles):
        top, left = gap + (index // columns) * height, gap + (index % columns) * width
        grid[top:top + tiles.shape[1], left:left + tiles.shape[2]] = picture
    return grid
