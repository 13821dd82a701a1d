"""Recognition networks of the baselines: a standard ST-GCN and a plain (per-frame) GCN.

- ``STGCN`` (Yan et al., AAAI 2018): graph convolution on the fixed skeleton, one temporal
  convolution (kernel 9, dilation 1) per block, global average pooling. "Multi-modal CNN +
  ST-GCN" and the Table 4 rows before MST-GCN use it.
- ``GCN`` (Kipf and Welling, ICLR 2017, on the skeleton): per-frame graph convolution with no
  temporal modelling, averaged over frames and keypoints. The two oldest baselines use it.

Same inputs and outputs as MST-GCN so the model server and evaluation treat them alike.
They have no attention: the keypoint and frame "attention" they return is uniform (1/17,
1/T), which says "no preference", and ``has_attention`` is False.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from models.networks.mstgcn import NodeEmbedding, skeleton_adjacency
from services.common.vocabulary import NUM_BEHAVIOURS


class SkeletonGraphConv(nn.Module):
    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.register_buffer("skeleton", skeleton_adjacency(), persistent=False)
        self.linear = nn.Linear(in_channels, out_channels, bias=False)
        self.norm = nn.BatchNorm2d(out_channels)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        """[B, D, T, N] -> [B, D', T, N]"""
        y = self.skeleton.to(h.dtype) @ self.linear(h.permute(0, 2, 3, 1))
        return self.norm(y.permute(0, 3, 1, 2))


class STGCNBlock(nn.Module):
    def __init__(
        self, in_channels: int, out_channels: int, temporal_kernel: int = 9, temporal: bool = True
    ) -> None:
        super().__init__()
        self.spatial = SkeletonGraphConv(in_channels, out_channels)
        self.temporal = (
            nn.Sequential(
                nn.Conv2d(
                    out_channels, out_channels, (temporal_kernel, 1), padding=(temporal_kernel // 2, 0)
                ),
                nn.BatchNorm2d(out_channels),
            )
            if temporal
            else None
        )
        self.residual: nn.Module = (
            nn.Identity()
            if in_channels == out_channels
            else nn.Sequential(nn.Conv2d(in_channels, out_channels, 1), nn.BatchNorm2d(out_channels))
        )

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.spatial(h))
        if self.temporal is not None:
            y = self.temporal(y)
        return F.relu(y + self.residual(h))


class STGCN(nn.Module):
    has_attention = False

    def __init__(
        self,
        feature_dim: int = 32,
        channels: tuple[int, ...] = (32, 32, 48),
        temporal_kernel: int = 9,
        temporal: bool = True,
        num_classes: int = NUM_BEHAVIOURS,
        dropout: float = 0.2,
    ) -> None:
        super().__init__()
        self.feature_dim = feature_dim
        self.embedding = NodeEmbedding(feature_dim, channels[0])
        widths = (channels[0], *channels)
        self.blocks = nn.ModuleList(
            STGCNBlock(widths[i], widths[i + 1], temporal_kernel, temporal) for i in range(len(channels))
        )
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(channels[-1], num_classes)

    def forward_features(self, keypoints: torch.Tensor, node_features: torch.Tensor) -> torch.Tensor:
        h = self.embedding(keypoints, node_features)
        for block in self.blocks:
            h = block(h)
        return h.mean(dim=(2, 3))

    def forward_head(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.dropout(pooled))

    def forward(
        self, keypoints: torch.Tensor, node_features: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        b, t, n = keypoints.shape[:3]
        logits = self.forward_head(self.forward_features(keypoints, node_features))
        uniform_nodes = torch.full((b, n), 1.0 / n, dtype=logits.dtype, device=logits.device)
        uniform_frames = torch.full((b, t), 1.0 / t, dtype=logits.dtype, device=logits.device)
        return logits, uniform_nodes, uniform_frames


class GCN(STGCN):
    """Per-frame skeleton GCN: ST-GCN's blocks without their temporal convolutions."""

    def __init__(
        self,
        feature_dim: int = 32,
        channels: tuple[int, ...] = (32, 32, 48),
        num_classes: int = NUM_BEHAVIOURS,
        dropout: float = 0.2,
    ) -> None:
        super().__init__(feature_dim, channels, temporal=False, num_classes=num_classes, dropout=dropout)
