"""``classroom probe``: a missing checkpoint is a clear error."""

from __future__ import annotations

from services.cli.main import main


def test_probe_command_reports_a_missing_checkpoint(tmp_path, capsys):
    assert main(["probe", "--checkpoint", str(tmp_path / "nope.pt"), "--data", "toy:8"]) == 2
    assert "classroom probe:" in capsys.readouterr().err
