"""The end-to-end model of section 3.5: enhancement -> fusion (DCA-Net or a baseline) ->
keypoints -> node encoding (eq. 6) -> recognition (MST-GCN or a baseline), trainable in one
backward pass with the multi-task loss (models/training/losses.py).

Two entry points, because serving splits the work between two gRPC services:
- ``forward_fusion(crops)``: per-crop work (the model server's FusionKeypoints service).
  When serving, frames arrive already enhanced by the NumPy enhancement service, so the
  torch enhancement runs only when ``enhance=True`` (training, on raw colour crops).
- ``forward_recognition(keypoints, node_features)``: per-window work (Recognition service).
``forward(crops [B, T, 6, S, S])`` chains both for training.

The enhancement module is a constructor argument: any ``nn.Module`` mapping colour crops
[N, 3, S, S] (BGR, 0..1) to enhanced ones of the same shape; models/networks/enhancement.py provides
the section 3.2 ones (learnable eq. 2 coefficients), ``IdentityEnhancement`` stands in for
"no learned enhancement".
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from models.data.channels import COLOUR, DEPTH, THERMAL, THERMAL_EQUALISED
from models.networks.dcanet import FusionFeatures
from models.networks.keypoints import KeypointNet, KeypointOutput
from models.networks.roi import NodeEncoder

MODALITIES: tuple[str, ...] = ("rgb", "depth", "thermal")
MODALITY_CHANNELS: dict[str, tuple[int, ...]] = {
    "rgb": tuple(range(COLOUR.start, COLOUR.stop)),
    "depth": (DEPTH,),
    "thermal": (THERMAL, THERMAL_EQUALISED),
}


class IdentityEnhancement(nn.Module):
    """No enhancement: the colour crop passes through (frames enhanced elsewhere, or tests)."""

    learnable = False

    def forward(self, colour: torch.Tensor) -> torch.Tensor:
        return colour


@dataclass
class FusionStageOutput:
    enhanced: torch.Tensor | None  # [N, 3, S, S] when the torch enhancement ran
    fusion: FusionFeatures
    keypoints: KeypointOutput
    node_features: torch.Tensor  # [N, 17, C]


@dataclass
class PipelineOutput:
    crop_size: int
    enhanced: torch.Tensor | None
    fusion: FusionFeatures
    keypoints: KeypointOutput
    node_features: torch.Tensor  # [B*T, 17, C]
    logits: torch.Tensor  # [B, classes]
    keypoint_attention: torch.Tensor  # [B, 17]
    frame_attention: torch.Tensor  # [B, T]


class ClassroomPipeline(nn.Module):
    def __init__(
        self,
        fusion: nn.Module,
        keypoints: KeypointNet,
        node_encoder: NodeEncoder,
        recognition: nn.Module,
        enhancement: nn.Module | None = None,
        crop_size: int = 96,
        modalities: tuple[str, ...] = MODALITIES,
    ) -> None:
        super().__init__()
        unknown = set(modalities) - set(MODALITIES)
        if unknown or "rgb" not in modalities:
            raise ValueError(f"modalities must include rgb and be among {MODALITIES}, got {modalities}")
        self.modalities = tuple(modalities)
        # crop channels of the modalities left out, zeroed before the networks see them (ablations)
        self.blind_channels = [c for m in MODALITIES if m not in modalities for c in MODALITY_CHANNELS[m]]
        self.enhancement = enhancement if enhancement is not None else IdentityEnhancement()
        self.fusion = fusion
        self.keypoint_net = keypoints
        self.node_encoder = node_encoder
        self.recognition = recognition
        self.crop_size = crop_size
        self.method = "custom"
        self.config: dict = {}

    @property
    def feature_dim(self) -> int:
        return self.node_encoder.feature_dim

    def forward_fusion(self, crops: torch.Tensor, enhance: bool = False) -> FusionStageOutput:
        """crops [N, 6, S, S] -> fused features, keypoints (crop px), node features.

        ``enhance=True`` (training on raw crops) runs the method's colour enhancement. Only a
        learnable one is returned as ``enhanced`` (for eqs. 11-13); a fixed baseline
        enhancement (Retinex, histogram equalisation) still transforms the crops, without
        gradient, because it is part of that method.
        """
        enhanced = None
        if self.blind_channels:
            crops = crops.clone()
            crops[:, self.blind_channels] = 0.0
        if enhance:
            if getattr(self.enhancement, "learnable", True):
                enhanced = colour = self.enhancement(crops[:, COLOUR])
            else:
                with torch.no_grad():
                    colour = self.enhancement(crops[:, COLOUR])
            crops = torch.cat([colour, crops[:, COLOUR.stop :]], dim=1)
        fusion = self.fusion(crops)
        keypoints = self.keypoint_net(fusion.fused, crops)
        node_features = self.node_encoder(fusion.fused, keypoints.xy, crops.shape[-1])
        return FusionStageOutput(
            enhanced=enhanced, fusion=fusion, keypoints=keypoints, node_features=node_features
        )

    def recognition_keypoints(self, keypoints: KeypointOutput, crop_size: int) -> torch.Tensor:
        """Keypoints as MST-GCN reads them: (x, y) / crop size (normalised to the seat square), confidence."""
        return torch.cat(
            [keypoints.xy.detach() / crop_size, keypoints.confidence.detach().unsqueeze(-1)], dim=-1
        )

    def forward_recognition(
        self, keypoints: torch.Tensor, node_features: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """[B, T, 17, 3], [B, T, 17, C] -> logits [B, classes], attention [B, 17] (points), [B, T] (time)."""
        return self.recognition(keypoints, node_features)

    def recognition_inputs(self, crops: torch.Tensor) -> tuple[FusionStageOutput, torch.Tensor, torch.Tensor]:
        """Raw crops [B, T, 6, S, S] -> (the per-crop stage, keypoints [B, T, 17, 3] and node
        features [B, T, 17, C] as the recogniser reads them)."""
        b, t = crops.shape[:2]
        stage = self.forward_fusion(crops.flatten(0, 1), enhance=True)
        kp = self.recognition_keypoints(stage.keypoints, crops.shape[-1])
        features = stage.node_features
        return stage, kp.view(b, t, *kp.shape[1:]), features.view(b, t, *features.shape[1:])

    def forward(self, crops: torch.Tensor) -> PipelineOutput:
        """Training path: raw crops [B, T, 6, S, S] of B windows -> everything the losses need."""
        stage, kp, features = self.recognition_inputs(crops)
        logits, keypoint_attention, frame_attention = self.forward_recognition(kp, features)
        return PipelineOutput(
            crop_size=crops.shape[-1],
            enhanced=stage.enhanced,
            fusion=stage.fusion,
            keypoints=stage.keypoints,
            node_features=stage.node_features,
            logits=logits,
            keypoint_attention=keypoint_attention,
            frame_attention=frame_attention,
        )
