"""Inference engines behind one interface (base.py): ONNX Runtime (CPU, CUDA, TensorRT EP) and native
TensorRT. Heavy or optional libraries (onnxruntime providers, tensorrt, cuda-python) are imported only by
the backend that needs them; select.py picks one."""
