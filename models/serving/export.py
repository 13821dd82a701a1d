"""The recognition network (MST-GCN or a baseline) to ONNX or TorchScript: what
``classroom export`` (models/tools/export.py) runs.

The exported graph takes keypoints float32 [B, T, 17, 3] and node_features float32
[B, T, 17, C] (B dynamic, T fixed by the checkpoint) and returns probabilities [B, 10],
keypoint_attention [B, 17] and frame_attention [B, T], the same as
``InferenceEngine.recognise``. ONNX uses the TorchScript-based exporter
(``dynamo=False``), opset 17.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from services.common.vocabulary import NUM_KEYPOINTS


class RecognitionGraph(nn.Module):
    """The recognition half of a pipeline with the softmax the server applies."""

    def __init__(self, recognition: nn.Module) -> None:
        super().__init__()
        self.recognition = recognition

    def forward(self, keypoints: torch.Tensor, node_features: torch.Tensor):
        logits, keypoint_attention, frame_attention = self.recognition(keypoints, node_features)
        return torch.softmax(logits, dim=-1), keypoint_attention, frame_attention


def _recognition_module(pipeline):
    return RecognitionGraph(pipeline.recognition).eval()


def example_inputs(batch: int, window_frames: int, feature_dim: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    keypoints = torch.rand(batch, window_frames, NUM_KEYPOINTS, 3, generator=g)
    features = torch.randn(batch, window_frames, NUM_KEYPOINTS, feature_dim, generator=g)
    return keypoints, features


def export_onnx(pipeline, path: str | Path, window_frames: int, opset: int = 17) -> Path:
    module = _recognition_module(pipeline)
    inputs = example_inputs(2, window_frames, pipeline.feature_dim)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.onnx.export(
        module,
        inputs,
        str(path),
        input_names=["keypoints", "node_features"],
        output_names=["probabilities", "keypoint_attention", "frame_attention"],
        dynamic_axes={
            name: {0: "batch"}
            for name in (
                "keypoints",
                "node_features",
                "probabilities",
                "keypoint_attention",
                "frame_attention",
            )
        },
        opset_version=opset,
        dynamo=False,
    )
    return path


def export_torchscript(pipeline, path: str | Path, window_frames: int) -> Path:
    module = _recognition_module(pipeline)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with torch.inference_mode():
        traced = torch.jit.trace(module, example_inputs(2, window_frames, pipeline.feature_dim))
    traced.save(str(path))
    return path
