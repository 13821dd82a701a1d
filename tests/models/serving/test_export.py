"""ONNX / TorchScript export of the recognition network: the exported graph gives the same numbers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from models.serving.export import example_inputs, export_onnx, export_torchscript
from models.serving.inference import InferenceEngine


@pytest.fixture(scope="module")
def engine() -> InferenceEngine:
    return InferenceEngine(None)


def test_onnx_matches_torch(engine, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    path = export_onnx(engine.pipeline, tmp_path / "recognition.onnx", engine.info.window_frames)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    # a batch size other than the one traced: the batch axis is dynamic
    keypoints, features = example_inputs(5, engine.info.window_frames, engine.info.feature_dim, seed=3)
    probabilities, kp_att, frame_att = session.run(
        None, {"keypoints": keypoints.numpy(), "node_features": features.numpy()}
    )
    reference = engine.recognise(keypoints.numpy(), features.numpy())
    np.testing.assert_allclose(probabilities, reference.probabilities, atol=1e-5)
    np.testing.assert_allclose(kp_att, reference.keypoint_attention, atol=1e-5)
    np.testing.assert_allclose(frame_att, reference.frame_attention, atol=1e-5)


def test_torchscript_matches_torch(engine, tmp_path):
    path = export_torchscript(engine.pipeline, tmp_path / "recognition.pt", engine.info.window_frames)
    module = torch.jit.load(str(path))
    keypoints, features = example_inputs(3, engine.info.window_frames, engine.info.feature_dim, seed=4)
    with torch.inference_mode():
        probabilities, _, _ = module(keypoints, features)
    reference = engine.recognise(keypoints.numpy(), features.numpy())
    np.testing.assert_allclose(probabilities.numpy(), reference.probabilities, atol=1e-5)
