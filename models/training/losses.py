"""The multi-task losses of section 3.5 (eqs. 10-17).

Enhancement (eqs. 11-13)
  L_percep = mean (phi(I_enh) - phi(I_ref))^2 over the feature map (eq. 11; the squared L2
    norm divided by the number of elements, so its size does not depend on the crop size).
    phi is ``models.networks.perceptual.PerceptualNet``: no pretrained network can be downloaded here,
    so phi is a small CNN trained in this repository on the keypoint task from clean
    reference crops and then frozen (models/networks/perceptual.py says how).
  L_edge = mean |dx I_enh - dx I_ref| + mean |dy I_enh - dy I_ref| (eq. 12), forward
    differences along x and y, L1.
  L_enh = mu L_percep + (1 - mu) L_edge (eq. 13).
Fusion (eqs. 14-15)
  L_mi (eq. 14): -MI(F_RGB, F_D, F_T) read as -(I(F_RGB; F_D) + I(F_RGB; F_T)), each term
    estimated with InfoNCE (van den Oord et al., 2018, "Representation Learning with
    Contrastive Predictive Coding", arXiv:1807.03748): for each crop, P positions; the
    critic is the cosine similarity / tau of the two modalities' feature vectors; the
    positive pair is the same position. I_NCE = log P - L_NCE. The loss used is the sum of
    the two L_NCE = log P - I_NCE >= 0, i.e. -MI up to the constant log P (same gradient, and
    it stays non-negative, which eq. 17's softmax over loss values needs to mean anything).
  L_align = avg ||F_D - F_RGB||_2^2 + avg ||F_T - F_RGB||_2^2 (eq. 15): squared L2 norm over
    channels, averaged over positions and crops.
  L_fus = L_mi + L_align.
Recognition (eq. 16)
  L_w-focal = -sum_c w_c y_c (1 - p_c)^gamma log p_c, averaged over the batch. With gamma = 0
    it is eq. 16 exactly; the default gamma = 2 adds the focal modulation (Lin et al., 2017).
    w_c: inverse class frequency of the training split, normalised to mean 1 over the classes
    present (``class_weights``).
  The keypoint stage of 3.4 needs supervision the paper does not write down; it is part of
  the recognition module's loss here: L_rec = L_w-focal + kappa (L1 of keypoint positions /
  crop size over visible points + BCE of visibility + BCE of seat occupancy).
Adaptive weights (eq. 17)
  lambda_k = softmax(L_k / T), T = 0.1, over (L_enh, L_fus, L_rec). The L_k are DETACHED:
  the weights steer the optimisation, they are not optimised (otherwise the gradient would
  also push every loss to be smaller through its own weight, which is not what eq. 17 says).
  Scale: the three losses live on different scales (InfoNCE starts near 2 log P ~ 8 nats,
  the focal loss near 1, the enhancement loss near 0.05), and with T = 0.1 a softmax over raw
  values is a hard maximum that would train only the fusion loss. So, by default
  (``normalise="start"``), L_k enters eq. 17 as the ratio L_k / L_k(start), L_k(start) being its
  mean over the first ``reference_steps`` training steps (kept in buffers, so a resumed run
  continues the same way): every task starts at weight 1/3 and a task whose loss falls more
  slowly than the others' gets more weight, which is what the paper says eq. 17 is for (the
  same idea as Dynamic Weight Average, Liu et al., CVPR 2019). ``normalise="none"`` applies
  eq. 17 to the raw values, literally.
  Table 6's "without adaptive loss weights" uses fixed equal lambda_k (1/3 each). A loss a method does
  not have (no learnable enhancement, no per-modality features) is left out of the softmax.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from services.common.vocabulary import NUM_BEHAVIOURS

IGNORE_LABEL = -1  # a sample without a behaviour: an empty seat (models/data/scenedata.py)


def perceptual_loss(
    phi: Callable[[torch.Tensor], torch.Tensor], enhanced: torch.Tensor, reference: torch.Tensor
) -> torch.Tensor:
    """eq. 11: mean squared difference of phi features."""
    with torch.no_grad():
        target = phi(reference)
    return (phi(enhanced) - target).pow(2).mean()


def image_gradients(image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward differences along x and y of [..., H, W]."""
    return image[..., :, 1:] - image[..., :, :-1], image[..., 1:, :] - image[..., :-1, :]


