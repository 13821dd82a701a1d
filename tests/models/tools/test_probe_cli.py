"""``classroom probe``: a missing checkpoint is a clear error."""

from __future__ import annotations

from services.cli.main import main


def test_probe_command_reports_a_missing_checkpoint(tmp_path, capsys):
    assert main(["probe", "--checkpoint", str(tmp_path / "nope.pt"), "--data", "toy:8"]) == 2
    assert "classroom probe:" in capsys.readouterr().err


def test_probe_command_refuses_an_unknown_keypoint_source(tmp_path, capsys):
    import pytest

    with pytest.raises(SystemExit) as exit_:
        main(["probe", "--checkpoint", str(tmp_path / "x.pt"), "--keypoints", "predicted,perfect"])
    assert exit_.value.code == 2
    assert "unknown keypoint source 'perfect'" in capsys.readouterr().err


def test_several_sources_share_one_front_end_pass():
    import torch

    from models.data.open import open_dataset
    from models.networks.registry import create_model
    from models.tools.probe import _sources
    from models.training.probe import front_end_outputs, front_end_sources

    assert _sources("predicted, seen-flags") == ("predicted", "seen-flags")
    torch.manual_seed(0)
    pipeline = create_model("proposed", untrained_config={"crop_size": 32})
    data = open_dataset("toy:4", "train", seed=0, crop_size=32)
    keypoints, features, labels = front_end_sources(pipeline, data, sources=("predicted", "exact"))
    assert set(keypoints) == {"predicted", "exact"} and len(labels) == len(features)
    alone, _, _ = front_end_outputs(pipeline, data, keypoints_from="exact")
    assert torch.allclose(keypoints["exact"], alone)
