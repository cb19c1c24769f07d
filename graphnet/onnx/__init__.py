"""graphnet and ONNX: export an inference graph to an .onnx file that onnxruntime (or any ONNX runtime) runs.

    import graphnet.onnx
    graphnet.onnx.export("lenet5.onnx", inputs=[x], outputs=[logits])     # any inference graph
    model.export_onnx("lenet5.onnx")                                     # a graphnet.nn model

Needs the `onnx` package (`pip install 'graphnet[onnx]'`); onnxruntime only to run the file. The mapping from
graphnet's ops to ONNX's is in exporter.py.
"""
from .exporter import OPSET, WRITERS, export

__all__ = ["OPSET", "WRITERS", "export"]
