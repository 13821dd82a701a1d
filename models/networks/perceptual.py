"""phi of the perceptual loss (eq. 11): a small CNN trained here, since no pretrained network
(VGG, as perceptual losses usually use) can be downloaded on these machines.

What phi is: three 3x3 conv layers (3 -> 16 -> 32 -> 32 channels, the middle one strided),
ReLU after each, features at stride 2. How it is trained: before the main training,
``train_perceptual_net`` fits phi plus a throw-away 1x1 heatmap head to the keypoint task
on CLEAN reference colour crops (soft-argmax positions, L1 to the ground truth), for a few
epochs; then phi is frozen and stored in the checkpoint. Its features therefore respond to
what matters for this task (body parts, edges of arms and heads) and not to sensor noise.
With an untrained (random) phi the loss is still a valid feature-space distance (random
CNN features preserve image structure), which is what tests use.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import nn

from models.networks.ops import soft_argmax
from services.common.vocabulary import NUM_KEYPOINTS


class PerceptualNet(nn.Module):
    def __init__(self, widths: tuple[int, int, int] = (16, 32, 32)) -> None:
        super().__init__()
        a, b, c = widths
        self.features = nn.Sequential(
            nn.Conv2d(3, a, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(a, b, 3, stride=2, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(b, c, 3, padding=1),
            nn.ReLU(inplace=True),
        )
        self.out_channels = c

    def forward(self, colour: torch.Tensor) -> torch.Tensor:
        return self.features(colour)


def train_perceptual_net(
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    epochs: int = 2,
    lr: float = 1e-3,
    seed: int = 0,
    net: PerceptualNet | None = None,
) -> tuple[PerceptualNet, list[float]]:
    """Fit phi on (clean colour [N, 3, S, S], keypoints [N, K, 3] crop px) batches.

    Returns (frozen phi, mean loss per epoch).

    ``batches`` is re-iterated once per epoch.
    """
    torch.manual_seed(seed)
    phi = net or PerceptualNet()
    head = nn.Conv2d(phi.out_channels, NUM_KEYPOINTS, 1)
    optimiser = torch.optim.AdamW([*phi.parameters(), *head.parameters()], lr=lr, weight_decay=1e-5)
    history: list[float] = []
    phi.train()
    for _ in range(epochs):
        total, count = 0.0, 0
        for colour, keypoints in batches:
            xy, _ = soft_argmax(head(phi(colour)), float(colour.shape[-1]))
            visible = (keypoints[..., 2] > 0).to(xy.dtype)
            per_point = F.l1_loss(xy, keypoints[..., :2], reduction="none").sum(-1) / colour.shape[-1]
            loss = (per_point * visible).sum() / visible.sum().clamp_min(1.0)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            total += float(loss.detach()) * len(colour)
            count += len(colour)
        history.append(total / max(count, 1))
    phi.eval()
    for p in phi.parameters():
        p.requires_grad_(False)
    return phi, history
