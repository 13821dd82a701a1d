"""``classroom simulate`` end to end (small sizes)."""

from __future__ import annotations

import cv2

from services.cli.main import main
from services.dataset.check import check_dataset
from services.dataset.reader import FolderDataset


def test_simulate_writes_a_data_set_that_checks_clean(tmp_path):
    out = tmp_path / "tiny"
    assert (
        main(["simulate", "--preset", "tiny", "--limit", "1", "--splits", "train,test", "--out", str(out)])
        == 0
    )
    report = check_dataset(out, deep=True)
    assert report.ok, report.problems
    ds = FolderDataset(out)
    assert [w.clip_id for w in ds.windows("train")] == ["train-00000"]
    assert len(ds.samples("train")) == 4  # every train subject is in every train window


def test_simulate_session_and_preview(tmp_path):
    out = tmp_path / "session"
    sheet = tmp_path / "sheet.png"
    args = ["simulate", "--session", "2.5", "--fps", "8", "--students", "6", "--conditions", "low_light"]
    assert main([*args, "--out", str(out), "--preview", str(sheet), "--no-references"]) == 0
    ds = FolderDataset(out)
    (clip,) = ds.clip_ids()
    assert ds.clip_info(clip).frames == 20
    assert len(ds.windows("test")) == 1  # 20 frames at 8 fps hold one 16-frame window
    image = cv2.imread(str(sheet))
    assert image.shape == (810, 1920, 3)


def test_simulate_refuses_nonsense(capsys):
    assert main(["simulate"]) == 2
    assert main(["simulate", "--preset", "huge", "--out", "/nonexistent/x"]) == 2
    assert "unknown preset" in capsys.readouterr().err
