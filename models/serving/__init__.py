"""What the model server loads: the inference engine over a checkpoint, and its export to ONNX / TorchScript."""
