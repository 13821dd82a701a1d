"""``classroom export``: untrained weights export, a missing checkpoint is a clear error."""

from __future__ import annotations

from services.cli.main import main


def test_export_cli(tmp_path, capsys):
    assert main(["export", "--out", str(tmp_path / "r.onnx")]) == 0
    assert (tmp_path / "r.onnx").stat().st_size > 10_000
    assert "untrained-proposed" in capsys.readouterr().out
    assert main(["export", "--out", str(tmp_path / "x.onnx"), "--checkpoint", str(tmp_path / "none.pt")]) == 2
