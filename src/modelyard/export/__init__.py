"""Export a trained model to the formats devices run (ONNX, TFLite, CoreML), each checked in
its own runtime against the PyTorch model it came from (``parity``) before it ships."""
