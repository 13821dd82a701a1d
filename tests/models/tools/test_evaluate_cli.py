"""``classroom evaluate``: a run end to end on an untrained checkpoint, and no checkpoint at all."""

from __future__ import annotations

import json

import torch

from models.networks.checkpoint import atomic_save, build_checkpoint
from models.networks.registry import create_model
from services.cli.main import main


def test_evaluate_end_to_end_on_an_untrained_checkpoint(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CLASSROOM_CROP_CACHE", str(tmp_path / "crops"))
    monkeypatch.setenv("CLASSROOM_DATASET_CACHE", "off")
    torch.manual_seed(0)
    model = create_model("proposed", crop_size=32)
    run = tmp_path / "runs" / "proposed"
    run.mkdir(parents=True)
    atomic_save(build_checkpoint(model, training={}, dataset_id="unit", window_frames=16), run / "model.pt")
    out = tmp_path / "eval"
    status = main(
        [
            "evaluate",
            "--data",
            "sim:tiny",
            "--runs",
            str(tmp_path / "runs"),
            "--out",
            str(out),
            "--limit",
            "1",
            "--fps-repeats",
            "1",
            "--fps-students",
            "2",
            "--workers",
            "1",
            "--no-robustness",
        ]
    )
    assert status == 0
    report = json.loads((out / "results.json").read_text())
    result = report["methods"]["proposed"]
    assert result["samples"] == 1 and result["top1"] in (0.0, 100.0)
    assert result["fps"] > 0 and result["quality_frames"] >= 4
    assert "| `no_deformable` | missing |" in (out / "results.md").read_text()
    errors = result["keypoint_error_px"]
    assert set(errors) == {"all points", "in view", "hidden"}
    for subset in errors.values():
        assert set(subset) == {"head", "neck, chest, shoulders", "elbows", "wrists", "hands", "all"}
    assert 0 < errors["all points"]["all"] < 32 * 1.5  # within a 32 px crop's diagonal
    # all points = in view + hidden: the overall mean lies between the two
    low, high = sorted([errors["in view"]["all"], errors["hidden"]["all"]])
    assert low <= errors["all points"]["all"] <= high
    assert 0 < result["heatmap_peak"] <= 1.0
    # how often the confidence tells in view from hidden as the annotation does, per joint group
    accuracy = result["seen_accuracy"]
    assert set(accuracy) == set(errors["hidden"]) and all(0 <= v <= 100 for v in accuracy.values())
    markdown = (out / "results.md").read_text()
    assert "## Keypoint error (crop px" in markdown and "| `proposed` | seen/hidden right (%) |" in markdown


def test_evaluate_without_checkpoints_says_how_to_train(tmp_path, capsys):
    assert main(["evaluate", "--runs", str(tmp_path)]) == 2
    assert "classroom train" in capsys.readouterr().err


def test_one_checkpoint_beside_other_runs_writes_the_results_and_no_card(tmp_path, capsys, monkeypatch):
    """--checkpoint C with --runs of other methods: the tables are written, the quality card (one
    checkpoint's) is not, and the run says why instead of ending in a traceback."""
    from argparse import Namespace

    import models.evaluation.evaluate as tables
    from models.tools.evaluate import _write_report

    # the tables themselves are tested above
    monkeypatch.setattr(tables, "render_markdown", lambda report: "| method |\n")
    checkpoint = tmp_path / "model.pt"
    checkpoint.write_bytes(b"weights")
    report = {"methods": {"proposed": {"top1": 0.8}, "gcn": {"top1": 0.6}}}
    _write_report(Namespace(out=tmp_path / "out", checkpoint=[checkpoint]), report)
    printed = capsys.readouterr().out
    assert (tmp_path / "out" / "results.json").is_file() and (tmp_path / "out" / "results.md").is_file()
    assert not (tmp_path / "out" / "model.quality.json").exists()
    assert "the results hold 2 evaluated methods" in printed and "without --runs" in printed
