"""Keypoint stage of section 3.4: a lightweight high-resolution network on the fused map,
depth-aided, with sub-pixel soft-argmax, thermal refinement of the head points and a seat
occupancy score.

- Input: the fused map [N, C, S/4, S/4] (eq. 5) concatenated with the crop's relative depth
  averaged to the same stride (explicit depth aid: the network sees how far each point is in
  front of or behind the student's median depth).
- HRNet-style body (Sun et al., CVPR 2019), made small: two or three parallel branches at
  strides 4, 8 (and 16) that exchange information after every stage (upsampled 1x1 convs
  one way, strided 3x3 convs the other); heads read the stride-4 branch. Blocks are
  depthwise-separable by default (``block="lite"``, in the spirit of Lite-HRNet, Yu et al.,
  CVPR 2021); ``block="basic"`` gives HRNet's own.
- Heads: per keypoint a heatmap logit map and a visibility logit map. Positions are the
  soft-argmax (integral regression, Sun et al., ECCV 2018) of the heatmap, so they are
  sub-pixel and differentiable; confidence is the visibility logit read at the predicted
  location (the softmax-weighted sum), through a sigmoid.
- Thermal refinement: for each HEAD_KEYPOINTS point a 7x7 patch of both thermal channels is
  sampled around the coarse point at full crop resolution; a small MLP (patch minus its mean,
  plus a one-hot of which head point) predicts a shift bounded to +-``refine_radius`` crop
  pixels (tanh). Faces are the warmest skin, so local thermal gradients say where the eyes,
  nose and ears are even when colour is dark. Zero-initialised: it starts as the identity.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from models.data.channels import DEPTH, THERMAL, THERMAL_EQUALISED
from models.networks.ops import conv_bn_relu, sample_points, soft_argmax
from services.common.vocabulary import ARM_KEYPOINTS, HEAD_KEYPOINTS, NUM_KEYPOINTS

OCCUPANCY_PRIOR = 0.9


@dataclass
class KeypointOutput:
    xy: torch.Tensor  # [N, K, 2] crop pixels, after thermal refinement
    confidence: torch.Tensor  # [N, K] 0..1
    visibility_logits: torch.Tensor  # [N, K]
    occupancy_logits: torch.Tensor  # [N]
    heatmap_logits: torch.Tensor  # [N, K, h, w]
    coarse_xy: torch.Tensor  # [N, K, 2] before thermal refinement


class BasicBlock(nn.Module):
    """HRNet's residual block: two 3x3 convs."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = conv_bn_relu(channels, channels, 3)
        self.conv2 = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x + self.conv2(self.conv1(x)))


