"""Long commands show rate and time left: a bar on a terminal, plain lines in a log."""

from __future__ import annotations

import io

from services.common.progress import PlainProgress, progress_bar


def test_plain_lines_every_interval_with_rate_and_time_left():
    now = [0.0]
    out = io.StringIO()
    bar = PlainProgress(
        total=100, desc="train windows", unit="window", every_s=10, file=out, clock=lambda: now[0]
    )
    for _ in range(20):
        now[0] += 1.0
        bar.update(2)  # 2 windows a second
    bar.close()
    lines = out.getvalue().splitlines()
    assert lines == [
        "train windows: 20/100 window (2.00/s, 0:40 left)",
        "train windows: 40/100 window (2.00/s, 0:30 left)",
        "train windows: 40/100 window (2.00/s, 0:30 left)",
    ]
    bar.close()  # closing twice prints nothing more
    assert len(out.getvalue().splitlines()) == 3


def test_iteration_finishes_with_a_done_line(capsys):
    items = list(PlainProgress(range(3), desc="epochs", unit="epoch", every_s=3600))
    assert items == [0, 1, 2]
    err = capsys.readouterr().err.strip()
    assert err.startswith("epochs: 3/3 epoch (") and "done in 0:00" in err


def test_not_a_terminal_gets_plain_lines_and_disable_gets_nothing(capsys):
    bar = progress_bar(total=2, desc="x")  # pytest's stderr is not a terminal
    assert isinstance(bar, PlainProgress)
    bar.update(2)
    bar.close()
    assert "x: 2/2 it (" in capsys.readouterr().err
    quiet = progress_bar(total=2, desc="y", disable=True)
    quiet.update(2)
    quiet.close()
    assert capsys.readouterr().err == ""
