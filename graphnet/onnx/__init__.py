"""graphnet and ONNX: export an inference graph to an .onnx file, and build a graphnet graph from one.

    import graphnet.onnx
    graphnet.onnx.export("lenet5.onnx", inputs=[x], outputs=[logits])     # any inference graph
    model.export_onnx("lenet5.onnx")                                     # a graphnet.nn model
    loaded = graphnet.onnx.load("lenet5.onnx")                           # .graph .inputs .outputs .variables

Needs the `onnx` package (`pip install 'graphnet[onnx]'`); onnxruntime only to run a file. The mappings between
graphnet's ops and ONNX's are in exporter.py (WRITERS, by op class) and importer.py (READERS, by ONNX op type).
"""
from .exporter import OPSET, WRITERS, export
from .importer import READERS, Loaded, Unsupported, load

__all__ = ["OPSET", "READERS", "WRITERS", "Loaded", "Unsupported", "export", "load"]