class LiteBlock(nn.Module):
    """The lightweight residual block: two depthwise-separable 3x3 convs (~1/5 of BasicBlock's
    multiply-adds at 16-32 channels), which is what keeps 20 seats within the CPU budget."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1, groups=channels, bias=False),
            nn.BatchNorm2d(channels),
            nn.Conv2d(channels, channels, 1, bias=False),
            nn.BatchNorm2d(channels),
            nn.ReLU(inplace=True),
        )
        self.conv2 = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1, groups=channels, bias=False),
            nn.BatchNorm2d(channels),
            nn.Conv2d(channels, channels, 1, bias=False),
            nn.BatchNorm2d(channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x + self.conv2(self.conv1(x)))


BLOCKS: dict[str, type[nn.Module]] = {"basic": BasicBlock, "lite": LiteBlock}


class BranchExchange(nn.Module):
    """HRNet fusion: every branch receives the sum of all branches resampled to its stride."""

    def __init__(self, widths: tuple[int, ...]) -> None:
        super().__init__()
        self.paths = nn.ModuleList()
        for i, wi in enumerate(widths):
            row = nn.ModuleList()
            for j, wj in enumerate(widths):
                if j == i:
                    row.append(nn.Identity())
                elif j > i:  # lower resolution -> 1x1 conv, upsampled in forward
                    row.append(nn.Sequential(nn.Conv2d(wj, wi, 1, bias=False), nn.BatchNorm2d(wi)))
                else:  # higher resolution -> (i - j) strided 3x3 convs
                    steps: list[nn.Module] = []
                    for step in range(i - j):
                        last = step == i - j - 1
                        steps.append(
                            nn.Sequential(
                                nn.Conv2d(wj, wi, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(wi)
                            )
                            if last
                            else conv_bn_relu(wj, wj, 3, stride=2)
                        )
                    row.append(nn.Sequential(*steps))
            self.paths.append(row)

    def forward(self, branches: list[torch.Tensor]) -> list[torch.Tensor]:
        out = []
        for i, row in enumerate(self.paths):
            total = branches[i]
            for j, path in enumerate(cast(nn.ModuleList, row)):
                if j == i:
                    continue
                y = path(branches[j])
                if j > i:
                    y = F.interpolate(y, size=branches[i].shape[-2:], mode="nearest")
                total = total + y
            out.append(F.relu(total))
        return out


class PatchRefinement(nn.Module):
    """Shift chosen keypoints by what a full-resolution patch of the crop around each shows.

    For each point of ``points`` a ``patch`` x ``patch`` grid of the given crop channels is
    sampled around the coarse point (1 crop px apart); a small MLP (the patch minus its
    per-channel mean, plus a one-hot of which point) predicts a shift bounded to
    +-``refine_radius`` crop pixels (tanh). Zero-initialised: it starts as the identity.
    """

    patch_offsets: torch.Tensor
    point_index: torch.Tensor
    point_code: torch.Tensor

    def __init__(
        self,
        points: tuple[int, ...],
        channels: int,
        patch: int = 7,
        hidden: int = 32,
        refine_radius: float = 2.0,
    ) -> None:
        super().__init__()
        self.patch, self.refine_radius, self.channels = patch, refine_radius, channels
        self.num_points = len(points)
        r = (patch - 1) / 2.0
        dy, dx = torch.meshgrid(torch.linspace(-r, r, patch), torch.linspace(-r, r, patch), indexing="ij")
        self.register_buffer("patch_offsets", torch.stack([dx.flatten(), dy.flatten()], -1), persistent=False)
        self.register_buffer("point_index", torch.tensor(points), persistent=False)
        self.register_buffer("point_code", torch.eye(self.num_points), persistent=False)
        shift = nn.Linear(hidden, 2)
        nn.init.zeros_(shift.weight)
        nn.init.zeros_(shift.bias)
        self.mlp = nn.Sequential(
            nn.Linear(channels * patch * patch + self.num_points, hidden), nn.ReLU(inplace=True), shift
        )

    def forward(self, xy: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        """xy [N, K, 2] crop px; image [N, channels, S, S] -> xy with the chosen points refined."""
        n, s = xy.shape[0], image.shape[-1]
        chosen = xy[:, self.point_index]  # [N, P, 2]
        p2 = self.patch_offsets.shape[0]
        grid = (chosen.unsqueeze(2) + self.patch_offsets.to(xy.dtype)).view(n, -1, 2)
        patches = sample_points(image, grid, float(s)).view(n, self.channels, self.num_points, p2)
        patches = patches - patches.mean(dim=-1, keepdim=True)
        features = patches.permute(0, 2, 1, 3).reshape(n, self.num_points, self.channels * p2)
        code = self.point_code.to(xy.dtype).expand(n, -1, -1)
        shift = torch.tanh(self.mlp(torch.cat([features, code], dim=-1))) * self.refine_radius
        refined = xy.clone()
        refined[:, self.point_index] = chosen + shift
        return refined


class ThermalHeadRefinement(PatchRefinement):
    """Section 3.4's thermal refinement of the head points: 7x7 patches of both thermal channels."""

    def __init__(self, patch: int = 7, hidden: int = 32, refine_radius: float = 2.0) -> None:
        super().__init__(HEAD_KEYPOINTS, 2, patch, hidden, refine_radius)


