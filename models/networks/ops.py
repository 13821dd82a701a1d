"""Plain-torch building blocks shared by the networks: point sampling, modulated deformable
convolution (no torchvision on these machines) and the conv-BN-ReLU unit.

Coordinate convention, used everywhere in models/: continuous pixel coordinates in which
pixel (i, j) covers [j, j+1) x [i, i+1), so its centre is (j + 0.5, i + 0.5). A crop of
size S spans [0, S]; a feature map of stride s over it spans [0, S / s]. With this
convention ``grid_sample(..., align_corners=False)`` takes ``2 * x / S - 1`` for every map
size, so points in crop pixels sample any stride without rescaling.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def to_grid(points_xy: torch.Tensor, extent: float) -> torch.Tensor:
    """Continuous pixel coordinates over [0, extent] -> grid_sample's [-1, 1] (align_corners=False)."""
    return points_xy * (2.0 / extent) - 1.0


def sample_points(feature_map: torch.Tensor, points_xy: torch.Tensor, extent: float) -> torch.Tensor:
    """Bilinear samples of ``feature_map`` [B, C, H, W] at ``points_xy`` [B, P, 2] -> [B, C, P].

    ``extent`` is the size of the frame the points live in (the crop size for crop
    pixels); outside the map the samples are zero, as in RoIAlign.
    """
    grid = to_grid(points_xy, extent).unsqueeze(1)  # [B, 1, P, 2]
    return F.grid_sample(feature_map, grid, mode="bilinear", padding_mode="zeros", align_corners=False)[
        :, :, 0, :
    ]


def soft_argmax(heatmap_logits: torch.Tensor, extent: float) -> tuple[torch.Tensor, torch.Tensor]:
    """[N, K, h, w] logits -> (expected positions [N, K, 2] in a frame of size ``extent``,
    the softmax distribution [N, K, h*w]). Sub-pixel and differentiable (integral regression)."""
    n, k, h, w = heatmap_logits.shape
    prob = torch.softmax(heatmap_logits.flatten(2), dim=-1)
    grid = prob.view(n, k, h, w)
    xs = (torch.arange(w, dtype=prob.dtype, device=prob.device) + 0.5) * (extent / w)
    ys = (torch.arange(h, dtype=prob.dtype, device=prob.device) + 0.5) * (extent / h)
    xy = torch.stack([(grid.sum(2) * xs).sum(-1), (grid.sum(3) * ys).sum(-1)], dim=-1)
    return xy, prob


