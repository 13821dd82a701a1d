"""What the model server loads: the inference engine over a checkpoint, and the export of its
recognition network to ONNX / TorchScript."""
