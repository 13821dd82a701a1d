"""DCA-Net parts (section 3.3) against hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from models.networks.dcanet import CrossModalAttention, DCANet, DeformableAlignment, GatedFusion
from models.networks.ops import fold_batchnorm


def test_cross_attention_eq4_by_hand():
    attention = CrossModalAttention(channels=1, key_dim=1, heads=1)
    with torch.no_grad():
        for conv in (attention.query, attention.key):
            conv.weight.fill_(1.0)
            conv.bias.zero_()
    rgb = torch.tensor([[[[1.0, 2.0]]]])  # [1, 1, 1, 2]
    depth = torch.tensor([[[[0.0, math.log(3.0) / 2.0]]]])
    modulated, maps = attention(rgb, depth)
    # logits q.k / sqrt(1) = [0, ln 3] -> softmax [1/4, 3/4]
    torch.testing.assert_close(maps.flatten(), torch.tensor([0.25, 0.75]))
    # L2-normalised and scaled by sqrt(HW) = sqrt(2): [1, 3] / sqrt(10) * sqrt(2)
    scale = torch.tensor([1.0, 3.0]) / math.sqrt(10.0) * math.sqrt(2.0)
    torch.testing.assert_close(modulated.flatten(), torch.tensor([1.0, 2.0]) * scale)


def test_uniform_attention_leaves_rgb_unchanged():
    attention = CrossModalAttention(channels=4, key_dim=2, heads=2)
    with torch.no_grad():
        attention.key.weight.zero_()
        attention.key.bias.zero_()
    rgb = torch.randn(2, 4, 3, 5)
    modulated, maps = attention(rgb, torch.randn(2, 4, 3, 5))
    torch.testing.assert_close(modulated, rgb)
    torch.testing.assert_close(maps.sum(dim=(2, 3)), torch.ones(2, 2))


def test_gated_fusion_eq5_by_hand():
    fusion = GatedFusion(channels=2)
    with torch.no_grad():
        fusion.gate.bias.copy_(torch.tensor([0.0, 0.0, 30.0]))  # sigmoid -> 0.5, 0.5, 1
    rgb, dmod, tmod = torch.ones(1, 2, 2, 2), 2 * torch.ones(1, 2, 2, 2), 4 * torch.ones(1, 2, 2, 2)
    fused, gates = fusion(rgb, dmod, tmod)
    torch.testing.assert_close(gates, torch.tensor([[0.25, 0.25, 0.5]]))
    torch.testing.assert_close(fused, torch.full((1, 2, 2, 2), 0.25 * 1 + 0.25 * 2 + 0.5 * 4))


def test_gates_sum_to_one_for_any_weights():
    torch.manual_seed(0)
    net = DCANet(channels=8, key_dim=4, heads=2)
    with torch.no_grad():
        net.gated_fusion.gate.weight.normal_(0, 3)
        net.gated_fusion.gate.bias.normal_(0, 3)
    out = net(torch.rand(5, 6, 32, 32))
    torch.testing.assert_close(out.gates.sum(dim=1), torch.ones(5))
    assert (out.gates > 0).all()
    assert out.fused.shape == (5, 8, 8, 8)
    assert out.depth.shape == out.rgb.shape == out.thermal.shape


def test_untrained_gates_are_equal():
    out = DCANet(channels=8).eval()(torch.rand(3, 6, 32, 32))
    torch.testing.assert_close(out.gates, torch.full((3, 3), 1.0 / 3.0))


def test_deformable_alignment_starts_as_a_plain_conv():
    torch.manual_seed(3)
    align = DeformableAlignment(4, deformable=True).eval()
    ref, src = torch.randn(2, 4, 6, 6), torch.randn(2, 4, 6, 6)
    expected = F.relu(align.norm(F.conv2d(src, align.conv.weight, padding=1)))
    torch.testing.assert_close(align(ref, src), expected, atol=1e-5, rtol=1e-5)
    # offsets depend on the reference once trained: moving the reference moves the sampling
    with torch.no_grad():
        align.offset_net[1].weight.normal_(0, 0.5)
    assert not torch.allclose(align(ref, src), align(torch.randn(2, 4, 6, 6), src))


def test_plain_alignment_ablation_has_no_offsets():
    align = DeformableAlignment(4, deformable=False)
    assert not hasattr(align, "offset_net")
    assert isinstance(align.conv, torch.nn.Conv2d)


@pytest.mark.parametrize("deformable", [True, False])
def test_folding_the_alignment_norm_keeps_its_outputs(deformable):
    torch.manual_seed(5)
    align = DeformableAlignment(4, deformable=deformable)
    with torch.no_grad():
        align.norm.running_mean.uniform_(-1, 1)
        align.norm.running_var.uniform_(0.5, 2)
        align.norm.weight.uniform_(0.5, 1.5)
        align.norm.bias.uniform_(-1, 1)
        if deformable:  # offsets and masks away from their zero start
            align.offset_net[1].weight.normal_(0, 0.3)
    align.eval()
    ref, src = torch.randn(2, 4, 6, 6), torch.randn(2, 4, 6, 6)
    before = align(ref, src)
    fold_batchnorm(align)
    assert isinstance(align.norm, torch.nn.Identity) and align.conv.bias is not None
    torch.testing.assert_close(align(ref, src), before, atol=1e-5, rtol=1e-5)
