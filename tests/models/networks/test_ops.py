"""Plain-torch sampling and deformable convolution against reference values."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from models.networks.ops import ModulatedDeformConv2d, fold_batchnorm, sample_points, soft_argmax


def test_sample_points_hits_pixel_centres_and_interpolates():
    # value = 4 * row + col; pixel (row 1, col 2) has its centre at (2.5, 1.5), and halfway to
    # the next centre (3.5, 1.5) the sample is the mean of 6 and 7
    square = torch.arange(16.0).view(1, 1, 4, 4)
    out = sample_points(square, torch.tensor([[[2.5, 1.5], [3.0, 1.5], [0.5, 0.5]]]), extent=4.0)
    torch.testing.assert_close(out[0, 0], torch.tensor([6.0, 6.5, 0.0]))
    # the same points given in crop pixels of a crop 8x larger land on the same samples
    out8 = sample_points(square, torch.tensor([[[20.0, 12.0], [24.0, 12.0], [4.0, 4.0]]]), extent=32.0)
    torch.testing.assert_close(out8, out)


def test_deformable_conv_with_zero_offsets_is_a_plain_conv():
    torch.manual_seed(0)
    dcn = ModulatedDeformConv2d(3, 5, 3)
    x = torch.randn(2, 3, 7, 6)
    offset = torch.zeros(2, 18, 7, 6)
    mask = torch.ones(2, 9, 7, 6)
    torch.testing.assert_close(dcn(x, offset, mask), F.conv2d(x, dcn.weight, padding=1), atol=1e-5, rtol=1e-5)


def test_deformable_conv_integer_offset_shifts_and_mask_scales():
    torch.manual_seed(1)
    dcn = ModulatedDeformConv2d(2, 2, 3)
    x = torch.randn(1, 2, 8, 8)
    offset = torch.zeros(1, 18, 8, 8)
    offset[:, 0::2] = 1.0  # every tap samples one pixel to the right
    shifted = torch.roll(x, shifts=-1, dims=3)
    shifted[..., -1] = 0.0  # beyond the border: zeros, like zero padding
    expected = F.conv2d(shifted, dcn.weight, padding=1)
    out = dcn(x, offset, torch.full((1, 9, 8, 8), 0.5))
    # column 0 differs on purpose: its left tap lands on x[..., 0], which the shifted copy pads away
    torch.testing.assert_close(out[..., 1:], 0.5 * expected[..., 1:], atol=1e-5, rtol=1e-5)


def test_soft_argmax_of_a_peaked_map_is_the_cell_centre_in_frame_units():
    logits = torch.full((1, 1, 4, 4), -50.0)
    logits[0, 0, 1, 3] = 50.0  # row 1, col 3
    xy, prob = soft_argmax(logits, extent=32.0)  # cells of 8 px: centre (3.5 * 8, 1.5 * 8)
    torch.testing.assert_close(xy[0, 0], torch.tensor([28.0, 12.0]))
    assert torch.isclose(prob.sum(), torch.tensor(1.0))
    # two equal peaks: the position is their midpoint (sub-pixel)
    logits[0, 0, 1, 1] = 50.0
    xy, _ = soft_argmax(logits, extent=32.0)
    torch.testing.assert_close(xy[0, 0], torch.tensor([20.0, 12.0]))


def test_fold_batchnorm_keeps_outputs():
    torch.manual_seed(2)
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4), nn.ReLU())
    net[1].running_mean.uniform_(-1, 1)
    net[1].running_var.uniform_(0.5, 2)
    net[1].weight.data.uniform_(0.5, 1.5)
    net[1].bias.data.uniform_(-1, 1)
    net.eval()
    x = torch.randn(2, 3, 5, 5)
    before = net(x)
    fold_batchnorm(net)
    assert isinstance(net[1], nn.Identity)
    torch.testing.assert_close(net(x), before, atol=1e-5, rtol=1e-5)


def test_deformable_conv_training_and_inference_paths_agree():
    torch.manual_seed(4)
    dcn = ModulatedDeformConv2d(4, 3, 3, bias=True)
    x = torch.randn(2, 4, 5, 6)
    offset = torch.randn(2, 18, 5, 6)
    mask = torch.rand(2, 9, 5, 6)
    trained_path = dcn(x, offset, mask)
    with torch.no_grad():
        inference_path = dcn(x, offset, mask)
    torch.testing.assert_close(trained_path.detach(), inference_path, atol=1e-5, rtol=1e-5)


def test_deformable_conv_base_grid_is_built_once_and_trains_after_serving():
    torch.manual_seed(5)
    dcn = ModulatedDeformConv2d(2, 3, 3)
    x, offset, mask = torch.randn(1, 2, 5, 6), torch.randn(1, 18, 5, 6), torch.rand(1, 9, 5, 6)
    with torch.inference_mode():  # serving fills the cache first
        served = dcn(x, offset, mask)
    assert list(dcn._base_grids) == [(5, 6, torch.float32, torch.device("cpu"))]
    base, scale = dcn.base_grid(5, 6, x)
    # tap (-1, -1) of pixel (row 0, col 0) sits at (-0.5, -0.5) px: (-0.5 * 2 / 6 - 1, -0.5 * 2 / 5 - 1)
    torch.testing.assert_close(base[0, 0, 0], torch.tensor([-1.0 - 1.0 / 6.0, -1.0 - 1.0 / 5.0]))
    torch.testing.assert_close(scale, torch.tensor([2.0 / 6.0, 2.0 / 5.0]))
    # the cached grid is a plain tensor: training through it afterwards has gradients
    offset.requires_grad_(True)
    trained = dcn(x, offset, mask)
    trained.sum().backward()
    assert offset.grad is not None and torch.isfinite(offset.grad).all()
    torch.testing.assert_close(trained.detach(), served)
