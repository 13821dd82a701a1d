"""Section 3.5 losses (eqs. 11-17) against hand-computed values."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from models.networks.dcanet import FusionFeatures
from models.networks.keypoints import KeypointOutput
from models.training.losses import (
    LossConfig,
    MultiTaskLoss,
    adaptive_loss_weights,
    alignment_loss,
    class_weights,
    edge_loss,
    enhancement_loss,
    heatmap_loss,
    infonce_loss,
    keypoint_loss,
    mutual_information_loss,
    perceptual_loss,
    weighted_focal_loss,
)
from services.common.vocabulary import NUM_KEYPOINTS


def identity(x: torch.Tensor) -> torch.Tensor:
    return x


def test_eq11_perceptual_loss_with_identity_features():
    enhanced = torch.tensor([[[[0.0, 1.0]]]])
    reference = torch.tensor([[[[1.0, 1.0]]]])
    assert float(perceptual_loss(identity, enhanced, reference)) == pytest.approx(0.5)


def test_eq12_edge_loss_by_hand():
    enhanced = torch.tensor([[[[0.0, 1.0, 3.0], [2.0, 2.0, 2.0]]]])
    reference = torch.zeros_like(enhanced)
    # dx = [[1, 2], [0, 0]] -> mean 3/4; dy = [[2, 1, -1]] -> mean |.| 4/3
    assert float(edge_loss(enhanced, reference)) == pytest.approx(0.75 + 4.0 / 3.0)
    assert float(edge_loss(enhanced + 5.0, enhanced)) == 0.0  # a brightness offset keeps every edge


def test_eq13_combination():
    enhanced = torch.tensor([[[[0.0, 1.0, 3.0], [2.0, 2.0, 2.0]]]])
    reference = torch.zeros_like(enhanced)
    percep = float((enhanced**2).mean())
    expected = 0.25 * percep + 0.75 * (0.75 + 4.0 / 3.0)
    assert float(enhancement_loss(identity, enhanced, reference, mu=0.25)) == pytest.approx(expected)


def test_eq14_infonce_by_hand():
    # two positions with orthogonal features, identical in both modalities
    rgb = torch.tensor([[[[1.0, 0.0]], [[0.0, 1.0]]]])  # [N=1, C=2, H=1, W=2]
    loss = infonce_loss(rgb, rgb.clone(), temperature=0.5)
    # each row: logits [1/0.5, 0] -> -log(e^2 / (e^2 + 1))
    assert float(loss) == pytest.approx(math.log(1.0 + math.exp(-2.0)))
    mi = math.log(2) - float(loss)
    assert 0 < mi <= math.log(2)
    # swapped positions in the source: the positive pair is now the dissimilar one
    swapped = infonce_loss(rgb, rgb.flip(-1), temperature=0.5)
    assert float(swapped) == pytest.approx(math.log(1.0 + math.exp(2.0)))
    both = mutual_information_loss(rgb, rgb, rgb.flip(-1), temperature=0.5)
    assert float(both) == pytest.approx(float(loss) + float(swapped))
    # a subset of positions is honoured
    subset = infonce_loss(rgb, rgb, temperature=0.5, positions=torch.tensor([1]))
    assert float(subset) == pytest.approx(0.0)


def test_eq15_alignment_by_hand():
    rgb = torch.zeros(1, 2, 1, 2)
    # ||F_D - F_RGB||^2 = 1 + 1 = 2 at each position; ||F_T - F_RGB||^2 = 4 + 4 = 8
    assert float(alignment_loss(rgb, torch.ones_like(rgb), 2 * torch.ones_like(rgb))) == pytest.approx(10.0)


def test_eq16_weighted_focal_by_hand():
    logits = torch.tensor([[0.0, math.log(3.0)], [0.0, math.log(3.0)]])
    target = torch.tensor([1, 0])  # p = 3/4 and 1/4
    weights = torch.tensor([1.0, 2.0])
    ce = (2.0 * -math.log(0.75) + 1.0 * -math.log(0.25)) / 2
    assert float(weighted_focal_loss(logits, target, weights, gamma=0.0)) == pytest.approx(ce)
    focal = (2.0 * (0.25**2) * -math.log(0.75) + 1.0 * (0.75**2) * -math.log(0.25)) / 2
    assert float(weighted_focal_loss(logits, target, weights, gamma=2.0)) == pytest.approx(focal)


def test_eq17_adaptive_weights_by_hand_and_detached():
    losses = torch.tensor([0.1, 0.2, 0.3], requires_grad=True)
    lam = adaptive_loss_weights(losses, temperature=0.1)
    e = np.exp([1.0, 2.0, 3.0])
    np.testing.assert_allclose(lam.numpy(), e / e.sum(), rtol=1e-6)
    assert not lam.requires_grad


def test_class_weights_inverse_frequency():
    weights = class_weights(np.array([0, 0, 0, 1]), num_classes=3)
    # counts 3, 1, 0: inverse 1/3, 1 -> mean 2/3 -> 0.5, 1.5; absent class 1
    np.testing.assert_allclose(weights.numpy(), [0.5, 1.5, 1.0])


def test_keypoint_loss_by_hand():
    xy = torch.tensor([[[0.0, 0.0], [10.0, 10.0]]])
    target = torch.tensor([[[4.0, 3.0, 1.0], [0.0, 0.0, 0.0]]])
    position, visibility = keypoint_loss(xy, torch.zeros(1, 2), target, crop_size=10.0)
    assert float(position) == pytest.approx(0.7)  # (4 + 3) / 10, the invisible point ignored
    assert float(visibility) == pytest.approx(math.log(2.0))


def test_heatmap_loss_by_hand():
    # a 2 x 2 heatmap over a 4 px crop: cell centres at 1 and 3 px; sigma 1 cell = 2 px
    target = torch.tensor([[[1.0, 1.0, 1.0], [3.0, 3.0, 0.0]]])  # point 0 on cell (0, 0); point 1 out of view
    d2 = torch.tensor([0.0, 1.0, 1.0, 2.0])  # squared distances in cells: (0,0), (0,1), (1,0), (1,1)
    g = torch.softmax(-d2 / 2.0, dim=0)
    logits = torch.zeros(1, 2, 2, 2)
    # uniform map: KL(G || U) = log 4 - H(G)
    expected = math.log(4.0) + float((g * g.log()).sum())
    assert float(heatmap_loss(logits, target, 4.0)) == pytest.approx(expected, rel=1e-6)
    # the Gaussian itself: 0; the out-of-view point's map does not count at all
    logits[0, 0] = g.log().view(2, 2)
    logits[0, 1] = torch.tensor([[50.0, -50.0], [-50.0, -50.0]])
    assert float(heatmap_loss(logits, target, 4.0)) == pytest.approx(0.0, abs=1e-6)
    # a peak on the wrong cell costs more than a flat map
    logits[0, 0] = torch.tensor([[-10.0, -10.0], [-10.0, 10.0]])
    assert float(heatmap_loss(logits, target, 4.0)) > expected


def test_heatmap_term_is_off_by_default_and_joins_the_keypoint_loss_when_weighted():
    output = fake_output(with_fusion=False)
    target = torch.rand(2, NUM_KEYPOINTS, 3) * 16
    target[..., 2] = 1.0
    plain = MultiTaskLoss(LossConfig())
    weighted = MultiTaskLoss(LossConfig(heatmap_weight=0.5))
    args = (None, output.fusion, output.keypoints, target, torch.ones(2), None, 16.0)
    terms, parts = plain.front_end_terms(*args)
    assert "heatmap_kl" not in parts
    terms_w, parts_w = weighted.front_end_terms(*args)
    assert parts_w["heatmap_kl"] > 0
    assert float(terms_w["kp"] - terms["kp"]) == pytest.approx(0.5 * parts_w["heatmap_kl"], rel=1e-5)


def fake_output(with_fusion: bool):
    n = 2
    xy = torch.full((n, NUM_KEYPOINTS, 2), 8.0)
    keypoints = KeypointOutput(
        xy=xy,
        confidence=torch.full((n, NUM_KEYPOINTS), 0.5),
        visibility_logits=torch.zeros(n, NUM_KEYPOINTS),
        occupancy_logits=torch.zeros(n),
        heatmap_logits=torch.zeros(n, NUM_KEYPOINTS, 2, 2),
        coarse_xy=xy,
    )
    rgb = torch.zeros(n, 2, 1, 2)
    fusion = (
        FusionFeatures(fused=rgb, rgb=rgb, depth=torch.ones_like(rgb), thermal=torch.ones_like(rgb))
        if with_fusion
        else FusionFeatures(fused=rgb)
    )
    return SimpleNamespace(
        crop_size=16, enhanced=None, fusion=fusion, keypoints=keypoints, logits=torch.zeros(1, 10)
    )


def fake_batch():
    target = torch.zeros(1, 2, NUM_KEYPOINTS, 3)
    target[..., :2] = 8.0
    target[..., 2] = 1.0
    return {"keypoints": target, "label": torch.tensor([3]), "occupied": torch.ones(1, 2)}


def test_multitask_total_with_recognition_only():
    loss = MultiTaskLoss(LossConfig(focal_gamma=0.0))
    terms = loss(fake_output(with_fusion=False), fake_batch())
    # uniform logits: CE = ln 10; keypoints exact: 0; visibility and occupancy BCE at logit 0: ln 2
    expected = math.log(10.0) + 0.1 * math.log(2.0) + 0.1 * math.log(2.0)
    assert terms.parts["lambda_rec"] == pytest.approx(1.0)
    assert float(terms.total) == pytest.approx(expected, rel=1e-6)


def test_fixed_weights_are_equal():
    loss = MultiTaskLoss(LossConfig(adaptive=False, infonce_positions=0))
    terms = loss(fake_output(with_fusion=True), fake_batch())
    assert terms.parts["lambda_fus"] == terms.parts["lambda_rec"] == pytest.approx(0.5)
    assert float(terms.total) == pytest.approx(0.5 * (terms.parts["L_fus"] + terms.parts["L_rec"]), rel=1e-6)


def test_adaptive_weights_on_loss_ratios_and_raw():
    loss = MultiTaskLoss(LossConfig(reference_steps=1)).train()
    first = loss.module_weights(["fus", "rec"], torch.tensor([2.0, 4.0]))
    torch.testing.assert_close(first, torch.tensor([0.5, 0.5]))  # both at their start value
    later = loss.module_weights(["fus", "rec"], torch.tensor([1.0, 4.0]))
    # ratios 0.5 and 1 -> softmax([5, 10]): the task that improved less gets the weight
    e = np.exp([5.0, 10.0])
    np.testing.assert_allclose(later.numpy(), e / e.sum(), rtol=1e-5)
    raw = MultiTaskLoss(LossConfig(normalise="none")).module_weights(["fus", "rec"], torch.tensor([1.0, 1.1]))
    e = np.exp([10.0, 11.0])
    np.testing.assert_allclose(raw.numpy(), e / e.sum(), rtol=1e-5)


def test_empty_seats_do_not_train_the_classifier():
    from models.training.losses import IGNORE_LABEL, class_weights, weighted_focal_loss

    logits = torch.tensor([[2.0, 0.0, -1.0], [0.5, 0.5, 0.0], [9.0, -9.0, 0.0]])
    with_empty = weighted_focal_loss(logits, torch.tensor([0, 1, IGNORE_LABEL]), gamma=2.0)
    without = weighted_focal_loss(logits[:2], torch.tensor([0, 1]), gamma=2.0)
    torch.testing.assert_close(with_empty, without)
    only_empty = weighted_focal_loss(logits[2:], torch.tensor([IGNORE_LABEL]))
    assert float(only_empty) == 0.0 and only_empty.requires_grad is logits.requires_grad
    weights = class_weights(np.array([0, 0, 1, IGNORE_LABEL, IGNORE_LABEL]), num_classes=3)
    # inverse frequency over the present classes 0 (2x) and 1 (1x), mean 1; class 2 absent -> 1
    torch.testing.assert_close(weights, torch.tensor([2 / 3, 4 / 3, 1.0]))
