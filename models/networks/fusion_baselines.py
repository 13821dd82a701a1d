"""The fusion front-ends of the paper's baselines (section 4.2.1, Table 4), built from the same
parts as DCA-Net so that only the fusion idea differs.

- ``ConcatFusion``: simple concatenation (early fusion) of the six crop channels, one CNN stem.
  Used by "Retinex + simple concatenation + GCN" and by the Table 4 baseline.
- ``AttentionFusion``: the same single CNN over the concatenated channels followed by
  conventional attention: squeeze-and-excitation channel attention (Hu et al., CVPR 2018)
  and a CBAM-style spatial attention map (Woo et al., ECCV 2018). "CNN + conventional
  attention + GCN".
- ``MultiModalCNNFusion``: one stem per modality, feature maps concatenated and mixed by a
  1x1 conv, no alignment and no gating. "Multi-modal CNN + ST-GCN".

All return ``FusionFeatures``; the concatenating ones have no per-modality features, so the
fusion losses (eqs. 14-15) are zero for them.
"""

from __future__ import annotations

import torch
from torch import nn

from models.data.channels import COLOUR, DEPTH, NUM_CHANNELS, THERMAL, THERMAL_EQUALISED
from models.networks.dcanet import FusionFeatures, ModalityStem
from models.networks.ops import conv_bn_relu


class ConcatFusion(nn.Module):
    def __init__(self, channels: int = 16, stem_mid: int = 8) -> None:
        super().__init__()
        self.out_channels = channels
        # the stem sees all six channels at once, so it gets the width of the three DCA-Net stems
        self.stem = ModalityStem(NUM_CHANNELS, channels, 3 * stem_mid)

    def forward(self, crops: torch.Tensor) -> FusionFeatures:
        return FusionFeatures(fused=self.stem(crops))


class AttentionFusion(nn.Module):
    def __init__(self, channels: int = 16, stem_mid: int = 8, reduction: int = 4) -> None:
        super().__init__()
        self.out_channels = channels
        self.stem = ModalityStem(NUM_CHANNELS, channels, 3 * stem_mid)
        hidden = max(4, channels // reduction)
        self.channel_attention = nn.Sequential(
            nn.Linear(channels, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, channels)
        )
        self.spatial_attention = nn.Conv2d(2, 1, 7, padding=3)

    def forward(self, crops: torch.Tensor) -> FusionFeatures:
        x = self.stem(crops)
        x = x * torch.sigmoid(self.channel_attention(x.mean(dim=(2, 3))))[:, :, None, None]
        pooled = torch.cat([x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], dim=1)
        return FusionFeatures(fused=x * torch.sigmoid(self.spatial_attention(pooled)))


class MultiModalCNNFusion(nn.Module):
    def __init__(self, channels: int = 16, stem_mid: int = 8) -> None:
        super().__init__()
        self.out_channels = channels
        self.rgb_stem = ModalityStem(3, channels, stem_mid)
        self.depth_stem = ModalityStem(1, channels, stem_mid)
        self.thermal_stem = ModalityStem(2, channels, stem_mid)
        self.mix = conv_bn_relu(3 * channels, channels, 1)

    def forward(self, crops: torch.Tensor) -> FusionFeatures:
        rgb = self.rgb_stem(crops[:, COLOUR])
        depth = self.depth_stem(crops[:, DEPTH : DEPTH + 1])
        thermal = self.thermal_stem(crops[:, THERMAL : THERMAL_EQUALISED + 1])
        return FusionFeatures(
            fused=self.mix(torch.cat([rgb, depth, thermal], dim=1)), rgb=rgb, depth=depth, thermal=thermal
        )
