"""The quality predictor's gate, report, model cards and the run that ties them together:
corpus -> LOSO per codec -> gate -> retrain of passing codecs -> ONNX with parity -> cards."""
