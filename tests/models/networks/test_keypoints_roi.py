"""Keypoint network (section 3.4) and the deformable RoIAlign node encoder (eq. 6)."""

from __future__ import annotations

import pytest
import torch

from models.networks.keypoints import ARM_KEYPOINTS, ArmRefinement, KeypointNet, ThermalHeadRefinement
from models.networks.roi import NodeEncoder
from services.common.vocabulary import HEAD_KEYPOINTS, NUM_KEYPOINTS


def test_keypoint_net_outputs():
    torch.manual_seed(0)
    net = KeypointNet(in_channels=8, widths=(8, 16, 24)).eval()
    out = net(torch.randn(3, 8, 12, 12), torch.rand(3, 6, 48, 48))
    assert out.xy.shape == (3, NUM_KEYPOINTS, 2)
    assert out.heatmap_logits.shape == (3, NUM_KEYPOINTS, 12, 12)
    assert ((out.confidence > 0) & (out.confidence < 1)).all()
    # soft-argmax positions are convex combinations of cell centres: inside the crop
    assert (out.coarse_xy >= 2.0).all() and (out.coarse_xy <= 46.0).all()
    assert out.occupancy_logits.shape == (3,)


@pytest.mark.parametrize(
    ("refine", "points", "channels", "radius"),
    [
        (ThermalHeadRefinement(refine_radius=2.0), HEAD_KEYPOINTS, 2, 2.0),
        (ArmRefinement(refine_radius=4.0), ARM_KEYPOINTS, 6, 4.0),
    ],
    ids=["thermal head", "arms"],
)
def test_patch_refinement_starts_as_identity_and_moves_only_its_points(refine, points, channels, radius):
    xy = torch.rand(2, NUM_KEYPOINTS, 2) * 30 + 1
    image = torch.randn(2, channels, 32, 32)
    torch.testing.assert_close(refine(xy, image), xy)
    with torch.no_grad():
        refine.mlp[2].bias.fill_(100.0)  # saturate the tanh: shift = +radius on both axes
    out = refine(xy, image)
    chosen = list(points)
    others = [i for i in range(NUM_KEYPOINTS) if i not in chosen]
    torch.testing.assert_close(out[:, chosen], xy[:, chosen] + radius)
    torch.testing.assert_close(out[:, others], xy[:, others])


def test_arm_refinement_is_off_by_default_and_moves_the_arm_points():
    torch.manual_seed(0)
    plain = KeypointNet(in_channels=8, widths=(8, 16))
    assert plain.arm_refinement is None
    net = KeypointNet(in_channels=8, widths=(8, 16), arm_refinement=True).eval()
    assert set(net.state_dict()) - set(plain.state_dict()) == {
        "arm_refinement.mlp.0.weight",
        "arm_refinement.mlp.0.bias",
        "arm_refinement.mlp.2.weight",
        "arm_refinement.mlp.2.bias",
    }
    fused, crops = torch.randn(2, 8, 12, 12), torch.rand(2, 6, 48, 48)
    with torch.no_grad():
        net.arm_refinement.mlp[2].weight.normal_()  # an untrained-but-nonzero refinement
    out = net(fused, crops)
    moved = (out.xy - out.coarse_xy).abs().sum(-1) > 0
    torso = [i for i in range(NUM_KEYPOINTS) if i not in HEAD_KEYPOINTS and i not in ARM_KEYPOINTS]
    assert moved[:, list(ARM_KEYPOINTS)].all()  # refined from their patches
    assert not moved[:, torso].any()  # neck, shoulders, chest: the heatmaps' own soft-argmax


def test_node_encoder_eq6_on_a_linear_map():
    # fused map whose only channel equals the x coordinate of the cell centre in crop pixels:
    # bilinear RoIAlign samples then return the sample x positions exactly (inside the map)
    crop, stride = 32, 4
    xs = (torch.arange(8.0) + 0.5) * stride
    fused = xs.view(1, 1, 1, 8).expand(1, 1, 8, 8).contiguous()
    encoder = NodeEncoder(in_channels=1, feature_dim=9, grid=3, spacing=4.0, deformable=True)
    with torch.no_grad():
        encoder.encode.weight.copy_(torch.eye(9))
        encoder.encode.bias.zero_()
    points = torch.full((1, NUM_KEYPOINTS, 2), 16.0)
    features = encoder(fused, points, crop)
    expected = torch.tensor([12.0, 16.0, 20.0] * 3)  # bins at x - 4, x, x + 4 on each of 3 rows
    torch.testing.assert_close(features[0, 0], expected)
    # a learned offset of +0.25 bin spacing moves every sample by 1 crop pixel
    with torch.no_grad():
        encoder.offset_bias[:, 0::2] = 0.25
    torch.testing.assert_close(encoder(fused, points, crop)[0, 0], expected + 1.0)


def test_node_encoder_detaches_keypoints_by_default():
    encoder = NodeEncoder(in_channels=2, feature_dim=4)
    xy = (torch.rand(2, NUM_KEYPOINTS, 2) * 20 + 5).requires_grad_()
    fused = torch.randn(2, 2, 8, 8, requires_grad=True)
    encoder(fused, xy, 32).sum().backward()
    assert xy.grad is None and fused.grad is not None
