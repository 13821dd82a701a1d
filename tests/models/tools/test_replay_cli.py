"""``classroom replay``: clear errors for a session shorter than a window, a missing checkpoint,
an unknown data set."""

from __future__ import annotations

import argparse

from models.tools import replay


def test_a_session_shorter_than_a_window_is_a_clear_error(capsys) -> None:
    parser = argparse.ArgumentParser()
    replay.add_arguments(parser)
    assert replay.run(parser.parse_args(["--seconds", "1", "--students", "1"])) == 2
    assert "shorter than one" in capsys.readouterr().out


def test_missing_checkpoint_is_a_clear_error(capsys, tmp_path) -> None:
    parser = argparse.ArgumentParser()
    replay.add_arguments(parser)
    code = replay.run(parser.parse_args(["--checkpoint", str(tmp_path / "none.pt"), "--seconds", "3"]))
    assert code == 2 and "classroom replay" in capsys.readouterr().out


def test_replay_of_an_unknown_data_set_is_a_clear_error(capsys, tmp_path) -> None:
    parser = argparse.ArgumentParser()
    replay.add_arguments(parser)
    assert replay.run(parser.parse_args(["--data", str(tmp_path / "nowhere")])) == 2
    assert "classroom replay" in capsys.readouterr().out
