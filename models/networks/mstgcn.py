"""MST-GCN (section 3.4): the recognition network over a window of per-student keypoint graphs.

Input per window: keypoints [B, T, 17, 3] (x, y normalised to the seat square, 0..1;
confidence) and node features [B, T, 17, C] (eq. 6). Output: behaviour logits [B, 10], the
keypoint attention [B, 17] and the frame attention [B, T] of eq. 9 (each sums to 1).

Per block:
- Dynamic spatial graph (eq. 7): w_ij = alpha exp(-|p_i - p_j|^2 / sigma^2)
  + (1 - alpha) cos(f_i, f_j), per frame, from the keypoint positions and the block's input
  node features; alpha = sigmoid(a) and sigma = exp(s) are learned (init 0.5 and 0.25 of
  the seat square). "Adjusted through an attention mechanism": the edge weights bias a
  dot-product attention over neighbours, A_ij = softmax_j(q_i . k_j / sqrt(d) + kappa w_ij),
  kappa learned (init 4), so eq. 7 is the prior that attention refines.
- Spatial graph convolution over two graphs: the fixed skeleton (vocabulary.SKELETON_EDGES,
  symmetric-normalised with self loops) and the dynamic one, each with its own weights.
- Temporal edges join the same keypoint in neighbouring frames: parallel 1-D temporal
  convolutions with dilations 1, 2, 4 (kernel 3) over each node's sequence, summed, then
  ReLU, then BN (eq. 8, in the paper's order), plus a residual.
- Spatio-temporal attention (eq. 9): F_att = softmax(W_att . F_ST) . F_ST with the softmax
  over all T x 17 (frame, keypoint) positions; its marginals are the returned attention.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from services.common.vocabulary import NUM_BEHAVIOURS, NUM_KEYPOINTS, SKELETON_EDGES


def skeleton_adjacency(num_nodes: int = NUM_KEYPOINTS) -> torch.Tensor:
    """D^-1/2 (A + I) D^-1/2 of the physical skeleton graph."""
    a = torch.eye(num_nodes)
    for i, j in SKELETON_EDGES:
        a[i, j] = a[j, i] = 1.0
    d = a.sum(dim=1).rsqrt()
    return d[:, None] * a * d[None, :]


def spatial_edge_weights(
    positions: torch.Tensor, features: torch.Tensor, alpha: torch.Tensor | float, sigma: torch.Tensor | float
) -> torch.Tensor:
    """eq. 7: spatial edge weight w_ij for every node pair; [..., N, 2], [..., N, D] -> [..., N, N]."""
    distance2 = (positions.unsqueeze(-2) - positions.unsqueeze(-3)).pow(2).sum(dim=-1)
    unit = features / features.norm(dim=-1, keepdim=True).clamp_min(1e-6)
    cosine = unit @ unit.transpose(-1, -2)
    return alpha * torch.exp(-distance2 / sigma**2) + (1.0 - alpha) * cosine


class NodeEmbedding(nn.Module):
    """(x, y, confidence, f_i) of every node -> D channels, plus a learned embedding of which keypoint."""

    def __init__(self, feature_dim: int, channels: int) -> None:
        super().__init__()
        self.linear = nn.Linear(3 + feature_dim, channels)
        self.joint = nn.Parameter(torch.zeros(NUM_KEYPOINTS, channels))
        nn.init.normal_(self.joint, std=0.02)
        self.norm = nn.BatchNorm2d(channels)

    def forward(self, keypoints: torch.Tensor, node_features: torch.Tensor) -> torch.Tensor:
        """-> [B, D, T, N]"""
        centred = torch.cat([keypoints[..., :2] * 2.0 - 1.0, keypoints[..., 2:3]], dim=-1)
        x = self.linear(torch.cat([centred, node_features], dim=-1)) + self.joint
        return self.norm(x.permute(0, 3, 1, 2))


class DynamicSpatialGraph(nn.Module):
    def __init__(
        self, channels: int, attention_dim: int = 16, alpha: float = 0.5, sigma: float = 0.25
    ) -> None:
        super().__init__()
        self.alpha_logit = nn.Parameter(torch.tensor(math.log(alpha / (1.0 - alpha))))
        self.log_sigma = nn.Parameter(torch.tensor(math.log(sigma)))
        self.kappa = nn.Parameter(torch.tensor(4.0))
        self.query = nn.Linear(channels, attention_dim)
        self.key = nn.Linear(channels, attention_dim)
        self.scale = 1.0 / math.sqrt(attention_dim)

    def forward(self, positions: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """positions [B, T, N, 2], x [B, T, N, D] -> row-stochastic adjacency [B, T, N, N]."""
        w = spatial_edge_weights(positions, x, torch.sigmoid(self.alpha_logit), self.log_sigma.exp())
        logits = (self.query(x) @ self.key(x).transpose(-1, -2)) * self.scale + self.kappa * w
        return torch.softmax(logits, dim=-1)


class MultiDilationTemporalConv(nn.Module):
    """eq. 8: F_ST = BN(ReLU(F_1 + F_2 + F_4)), one kernel-3 temporal conv per dilation."""

    def __init__(self, channels: int, dilations: tuple[int, ...] = (1, 2, 4), kernel_size: int = 3) -> None:
        super().__init__()
        self.branches = nn.ModuleList(
            nn.Conv2d(
                channels, channels, (kernel_size, 1), padding=(d * (kernel_size - 1) // 2, 0), dilation=(d, 1)
            )
            for d in dilations
        )
        self.norm = nn.BatchNorm2d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        total = self.branches[0](x)
        for branch in self.branches[1:]:
            total = total + branch(x)
        return self.norm(F.relu(total))


class MSTGCNBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, dilations: tuple[int, ...] = (1, 2, 4)) -> None:
        super().__init__()
        self.register_buffer("skeleton", skeleton_adjacency(), persistent=False)
        self.graph = DynamicSpatialGraph(in_channels)
        self.w_skeleton = nn.Linear(in_channels, out_channels, bias=False)
        self.w_dynamic = nn.Linear(in_channels, out_channels, bias=False)
        self.spatial_norm = nn.BatchNorm2d(out_channels)
        self.temporal = MultiDilationTemporalConv(out_channels, dilations)
        self.residual: nn.Module = (
            nn.Identity()
            if in_channels == out_channels
            else nn.Sequential(nn.Conv2d(in_channels, out_channels, 1), nn.BatchNorm2d(out_channels))
        )

    def forward(self, h: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """h [B, D, T, N], positions [B, T, N, 2] -> [B, D', T, N]"""
        x = h.permute(0, 2, 3, 1)  # [B, T, N, D]
        adjacency = self.graph(positions, x)
        y = self.skeleton.to(x.dtype) @ self.w_skeleton(x) + adjacency @ self.w_dynamic(x)
        y = F.relu(self.spatial_norm(y.permute(0, 3, 1, 2)))
        return F.relu(self.temporal(y) + self.residual(h))


class SpatioTemporalAttention(nn.Module):
    """eq. 9: F_att = softmax(W_att . F_ST) . F_ST over all (frame, keypoint) positions."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.score = nn.Conv2d(channels, 1, 1)  # W_att

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x [B, D, T, N] -> pooled [B, D], weights [B, T, N]"""
        b, d, t, n = x.shape
        weights = torch.softmax(self.score(x).view(b, t * n), dim=-1)
        pooled = (x.view(b, d, t * n) * weights.unsqueeze(1)).sum(dim=-1)
        return pooled, weights.view(b, t, n)


class MSTGCN(nn.Module):
    has_attention = True

    def __init__(
        self,
        feature_dim: int = 32,
        channels: tuple[int, ...] = (32, 32, 48),
        dilations: tuple[int, ...] = (1, 2, 4),
        num_classes: int = NUM_BEHAVIOURS,
        dropout: float = 0.2,
    ) -> None:
        super().__init__()
        self.feature_dim = feature_dim
        self.embedding = NodeEmbedding(feature_dim, channels[0])
        widths = (channels[0], *channels)
        self.blocks = nn.ModuleList(
            MSTGCNBlock(widths[i], widths[i + 1], tuple(dilations)) for i in range(len(channels))
        )
        self.attention = SpatioTemporalAttention(channels[-1])
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(channels[-1], num_classes)

    def forward_features(
        self, keypoints: torch.Tensor, node_features: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        positions = keypoints[..., :2]
        h = self.embedding(keypoints, node_features)
        for block in self.blocks:
            h = block(h, positions)
        return self.attention(h)

    def forward_head(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.dropout(pooled))

    def forward(
        self, keypoints: torch.Tensor, node_features: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """-> logits [B, classes], keypoint attention [B, N], frame attention [B, T]"""
        pooled, weights = self.forward_features(keypoints, node_features)
        return self.forward_head(pooled), weights.sum(dim=1), weights.sum(dim=2)
