"""DCA-Net (section 3.3): deformable-convolution alignment of depth and thermal features to the
RGB reference, parallel depth-RGB and thermal-RGB cross-attention, and gated fusion.

Input: student crops [N, 6, S, S] (models/data/crops.py channel order). Output: ``FusionFeatures``
with the fused map at stride 4 (eq. 5), the RGB and the aligned depth / thermal features that
the fusion losses read (eqs. 14-15), and the gate weights (alpha, beta, gamma).

Reading of eq. 4 used here. For each position (x, y) the similarity of the RGB query and the
modality key, q(x,y).k(x,y) / sqrt(d), is turned into a spatial attention map by a softmax
over positions; each of ``heads`` maps modulates its share of the RGB channels. "After L2
normalisation" is read as A / ||A||_2 over positions, rescaled by sqrt(H*W) so that a uniform
map leaves the RGB features unchanged (a peaked map amplifies where depth / thermal agree
with RGB and suppresses the rest). Queries and keys are 1x1 projections (d = key_dim).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from models.data.channels import COLOUR, DEPTH, THERMAL, THERMAL_EQUALISED
from models.networks.ops import ModulatedDeformConv2d, conv_bn_relu, fold_norm_into


@dataclass
class FusionFeatures:
    """What a fusion network hands to the keypoint network and to the fusion losses."""

    fused: torch.Tensor  # [N, C, S/4, S/4]
    rgb: torch.Tensor | None = None  # reference features F_RGB
    depth: torch.Tensor | None = None  # depth features aligned to RGB
    thermal: torch.Tensor | None = None  # thermal features aligned to RGB
    gates: torch.Tensor | None = None  # [N, 3]: alpha, beta, gamma (eq. 5)
    attention_depth: torch.Tensor | None = None  # [N, heads, S/4, S/4] (eq. 4)
    attention_thermal: torch.Tensor | None = None


class ModalityStem(nn.Module):
    """Stride-4 CNN stem of one modality: two strided 3x3 convs, then a depthwise-separable 3x3."""

    def __init__(self, in_channels: int, channels: int, mid_channels: int | None = None) -> None:
        super().__init__()
        mid = mid_channels or max(8, channels // 2)
        self.layers = nn.Sequential(
            conv_bn_relu(in_channels, mid, 3, stride=2),
            conv_bn_relu(mid, channels, 3, stride=2),
            conv_bn_relu(channels, channels, 3, groups=channels),
            conv_bn_relu(channels, channels, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class DeformableAlignment(nn.Module):
    """Aligns a source feature map to the RGB reference (eq. 3).

    Offsets dp and modulation masks m come from W_offset applied to concat(F_ref, F_src)
    (a depthwise 3x3 then a pointwise conv, zero-initialised so training starts from a
    plain 3x3 convolution: offsets 0, masks 2*sigmoid(0) = 1). With ``deformable=False``
    (Table 6, "without deformable convolution") the same place holds a plain 3x3 conv.
    """

    def __init__(self, channels: int, kernel_size: int = 3, deformable: bool = True) -> None:
        super().__init__()
        self.deformable = deformable
        k = kernel_size * kernel_size
        if deformable:
            offsets = nn.Conv2d(2 * channels, 3 * k, 1)
            nn.init.zeros_(offsets.weight)
            nn.init.zeros_(offsets.bias)  # type: ignore[arg-type]  # Conv2d built with bias=True
            self.offset_net = nn.Sequential(
                nn.Conv2d(2 * channels, 2 * channels, 3, padding=1, groups=2 * channels, bias=False), offsets
            )
            self.conv: nn.Module = ModulatedDeformConv2d(channels, channels, kernel_size)
        else:
            self.conv = nn.Conv2d(channels, channels, kernel_size, padding=kernel_size // 2, bias=False)
        self.norm: nn.Module = nn.BatchNorm2d(channels)  # an Identity once folded for serving
        self.kernel_points = k

    def fold_norm(self) -> None:
        """Inference only (eval mode): the batch norm folded into the (deformable or plain)
        convolution before it, whose output is linear in its weights. ``ops.fold_batchnorm``
        calls it."""
        if fold_norm_into(self.conv, self.norm):
            self.norm = nn.Identity()

    def forward(self, reference: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
        if self.deformable:
            # eq. 3: dp = W_offset . F_cat(F_ref, F_src)
            params = self.offset_net(torch.cat([reference, source], dim=1))
            offset = params[:, : 2 * self.kernel_points]
            mask = 2.0 * torch.sigmoid(params[:, 2 * self.kernel_points :])
            aligned = self.conv(source, offset, mask)
        else:
            aligned = self.conv(source)
        return F.relu(self.norm(aligned))


class CrossModalAttention(nn.Module):
    """One branch of the parallel cross-attention (eq. 4): modality k modulates F_RGB."""

    def __init__(self, channels: int, key_dim: int = 16, heads: int = 2) -> None:
        super().__init__()
        if channels % heads:
            raise ValueError(f"channels ({channels}) must be divisible by heads ({heads})")
        self.heads, self.key_dim = heads, key_dim
        self.query = nn.Conv2d(channels, heads * key_dim, 1)
        self.key = nn.Conv2d(channels, heads * key_dim, 1)

    def forward(self, rgb: torch.Tensor, modality: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        n, c, h, w = rgb.shape
        q = self.query(rgb).view(n, self.heads, self.key_dim, h * w)
        k = self.key(modality).view(n, self.heads, self.key_dim, h * w)
        # eq. 4: A_k(x,y) = softmax over positions of F_RGB(x,y) . F_k(x,y)^T / sqrt(d)
        attention = torch.softmax((q * k).sum(dim=2) / math.sqrt(self.key_dim), dim=-1)  # [N, heads, HW]
        # L2 normalisation, scaled so that a uniform map is the identity modulation
        modulation = attention / attention.norm(dim=-1, keepdim=True).clamp_min(1e-12) * math.sqrt(h * w)
        modulated = rgb.view(n, self.heads, c // self.heads, h * w) * modulation.unsqueeze(2)
        return modulated.view(n, c, h, w), attention.view(n, self.heads, h, w)


class GatedFusion(nn.Module):
    """eq. 5: F = alpha F_RGB + beta F_D-mod + gamma F_T-mod, gates from the pooled features.

    Gate logits come from global-average-pooled concat of the three maps, pass a sigmoid and
    are divided by their sum so alpha + beta + gamma = 1 per crop.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.gate = nn.Linear(3 * channels, 3)
        nn.init.zeros_(self.gate.weight)
        nn.init.zeros_(self.gate.bias)

    def forward(
        self, rgb: torch.Tensor, depth_mod: torch.Tensor, thermal_mod: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        pooled = torch.cat(
            [rgb.mean(dim=(2, 3)), depth_mod.mean(dim=(2, 3)), thermal_mod.mean(dim=(2, 3))], dim=1
        )
        s = torch.sigmoid(self.gate(pooled))
        gates = s / s.sum(dim=1, keepdim=True)
        g = gates.view(-1, 3, 1, 1, 1)
        fused = g[:, 0] * rgb + g[:, 1] * depth_mod + g[:, 2] * thermal_mod
        return fused, gates


class DCANet(nn.Module):
    """Per-modality stems -> deformable alignment to RGB -> parallel cross-attention -> gated fusion."""

    def __init__(
        self,
        channels: int = 16,
        key_dim: int = 16,
        heads: int = 2,
        deformable: bool = True,
        stem_mid: int = 8,
    ) -> None:
        super().__init__()
        self.out_channels = channels
        self.rgb_stem = ModalityStem(3, channels, stem_mid)
        self.depth_stem = ModalityStem(1, channels, stem_mid)
        self.thermal_stem = ModalityStem(2, channels, stem_mid)
        self.align_depth = DeformableAlignment(channels, deformable=deformable)
        self.align_thermal = DeformableAlignment(channels, deformable=deformable)
        self.attend_depth = CrossModalAttention(channels, key_dim, heads)
        self.attend_thermal = CrossModalAttention(channels, key_dim, heads)
        self.gated_fusion = GatedFusion(channels)

    def forward(self, crops: torch.Tensor) -> FusionFeatures:
        rgb = self.rgb_stem(crops[:, COLOUR])
        depth = self.align_depth(rgb, self.depth_stem(crops[:, DEPTH : DEPTH + 1]))
        thermal = self.align_thermal(rgb, self.thermal_stem(crops[:, THERMAL : THERMAL_EQUALISED + 1]))
        depth_mod, attention_depth = self.attend_depth(rgb, depth)
        thermal_mod, attention_thermal = self.attend_thermal(rgb, thermal)
        fused, gates = self.gated_fusion(rgb, depth_mod, thermal_mod)
        return FusionFeatures(
            fused=fused,
            rgb=rgb,
            depth=depth,
            thermal=thermal,
            gates=gates,
            attention_depth=attention_depth,
            attention_thermal=attention_thermal,
        )