def edge_loss(enhanced: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """eq. 12: L1 distance between the gradients of the enhanced and the reference image."""
    ex, ey = image_gradients(enhanced)
    rx, ry = image_gradients(reference)
    return (ex - rx).abs().mean() + (ey - ry).abs().mean()


def enhancement_loss(
    phi: Callable[[torch.Tensor], torch.Tensor],
    enhanced: torch.Tensor,
    reference: torch.Tensor,
    mu: float = 0.5,
) -> torch.Tensor:
    """eq. 13: mu L_percep + (1 - mu) L_edge."""
    return mu * perceptual_loss(phi, enhanced, reference) + (1.0 - mu) * edge_loss(enhanced, reference)


def infonce_loss(
    reference: torch.Tensor,
    source: torch.Tensor,
    temperature: float = 0.1,
    positions: torch.Tensor | None = None,
) -> torch.Tensor:
    """InfoNCE between two feature maps [N, C, H, W] over positions; I_NCE = log P - this.

    ``positions``: indices into H*W to use (all when None), the same for every crop.
    """
    n = reference.shape[0]
    a = reference.flatten(2)
    b = source.flatten(2)
    if positions is not None:
        a, b = a[:, :, positions], b[:, :, positions]
    a = F.normalize(a, dim=1).transpose(1, 2)  # [N, P, C]
    b = F.normalize(b, dim=1).transpose(1, 2)
    logits = a @ b.transpose(1, 2) / temperature  # [N, P, P]
    p = logits.shape[1]
    target = torch.arange(p, device=logits.device).expand(n, p)
    return F.cross_entropy(logits.reshape(n * p, p), target.reshape(-1))


def mutual_information_loss(
    rgb: torch.Tensor,
    depth: torch.Tensor,
    thermal: torch.Tensor,
    temperature: float = 0.1,
    positions: torch.Tensor | None = None,
) -> torch.Tensor:
    """eq. 14 (up to the constant 2 log P): L_NCE(RGB, D) + L_NCE(RGB, T)."""
    return infonce_loss(rgb, depth, temperature, positions) + infonce_loss(
        rgb, thermal, temperature, positions
    )


def alignment_loss(rgb: torch.Tensor, depth: torch.Tensor, thermal: torch.Tensor) -> torch.Tensor:
    """eq. 15: avg ||F_D - F_RGB||^2 + avg ||F_T - F_RGB||^2 (norm over channels, avg over positions)."""
    return (depth - rgb).pow(2).sum(dim=1).mean() + (thermal - rgb).pow(2).sum(dim=1).mean()


def weighted_focal_loss(
    logits: torch.Tensor, target: torch.Tensor, class_weights: torch.Tensor | None = None, gamma: float = 2.0
) -> torch.Tensor:
    """eq. 16 with focal modulation: mean over the batch of -w_y (1 - p_y)^gamma log p_y.

    Samples labelled ``IGNORE_LABEL`` (an empty seat) do not count; 0 if none is labelled.
    """
    keep = target != IGNORE_LABEL
    if not bool(keep.all()):
        if not bool(keep.any()):
            return logits.sum() * 0.0
        logits, target = logits[keep], target[keep]
    log_p = torch.log_softmax(logits, dim=-1).gather(1, target.view(-1, 1)).squeeze(1)
    loss = -log_p
    if gamma:
        loss = loss * (1.0 - log_p.exp()).pow(gamma)
    if class_weights is not None:
        loss = loss * class_weights.to(loss.dtype)[target]
    return loss.mean()


def adaptive_loss_weights(losses: torch.Tensor, temperature: float = 0.1) -> torch.Tensor:
    """eq. 17: lambda_k = exp(L_k / T) / sum_i exp(L_i / T), on detached losses."""
    return torch.softmax(losses.detach() / temperature, dim=0)


def class_weights(labels: np.ndarray, num_classes: int = NUM_BEHAVIOURS) -> torch.Tensor:
    """Inverse class frequency, mean 1 over the classes present; absent classes get 1 (empty seats,
    ``IGNORE_LABEL``, are not a class)."""
    labels = np.asarray(labels, dtype=np.int64)
    counts = np.bincount(labels[labels != IGNORE_LABEL], minlength=num_classes).astype(np.float64)
    weights = np.ones(num_classes)
    present = counts > 0
    if present.any():
        inv = 1.0 / counts[present]
        weights[present] = inv / inv.mean()
    return torch.tensor(weights, dtype=torch.float32)


def keypoint_loss(
    xy: torch.Tensor,
    visibility_logits: torch.Tensor,
    target: torch.Tensor,
    crop_size: float,
    occluded: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(L1 of positions / crop size over the annotated points, BCE of visibility). target [N, K, 3].

    Positions are learned for every point in the image (target visibility > 0), hidden ones
    included: where a hand under the desk is, is part of the behaviour. The visibility head
    learns "in the image" by default, or "seen" (in the image and not ``occluded`` [N, K]) when
    ``occluded`` is given: the confidence the recogniser reads then says whether a point is
    hidden, as the annotation's visibility 1 does.
    """
    in_image = (target[..., 2] > 0).to(xy.dtype)
    per_point = (xy - target[..., :2]).abs().sum(dim=-1) / crop_size
    position = (per_point * in_image).sum() / in_image.sum().clamp_min(1.0)
    seen = in_image if occluded is None else in_image * (~occluded.bool()).to(xy.dtype)
    visibility = F.binary_cross_entropy_with_logits(visibility_logits, seen)
    return position, visibility


def heatmap_loss(
    heatmap_logits: torch.Tensor, target: torch.Tensor, crop_size: float, sigma_cells: float = 1.0
) -> torch.Tensor:
    """KL(G || softmax(heatmap)) over the points in the image, G a Gaussian of ``sigma_cells``
    heatmap cells centred on the true point (normalised over the grid). target [N, K, 3] in
    crop px; heatmap_logits [N, K, h, w] with cell (i, j) centred on ((j + 0.5) S / w, (i + 0.5) S / h),
    as ``ops.soft_argmax`` reads it.

    Soft-argmax trained on positions alone is free to spread its heatmap: the expectation
    of a diffuse map drifts toward the middle of the crop, which is where a raised hand is not.
    The heatmap term of integral regression (Sun et al., ECCV 2018, section 3.2's
    combination of heatmap and integral losses) keeps each map a sharp peak on its point.
    """
    n, k, h, w = heatmap_logits.shape
    dtype = heatmap_logits.dtype
    xs = (torch.arange(w, dtype=dtype, device=heatmap_logits.device) + 0.5) * (crop_size / w)
    ys = (torch.arange(h, dtype=dtype, device=heatmap_logits.device) + 0.5) * (crop_size / h)
    dx = (xs.view(1, 1, 1, w) - target[..., 0].view(n, k, 1, 1)) * (w / crop_size)  # in cells
    dy = (ys.view(1, 1, h, 1) - target[..., 1].view(n, k, 1, 1)) * (h / crop_size)
    log_g = torch.log_softmax((-(dx**2 + dy**2) / (2.0 * sigma_cells**2)).flatten(2), dim=-1)
    log_p = torch.log_softmax(heatmap_logits.flatten(2), dim=-1)
    kl = (log_g.exp() * (log_g - log_p)).sum(dim=-1)  # [N, K]
    visible = (target[..., 2] > 0).to(dtype)
    return (kl * visible).sum() / visible.sum().clamp_min(1.0)


MODULE_LOSSES = ("enh", "fus", "rec")


@dataclass
class LossConfig:
    mu: float = 0.5  # eq. 13
    temperature: float = 0.1  # eq. 17
    adaptive: bool = True  # eq. 17; False = fixed 1/3 each (Table 6)
    normalise: str = "start"  # "start": eq. 17 on L_k / L_k(start); "none": on raw L_k
    reference_steps: int = 20
    focal_gamma: float = 2.0
    infonce_temperature: float = 0.1
    infonce_positions: int = 64
    keypoint_weight: float = 1.0
    visibility_weight: float = 0.1
    occupancy_weight: float = 0.1
    heatmap_weight: float = 0.0  # heatmap_loss beside the soft-argmax L1 (0 = off, the paper's setting)
    heatmap_sigma: float = 1.0  # of the Gaussian heatmap target, in heatmap cells
    position_weight: float = 1.0  # of the soft-argmax L1 within the keypoint terms
    visibility_target: str = "in_image"  # "in_image", or "seen" (hidden points are not visible)
    class_weights: list[float] | None = field(default=None)


@dataclass
class LossTerms:
    total: torch.Tensor
    parts: dict[str, float]


class MultiTaskLoss(nn.Module):
    """eq. 10: L_total = lambda_1 L_enh + lambda_2 L_fus + lambda_3 L_rec with eq. 17's weights."""

    weights: torch.Tensor
    reference_sum: torch.Tensor
    reference_count: torch.Tensor

    def __init__(self, config: LossConfig | None = None, perceptual_net: nn.Module | None = None) -> None:
        super().__init__()
        self.config = config or LossConfig()
        self.perceptual_net = perceptual_net
        if perceptual_net is not None:
            for p in perceptual_net.parameters():
                p.requires_grad_(False)
        if self.config.normalise not in ("start", "none"):
            raise ValueError(f"normalise must be 'start' or 'none', got {self.config.normalise!r}")
        if self.config.visibility_target not in ("in_image", "seen"):
            raise ValueError(
                f"visibility_target must be 'in_image' or 'seen', got {self.config.visibility_target!r}"
            )
        cw = self.config.class_weights
        self.register_buffer(
            "weights", torch.tensor(cw, dtype=torch.float32) if cw else torch.ones(NUM_BEHAVIOURS)
        )
        # running sums of (L_enh, L_fus, L_rec) over the first reference_steps steps
        self.register_buffer("reference_sum", torch.zeros(len(MODULE_LOSSES)))
        self.register_buffer("reference_count", torch.zeros(len(MODULE_LOSSES)))

    def module_weights(self, names: list[str], losses: torch.Tensor) -> torch.Tensor:
        """lambda_k for the module losses present (eq. 17, or fixed 1/3)."""
        cfg = self.config
        if not cfg.adaptive:
            return torch.full_like(losses, 1.0 / len(names))
        values = losses.detach()
        if cfg.normalise == "start":
            index = torch.tensor([MODULE_LOSSES.index(n) for n in names], device=losses.device)
            if self.training:
                warming = self.reference_count[index] < cfg.reference_steps
                self.reference_sum[index] += torch.where(warming, values, torch.zeros_like(values))
                self.reference_count[index] += warming.to(values.dtype)
            start = self.reference_sum[index] / self.reference_count[index].clamp_min(1.0)
            values = torch.where(start > 0, values / start.clamp_min(1e-12), torch.ones_like(values))
        return adaptive_loss_weights(values, cfg.temperature)

    def front_end_terms(
        self,
        enhanced: torch.Tensor | None,
        fusion,
        keypoints,
        target: torch.Tensor,
        occupied: torch.Tensor,
        reference: torch.Tensor | None,
        crop_size: float,
        generator: torch.Generator | None = None,
        occluded: torch.Tensor | None = None,
        *,
        fusion_terms: bool = True,
    ) -> tuple[dict[str, torch.Tensor], dict[str, float]]:
        """Per-crop terms: L_enh (eqs. 11-13), L_fus (eqs. 14-15) where the method has them, and
        ``kp`` = keypoint position + visibility + occupancy, over N crops (target [N, K, 3];
        ``occluded`` [N, K] is read when the visibility target is "seen"; ``fusion_terms=False``
        skips L_fus, for a caller that trains the keypoints alone)."""
        parts: dict[str, float] = {}
        module_losses: dict[str, torch.Tensor] = {}
        if enhanced is not None and reference is not None and self.perceptual_net is not None:
            module_losses["enh"] = self._enhancement_term(enhanced, reference, parts)
        if (
            fusion_terms
            and fusion.rgb is not None
            and fusion.depth is not None
            and fusion.thermal is not None
        ):
            module_losses["fus"] = self._fusion_term(fusion, generator, parts)
        module_losses["kp"] = self._keypoint_term(keypoints, target, occupied, crop_size, occluded, parts)
        return module_losses, parts

    def _enhancement_term(
        self, enhanced: torch.Tensor, reference: torch.Tensor, parts: dict[str, float]
    ) -> torch.Tensor:
        """L_enh (eqs. 11-13): perceptual and edge loss of the enhanced crops against the clean references."""
        assert self.perceptual_net is not None
        self.perceptual_net.eval()
        l_percep = perceptual_loss(self.perceptual_net, enhanced, reference)
        l_edge = edge_loss(enhanced, reference)
        parts.update(percep=float(l_percep.detach()), edge=float(l_edge.detach()))
        return self.config.mu * l_percep + (1.0 - self.config.mu) * l_edge

    def _fusion_term(
        self, fusion, generator: torch.Generator | None, parts: dict[str, float]
    ) -> torch.Tensor:
        """L_fus (eqs. 14-15): InfoNCE between the modalities (at ``infonce_positions`` random
        positions when the map has more) plus their alignment."""
        cfg = self.config
        hw = fusion.rgb.shape[-1] * fusion.rgb.shape[-2]
        positions = None
        if cfg.infonce_positions and cfg.infonce_positions < hw:
            positions = torch.randperm(hw, generator=generator)[: cfg.infonce_positions].to(fusion.rgb.device)
        l_mi = mutual_information_loss(
            fusion.rgb, fusion.depth, fusion.thermal, cfg.infonce_temperature, positions
        )
        l_align = alignment_loss(fusion.rgb, fusion.depth, fusion.thermal)
        p = hw if positions is None else len(positions)
        parts.update(mi_nats=float(2 * math.log(p) - l_mi.detach()), align=float(l_align.detach()))
        return l_mi + l_align

    def _keypoint_term(
        self,
        keypoints,
        target: torch.Tensor,
        occupied: torch.Tensor,
        crop_size: float,
        occluded: torch.Tensor | None,
        parts: dict[str, float],
    ) -> torch.Tensor:
        """Keypoint position + visibility + occupancy (+ heatmap where weighted), times ``keypoint_weight``."""
        cfg = self.config
        seen_only = occluded if cfg.visibility_target == "seen" else None
        l_pos, l_vis = keypoint_loss(keypoints.xy, keypoints.visibility_logits, target, crop_size, seen_only)
        l_occ = F.binary_cross_entropy_with_logits(
            keypoints.occupancy_logits, occupied.to(keypoints.occupancy_logits.dtype)
        )
        kp_terms = cfg.position_weight * l_pos + cfg.visibility_weight * l_vis + cfg.occupancy_weight * l_occ
        if cfg.heatmap_weight > 0:
            l_heat = heatmap_loss(keypoints.heatmap_logits, target, crop_size, cfg.heatmap_sigma)
            kp_terms = kp_terms + cfg.heatmap_weight * l_heat
            parts["heatmap_kl"] = float(l_heat.detach())
        parts.update(
            kp_l1=float(l_pos.detach()), visibility=float(l_vis.detach()), occupancy=float(l_occ.detach())
        )
        return cfg.keypoint_weight * kp_terms

    def forward(
        self, output, batch: dict[str, torch.Tensor], generator: torch.Generator | None = None
    ) -> LossTerms:
        """``output``: models.networks.pipeline.PipelineOutput; ``batch``: keypoints [B,T,K,3] (crop px),
        label [B], occupied [B,T], reference [B,T,3,S,S] (optional)."""
        cfg = self.config
        reference = batch["reference"].flatten(0, 1) if "reference" in batch else None
        module_losses, parts = self.front_end_terms(
            output.enhanced,
            output.fusion,
            output.keypoints,
            batch["keypoints"].flatten(0, 1),
            batch["occupied"].flatten(),
            reference,
            float(output.crop_size),
            generator,
            batch["occluded"].flatten(0, 1) if "occluded" in batch else None,
        )
        keypoint_terms = module_losses.pop("kp")
        l_focal = weighted_focal_loss(output.logits, batch["label"], self.weights, cfg.focal_gamma)
        module_losses["rec"] = l_focal + keypoint_terms
        parts["focal"] = float(l_focal.detach())
        names = list(module_losses)
        stacked = torch.stack([module_losses[k] for k in names])
        lambdas = self.module_weights(names, stacked)
        total = (lambdas * stacked).sum()
        for name, lam, value in zip(names, lambdas.tolist(), stacked.tolist(), strict=True):
            parts[f"L_{name}"] = value
            parts[f"lambda_{name}"] = lam
        parts["total"] = float(total.detach())
        return LossTerms(total=total, parts=parts)
