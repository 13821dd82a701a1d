"""``classroom train-occupancy``: overlapping training and validation seeds are refused."""

from __future__ import annotations

from services.cli.main import main as classroom


def test_train_occupancy_refuses_overlapping_seeds(capsys) -> None:
    assert classroom(["train-occupancy", "--train-seeds", "1-5", "--val-seeds", "5-6"]) == 2
    assert "overlap" in capsys.readouterr().err
