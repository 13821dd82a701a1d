"""``classroom train``: a toy run end to end, unknown methods and data, the crop-size override."""

from __future__ import annotations

import torch

from services.cli.main import main


def test_cli(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(
        [
            "train",
            "--data",
            "toy:4:4:32",
            "--epochs",
            "1",
            "--batch-size",
            "4",
            "--enhancement",
            "identity",
            "--method",
            "no_multidilation",
            "--out",
            str(out),
            "--no-progress",
        ]
    )
    assert code == 0 and (out / "model.pt").is_file()
    assert '"method": "no_multidilation"' in capsys.readouterr().out
    assert main(["train", "--data", "toy:4", "--method", "nope"]) == 2
    assert main(["train", "--data", str(tmp_path / "no-such-folder"), "--out", str(tmp_path / "x")]) == 2


def test_cli_crop_size_override(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["train", "--data", "toy:4:4", "--epochs", "1", "--batch-size", "4", "--enhancement", "identity"]
    assert main([*args, "--crop-size", "48", "--out", str(out), "--no-progress"]) == 0
    assert torch.load(out / "model.pt", map_location="cpu", weights_only=False)["crop_size"] == 48
    assert main([*args, "--crop-size", "50", "--out", str(tmp_path / "bad")]) == 2
    assert "multiple of 16" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()


def test_staged_recipe_refuses_bad_data_before_writing_anything(tmp_path, capsys):
    for data, reason in (
        ("sim:nope", "unknown preset 'nope'"),
        (str(tmp_path / "empty"), "manifest.json: missing"),
    ):
        (tmp_path / "empty").mkdir(exist_ok=True)
        out = tmp_path / "run"
        assert main(["train", "--recipe", "staged", "--data", data, "--out", str(out), "--no-progress"]) == 2
        err = capsys.readouterr().err
        assert reason in err and len(err.strip().splitlines()) == 1
        assert not out.exists()
        # the same for a data set given with --extra-train
        staged = ["train", "--recipe", "staged", "--data", "sim:crowd_tiny", "--extra-train", data]
        assert main([*staged, "--out", str(out), "--no-progress"]) == 2
        err = capsys.readouterr().err
        assert reason in err and len(err.strip().splitlines()) == 1
        assert not out.exists()
    assert (
        main(["train", "--recipe", "staged", "--stages", "front_end,nope", "--out", str(tmp_path / "r")]) == 2
    )
    assert "--stages" in capsys.readouterr().err
    windows = ["train", "--recipe", "staged", "--finetune-windows", "0", "--out", str(tmp_path / "w")]
    assert main(windows) == 2
    assert "--finetune-windows 0: at least 1" in capsys.readouterr().err
    assert not (tmp_path / "w").exists()