def conv_bn_relu(
    in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1, groups: int = 1
) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(
            in_channels,
            out_channels,
            kernel_size,
            stride=stride,
            padding=kernel_size // 2,
            groups=groups,
            bias=False,
        ),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class ModulatedDeformConv2d(nn.Module):
    """Modulated deformable convolution (DCNv2, Zhu et al. 2019) written with ``grid_sample``.

    out(p) = sum_k w_k * m_k(p) * x(p + p_k + dp_k(p)) + b, with p_k the regular k x k
    kernel grid. All K = k*k sampling points of every output pixel are gathered with ONE
    grid_sample call ([B, C, K*H, W]), then one product over C*K channels applies the
    kernel weights, which is exactly a k x k convolution when offsets are 0 and masks 1.
    """

    taps: torch.Tensor

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, bias: bool = False) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = kernel_size
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        r = kernel_size // 2
        dy, dx = torch.meshgrid(torch.arange(-r, r + 1.0), torch.arange(-r, r + 1.0), indexing="ij")
        # kernel taps in row-major order, matching the weight layout [.., ky, kx]
        self.register_buffer("taps", torch.stack([dx.flatten(), dy.flatten()], dim=-1), persistent=False)
        # per map size, dtype and device: the regular sampling grid p + p_k in grid_sample's units
        self._base_grids: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}

    @property
    def kernel_points(self) -> int:
        return self.kernel_size * self.kernel_size

    def base_grid(self, h: int, w: int, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(p + p_k as grid_sample's [-1, 1] coordinates [K, H, W, 2], pixels -> those units [2]) for
        an H x W map: built once per size instead of on every call."""
        key = (h, w, like.dtype, like.device)
        if key not in self._base_grids:
            self._base_grids[key] = self._build_base_grid(h, w, like)
        return self._base_grids[key]

    @torch.inference_mode(False)  # plain tensors: a grid built while serving is reused in training
    def _build_base_grid(self, h: int, w: int, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        k = self.kernel_points
        taps = self.taps.to(like.device, like.dtype)
        xs = torch.arange(w, device=like.device, dtype=like.dtype) + 0.5
        ys = torch.arange(h, device=like.device, dtype=like.dtype) + 0.5
        base_x = (xs.view(1, 1, w) + taps[:, 0].view(k, 1, 1)).expand(k, h, w)
        base_y = (ys.view(1, h, 1) + taps[:, 1].view(k, 1, 1)).expand(k, h, w)
        scale = torch.tensor([2.0 / w, 2.0 / h], device=like.device, dtype=like.dtype)
        return torch.stack([base_x, base_y], dim=-1) * scale - 1.0, scale

    def forward(self, x: torch.Tensor, offset: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """x [B, C, H, W]; offset [B, 2K, H, W] as (dx, dy) pairs in pixels of x; mask [B, K, H, W]."""
        b, c, h, w = x.shape
        k = self.kernel_points
        base, scale = self.base_grid(h, w, x)
        displacement = offset.view(b, k, 2, h, w).permute(0, 1, 3, 4, 2)  # [B, K, H, W, (dx, dy)]
        grid = torch.addcmul(base, displacement, scale).view(b, k * h, w, 2)
        sampled = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        sampled = sampled.view(b, c, k, h * w)
        modulation = mask.view(b, 1, k, h * w)
        # in place where no gradient needs the unmodulated samples (inference): one buffer less
        sampled = sampled * modulation if torch.is_grad_enabled() else sampled.mul_(modulation)
        # the kernel weights over C*K channels: a batched matrix product in training (its backward was
        # 1.2-1.5x faster per step than a 1x1 convolution's) and in the traced stage the model server
        # runs (~1 ms less per 20 crops); eager inference ran the convolution ~1 ms faster (A/B,
        # docs/benchmarks.md, "Model server networks")
        weight = self.weight.reshape(self.out_channels, c * k)
        if not (torch.is_grad_enabled() or torch.jit.is_tracing()):
            return F.conv2d(
                sampled.view(b, c * k, h, w), weight.view(self.out_channels, c * k, 1, 1), self.bias
            )
        out = torch.matmul(weight, sampled.view(b, c * k, h * w)).view(b, self.out_channels, h, w)
        return out if self.bias is None else out + self.bias.view(1, -1, 1, 1)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def fold_norm_into(conv: nn.Module, norm: nn.Module) -> bool:
    """Fold an eval-mode BatchNorm2d into the convolution before it, in place: ``conv`` is any
    module with a ``weight`` [out, ...] and an optional ``bias`` [out] that its output is linear
    in (nn.Conv2d, ModulatedDeformConv2d). False, and nothing changed, where it cannot fold."""
    if not isinstance(norm, nn.BatchNorm2d):
        return False
    mean, var = norm.running_mean, norm.running_var
    if mean is None or var is None:  # no running statistics: nothing to fold
        return False
    weight, bias = conv.weight, conv.bias
    assert isinstance(weight, torch.Tensor)
    scale = norm.weight / torch.sqrt(var + norm.eps)
    with torch.no_grad():
        folded_bias = ((bias if isinstance(bias, torch.Tensor) else torch.zeros_like(mean)) - mean) * scale
        weight.copy_(weight * scale.view(-1, *([1] * (weight.dim() - 1))))
        if isinstance(bias, torch.Tensor):
            bias.copy_(folded_bias + norm.bias)
        else:
            conv.bias = nn.Parameter(folded_bias + norm.bias)
    return True


def fold_batchnorm(module: nn.Module) -> nn.Module:
    """Fold every BatchNorm2d that directly follows a Conv2d inside an nn.Sequential into the
    conv (inference only: the module must be in eval mode). Fewer ops per crop on the CPU.
    A module that keeps its norm elsewhere folds it itself (a ``fold_norm()`` method, as
    DCA-Net's deformable alignment has)."""
    for child in list(module.modules()):
        fold_norm = getattr(child, "fold_norm", None)
        if callable(fold_norm):
            fold_norm()
        if not isinstance(child, nn.Sequential):
            continue
        layers = list(child)
        for i in range(len(layers) - 1):
            conv, norm = layers[i], layers[i + 1]
            if isinstance(conv, nn.Conv2d) and fold_norm_into(conv, norm):
                child[i + 1] = nn.Identity()
    return module