class ArmRefinement(PatchRefinement):
    """Elbows, wrists and hands refined from 11x11 full-resolution patches of all six crop
    channels (colour, depth, both thermal): the heatmaps are at stride 4, and on sim:small these
    fast, small points carried 4-7 px of error against 2 px for the head (docs/results.md)."""

    def __init__(self, patch: int = 11, hidden: int = 48, refine_radius: float = 4.0) -> None:
        super().__init__(ARM_KEYPOINTS, 6, patch, hidden, refine_radius)


class KeypointNet(nn.Module):
    """Lightweight HRNet on the fused map -> 17 keypoints, confidences and seat occupancy."""

    def __init__(
        self,
        in_channels: int = 16,
        widths: tuple[int, ...] = (16, 32),
        stages: int = 2,
        blocks: int = 1,
        block: str = "lite",
        depth_aided: bool = True,
        thermal_refinement: bool = True,
        stride: int = 4,
        arm_refinement: bool = False,
    ) -> None:
        super().__init__()
        self.stride, self.depth_aided = stride, depth_aided
        widths = tuple(widths)
        self.stem = conv_bn_relu(in_channels + (1 if depth_aided else 0), widths[0], 1)
        self.transitions = nn.ModuleList(
            [conv_bn_relu(widths[i - 1], widths[i], 3, stride=2) for i in range(1, len(widths))]
        )
        self.stages = nn.ModuleList()
        self.exchanges = nn.ModuleList()
        for _ in range(stages):
            self.stages.append(
                nn.ModuleList([nn.Sequential(*[BLOCKS[block](w) for _ in range(blocks)]) for w in widths])
            )
            self.exchanges.append(BranchExchange(widths))
        self.heads = nn.Conv2d(widths[0], 2 * NUM_KEYPOINTS, 1)
        self.occupancy = nn.Linear(sum(widths), 1)
        # prior: most seats of a class in session are taken (bias init as in Lin et al. 2017 for priors)
        nn.init.constant_(self.occupancy.bias, math.log(OCCUPANCY_PRIOR / (1.0 - OCCUPANCY_PRIOR)))
        self.refinement = ThermalHeadRefinement() if thermal_refinement else None
        self.arm_refinement = ArmRefinement() if arm_refinement else None

    def forward(self, fused: torch.Tensor, crops: torch.Tensor) -> KeypointOutput:
        crop_size = crops.shape[-1]
        x = fused
        if self.depth_aided:
            depth = F.avg_pool2d(crops[:, DEPTH : DEPTH + 1], self.stride)
            x = torch.cat([x, depth], dim=1)
        branches = [self.stem(x)]
        for transition in self.transitions:
            branches.append(transition(branches[-1]))
        for stage, exchange in zip(self.stages, self.exchanges, strict=True):
            branches = exchange(
                [block(b) for block, b in zip(cast(nn.ModuleList, stage), branches, strict=True)]
            )
        high = branches[0]
        maps = self.heads(high)
        heat = maps[:, :NUM_KEYPOINTS]
        visibility_map = maps[:, NUM_KEYPOINTS:]
        coarse, prob = soft_argmax(heat, float(crop_size))
        visibility_logits = (prob * visibility_map.flatten(2)).sum(dim=-1)
        xy = coarse
        if self.refinement is not None:
            xy = self.refinement(coarse, crops[:, THERMAL : THERMAL_EQUALISED + 1])
        if self.arm_refinement is not None:
            xy = self.arm_refinement(xy, crops)
        pooled = torch.cat([b.mean(dim=(2, 3)) for b in branches], dim=1)
        return KeypointOutput(
            xy=xy,
            confidence=torch.sigmoid(visibility_logits),
            visibility_logits=visibility_logits,
            occupancy_logits=self.occupancy(pooled).squeeze(1),
            heatmap_logits=heat,
            coarse_xy=coarse,
        )
