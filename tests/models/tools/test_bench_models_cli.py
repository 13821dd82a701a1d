"""``classroom bench models``: the eager and the optimised per-crop stage timed side by side in one
run, with what each form was and how long the optimised one took to build."""

from __future__ import annotations

import json

from services.cli.main import main


def test_both_forms_side_by_side(tmp_path, capsys):
    out = tmp_path / "models.json"
    args = ["bench", "models", "--crop-size", "32", "--seats", "3", "--width", "160", "--height", "90"]
    args += ["--fuse-batches", "1,2", "--recognise-batches", "2", "--repeats", "1", "--devices", "cpu"]
    assert main([*args, "--forms", "eager,optimised", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    eager, optimised = json.loads(out.read_text())
    assert (eager["form"], eager["crop_stage"], eager["warmup_s"]) == ("eager", "eager", 0.0)
    assert optimised["form"] == "optimised" and optimised["crop_stage"].startswith("TorchScript")
    assert optimised["warmup_s"] > 0 and optimised["crop_size"] == 32 and optimised["threads"] == 1
    for result in (eager, optimised):
        assert [row["frame_sets"] for row in result["fuse"]] == [1, 2]
        assert [row["windows"] for row in result["recognise"]] == [2]
    assert "cpu optimised/eager" in printed and "per-crop stage TorchScript" in printed


def test_an_unknown_form_is_refused(capsys):
    assert main(["bench", "models", "--forms", "compiled", "--devices", "cpu"]) == 2
    assert "--forms: compiled; choose from optimised, eager" in capsys.readouterr().out
