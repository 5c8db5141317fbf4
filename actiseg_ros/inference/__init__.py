"""Runtime inference: pre/post-processing and engines (ONNX Runtime, TensorRT). No torch."""
