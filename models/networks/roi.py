"""Node encoding (eq. 6): f_i = RoIAlign(F_fusion; p_i) . W_enc + b_enc, with a deformable
RoIAlign written in plain torch.

Each keypoint p_i gets a ``grid`` x ``grid`` RoI centred on it, ``spacing`` crop pixels
between bins (one stride-4 feature cell by default), one bilinear sample per bin (RoIAlign
with sampling ratio 1, He et al. 2017). Deformable RoIAlign (Dai et al. 2017) adds a learned
offset per bin: predicted from the feature at the keypoint by a linear layer plus a learned
per-keypoint bias, zero-initialised so it starts as plain RoIAlign. The C x grid^2 samples
are flattened and encoded by one linear layer (W_enc, b_enc) into ``feature_dim`` values.

Keypoint positions are detached before sampling by default: the keypoint loss decides
where the points are, the recognition loss trains what is read there (otherwise the
classifier would pull points to wherever helps it, away from the body).
"""

from __future__ import annotations

import torch
from torch import nn

from models.networks.ops import sample_points
from services.common.vocabulary import NUM_KEYPOINTS


class NodeEncoder(nn.Module):
    bin_offsets: torch.Tensor

    def __init__(
        self,
        in_channels: int = 16,
        feature_dim: int = 32,
        grid: int = 3,
        spacing: float = 4.0,
        deformable: bool = True,
        detach_keypoints: bool = True,
    ) -> None:
        super().__init__()
        self.grid, self.spacing, self.deformable = grid, spacing, deformable
        self.detach_keypoints = detach_keypoints
        self.feature_dim = feature_dim
        bins = grid * grid
        r = (grid - 1) / 2.0
        dy, dx = torch.meshgrid(torch.linspace(-r, r, grid), torch.linspace(-r, r, grid), indexing="ij")
        self.register_buffer(
            "bin_offsets", torch.stack([dx.flatten(), dy.flatten()], -1) * spacing, persistent=False
        )
        if deformable:
            self.offset = nn.Linear(in_channels, 2 * bins)
            nn.init.zeros_(self.offset.weight)
            nn.init.zeros_(self.offset.bias)
            self.offset_bias = nn.Parameter(torch.zeros(NUM_KEYPOINTS, 2 * bins))
        self.encode = nn.Linear(in_channels * bins, feature_dim)  # eq. 6: W_enc, b_enc

    def forward(self, fused: torch.Tensor, keypoints_xy: torch.Tensor, crop_size: int) -> torch.Tensor:
        """fused [N, C, h, w]; keypoints_xy [N, K, 2] crop px -> node features [N, K, feature_dim]."""
        n, c = fused.shape[:2]
        k = keypoints_xy.shape[1]
        bins = self.bin_offsets.shape[0]
        centres = keypoints_xy.detach() if self.detach_keypoints else keypoints_xy
        points = centres.unsqueeze(2) + self.bin_offsets.to(fused.dtype)  # [N, K, bins, 2]
        if self.deformable:
            centre_features = sample_points(fused, centres, float(crop_size)).transpose(1, 2)  # [N, K, C]
            # offsets in units of the bin spacing, like the normalised offsets of deformable RoI pooling
            delta = (self.offset(centre_features) + self.offset_bias[:k]).view(n, k, bins, 2) * self.spacing
            points = points + delta
        samples = sample_points(fused, points.reshape(n, k * bins, 2), float(crop_size))  # [N, C, K*bins]
        samples = samples.view(n, c, k, bins).permute(0, 2, 1, 3).reshape(n, k, c * bins)
        return self.encode(samples)
