"""MST-GCN (section 3.4, eqs. 7-9) and the baseline recognisers."""

from __future__ import annotations

import math

import torch

from models.networks.mstgcn import (
    MSTGCN,
    MultiDilationTemporalConv,
    SpatioTemporalAttention,
    skeleton_adjacency,
    spatial_edge_weights,
)
from models.networks.stgcn import GCN, STGCN
from services.common.vocabulary import KEYPOINT_INDEX, NUM_KEYPOINTS


def test_eq7_spatial_edge_weight_by_hand():
    positions = torch.tensor([[0.0, 0.0], [0.3, 0.4], [0.0, 0.0]])  # |p0 - p1| = 0.5
    features = torch.tensor([[1.0, 0.0], [1.0, 1.0], [-2.0, 0.0]])
    w = spatial_edge_weights(positions, features, alpha=0.25, sigma=0.5)
    # w01 = 0.25 exp(-0.25 / 0.25) + 0.75 cos 45deg
    torch.testing.assert_close(w[0, 1], torch.tensor(0.25 * math.exp(-1.0) + 0.75 / math.sqrt(2.0)))
    # same place, opposite features: 0.25 * 1 + 0.75 * (-1)
    torch.testing.assert_close(w[0, 2], torch.tensor(-0.5))
    torch.testing.assert_close(w, w.T)
    torch.testing.assert_close(torch.diagonal(w), torch.ones(3))


def test_skeleton_adjacency_is_symmetric_normalised():
    a = skeleton_adjacency()
    torch.testing.assert_close(a, a.T)
    nose, head_top = KEYPOINT_INDEX["nose"], KEYPOINT_INDEX["head_top"]
    # head_top: itself + nose -> degree 2; nose: itself + head_top, chin, both eyes -> degree 5
    torch.testing.assert_close(a[head_top, nose], torch.tensor(1.0 / math.sqrt(2 * 5)))
    torch.testing.assert_close(a[head_top, head_top], torch.tensor(0.5))
    assert a[head_top, KEYPOINT_INDEX["chest"]] == 0


def test_eq8_dilations_reach_1_2_4_frames():
    conv = MultiDilationTemporalConv(1, dilations=(1, 2, 4)).eval()
    with torch.no_grad():
        for branch in conv.branches:
            branch.weight.fill_(1.0)
            branch.bias.zero_()
    impulse = torch.zeros(1, 1, 16, 1)
    impulse[0, 0, 8, 0] = 1.0
    # eval BN with default stats is x / sqrt(1 + eps); undo it to read the raw sum
    response = conv(impulse)[0, 0, :, 0] * math.sqrt(1 + conv.norm.eps)
    touched = {int(t) for t in torch.nonzero(response).flatten()}
    assert touched == {4, 6, 7, 8, 9, 10, 12}
    assert response[8] == 3.0  # the centre tap of all three branches
    single = MultiDilationTemporalConv(1, dilations=(1,)).eval()
    with torch.no_grad():
        single.branches[0].weight.fill_(1.0)
        single.branches[0].bias.zero_()
    assert {int(t) for t in torch.nonzero(single(impulse)[0, 0, :, 0]).flatten()} == {7, 8, 9}


def test_eq9_attention_pooling_by_hand():
    att = SpatioTemporalAttention(channels=1)
    with torch.no_grad():
        att.score.weight.fill_(1.0)
        att.score.bias.zero_()
    x = torch.tensor([0.0, math.log(3.0)]).view(1, 1, 2, 1)  # T = 2 frames, 1 node
    pooled, weights = att(x)
    torch.testing.assert_close(weights.flatten(), torch.tensor([0.25, 0.75]))
    torch.testing.assert_close(pooled.flatten(), torch.tensor([0.75 * math.log(3.0)]))


def test_mstgcn_outputs_and_attention_marginals():
    torch.manual_seed(0)
    net = MSTGCN(feature_dim=8, channels=(16, 16)).eval()
    keypoints = torch.rand(3, 16, NUM_KEYPOINTS, 3)
    features = torch.randn(3, 16, NUM_KEYPOINTS, 8)
    logits, kp_att, frame_att = net(keypoints, features)
    assert logits.shape == (3, 10)
    torch.testing.assert_close(kp_att.sum(-1), torch.ones(3))
    torch.testing.assert_close(frame_att.sum(-1), torch.ones(3))
    # the graph is dynamic: moving the keypoints changes the output, features held fixed
    moved = keypoints.clone()
    moved[..., :2] = moved[..., :2].flip(-1)
    assert not torch.allclose(net(moved, features)[0], logits)


def test_baselines_return_uniform_attention():
    for net in (STGCN(feature_dim=4, channels=(8,)), GCN(feature_dim=4, channels=(8,))):
        logits, kp_att, frame_att = net.eval()(
            torch.rand(2, 6, NUM_KEYPOINTS, 3), torch.randn(2, 6, NUM_KEYPOINTS, 4)
        )
        assert logits.shape == (2, 10) and not net.has_attention
        torch.testing.assert_close(kp_att, torch.full((2, NUM_KEYPOINTS), 1.0 / NUM_KEYPOINTS))
        torch.testing.assert_close(frame_att, torch.full((2, 6), 1.0 / 6))


def test_gcn_ignores_frame_order_but_stgcn_does_not():
    torch.manual_seed(1)
    kp, f = torch.rand(1, 8, NUM_KEYPOINTS, 3), torch.randn(1, 8, NUM_KEYPOINTS, 4)
    perm = torch.randperm(8)
    gcn, stgcn = GCN(feature_dim=4, channels=(8,)).eval(), STGCN(feature_dim=4, channels=(8,)).eval()
    torch.testing.assert_close(gcn(kp[:, perm], f[:, perm])[0], gcn(kp, f)[0], atol=1e-5, rtol=1e-5)
    assert not torch.allclose(stgcn(kp[:, perm], f[:, perm])[0], stgcn(kp, f)[0])
