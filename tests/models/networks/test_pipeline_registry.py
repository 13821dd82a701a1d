"""The registry builds every method; the pipeline trains in one backward pass; checkpoints rebuild."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from models.networks.checkpoint import atomic_save, build_checkpoint, load_checkpoint
from models.networks.dcanet import DCANet
from models.networks.mstgcn import MSTGCN
from models.networks.perceptual import PerceptualNet
from models.networks.pipeline import ClassroomPipeline
from models.networks.registry import METHODS, create_model, list_models, method_config
from models.training.losses import LossConfig, MultiTaskLoss
from services.common.vocabulary import NUM_KEYPOINTS

TINY = {
    "crop_size": 32,
    "fusion_channels": 8,
    "feature_dim": 8,
    "recognition_channels": [8, 8],
    "keypoints": {"widths": [8, 16]},
    "enhancement": "identity",
}


class LearnableGain(nn.Module):
    """Stand-in for the torch enhancement: one learnable gain on the colour crop."""

    learnable = True

    def __init__(self) -> None:
        super().__init__()
        self.gain = nn.Parameter(torch.tensor(2.0))

    def forward(self, colour: torch.Tensor) -> torch.Tensor:
        return (colour * self.gain).clamp(0, 1)


def tiny_batch(b: int = 2, t: int = 4, size: int = 32):
    g = torch.Generator().manual_seed(0)
    keypoints = torch.rand(b, t, NUM_KEYPOINTS, 3, generator=g) * size
    keypoints[..., 2] = 1.0
    return {
        "crops": torch.rand(b, t, 6, size, size, generator=g),
        "reference": torch.rand(b, t, 3, size, size, generator=g),
        "keypoints": keypoints,
        "label": torch.tensor([1, 7])[:b],
        "occupied": torch.ones(b, t),
    }


@pytest.mark.parametrize("method", sorted(METHODS))
def test_every_method_trains_one_step(method):
    torch.manual_seed(0)
    model = create_model(method, **TINY)
    assert isinstance(model, ClassroomPipeline) and model.method == method
    batch = tiny_batch()
    out = model(batch["crops"])
    assert out.logits.shape == (2, 10)
    terms = MultiTaskLoss(LossConfig(**model.config["loss"]))(out, batch)
    terms.total.backward()
    assert model.recognition.classifier.weight.grad.abs().sum() > 0
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.fusion.parameters())


def test_end_to_end_gradient_reaches_the_enhancement():
    torch.manual_seed(0)
    model = create_model("proposed", **TINY)
    model.enhancement = LearnableGain()
    batch = tiny_batch()
    out = model(batch["crops"])
    assert out.enhanced is not None
    loss = MultiTaskLoss(LossConfig(), PerceptualNet())
    terms = loss(out, batch)
    assert {"L_enh", "L_fus", "L_rec"} <= set(terms.parts)
    terms.total.backward()
    assert model.enhancement.gain.grad is not None and model.enhancement.gain.grad != 0


class FixedHalving(nn.Module):
    """A fixed (non-learnable) enhancement, like the baselines' Retinex."""

    learnable = False

    def forward(self, colour: torch.Tensor) -> torch.Tensor:
        return colour * 0.5


def test_fixed_enhancement_is_applied_but_not_a_loss():
    torch.manual_seed(0)
    model = create_model("retinex_concat_gcn", **TINY).eval()
    crops = tiny_batch()["crops"]
    with torch.no_grad():
        plain = model(crops)
        model.enhancement = FixedHalving()
        halved = model(crops)
        manual = crops.clone()
        manual[:, :, :3] *= 0.5
        model.enhancement = FixedHalving()
        expected = model.forward_fusion(manual.flatten(0, 1), enhance=False)
    assert halved.enhanced is None
    assert not torch.allclose(halved.logits, plain.logits)
    torch.testing.assert_close(halved.node_features, expected.node_features)


def test_method_configs_follow_the_tables():
    assert method_config("no_multidilation")["recognition"]["dilations"] == [1, 1, 1]
    assert method_config("proposed")["recognition"]["dilations"] == [1, 2, 4]
    assert method_config("no_deformable")["fusion"] == {"channels": 16, "name": "dcanet", "deformable": False}
    assert method_config("no_adaptive_loss")["loss"] == {"adaptive": False}
    assert method_config("no_multiscale_weights")["enhancement"] == "single_scale_gf"
    chain = [method_config(m) for m in ("table4_baseline", "table4_mswgf", "table4_mswgf_dcanet", "proposed")]
    assert [c["enhancement"] for c in chain] == ["conventional", "mswgf", "mswgf", "mswgf"]
    assert [c["fusion"]["name"] for c in chain] == ["concat_fusion", "concat_fusion", "dcanet", "dcanet"]
    assert [c["recognition"]["name"] for c in chain] == ["stgcn", "stgcn", "stgcn", "mstgcn"]
    model = create_model("no_deformable", **TINY)
    assert not model.fusion.align_depth.deformable


def test_components_and_unknown_names():
    assert isinstance(create_model("dcanet", channels=8), DCANet)
    assert isinstance(create_model("mstgcn", feature_dim=4), MSTGCN)
    assert "proposed" in list_models() and "dcanet" in list_models()
    with pytest.raises(KeyError, match="unknown method"):
        create_model("resnet50")


def test_checkpoint_round_trip(tmp_path):
    torch.manual_seed(0)
    model = create_model("proposed", **TINY).eval()
    path = tmp_path / "model.pt"
    atomic_save(build_checkpoint(model, training={"note": "test"}, dataset_id="unit", window_frames=4), path)
    data = load_checkpoint(path)
    assert data["method"] == "proposed" and data["crop_size"] == 32 and data["feature_dim"] == 8
    again = create_model("proposed", checkpoint=path).eval()
    crops = tiny_batch()["crops"]
    with torch.inference_mode():
        torch.testing.assert_close(again(crops).logits, model(crops).logits)
    with pytest.raises(ValueError, match="holds method"):
        create_model("no_deformable", checkpoint=path)
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="not a readable checkpoint"):
        load_checkpoint(tmp_path / "junk.pt")
