"""The student x time view's cells (dashboards/behaviour_grid.py), against hand-computed values."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from dashboards.behaviour_grid import MAX_COLUMNS, column_seconds, grid_cells, low_confidence_share

T0 = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)


def spans(*rows: tuple[str, int, int, str, float]) -> pd.DataFrame:
    """(student, start s, end s, behaviour, confidence) after T0."""
    return pd.DataFrame(
        {
            "student": [r[0] for r in rows],
            "start": pd.to_datetime([T0 + timedelta(seconds=r[1]) for r in rows], utc=True),
            "end": pd.to_datetime([T0 + timedelta(seconds=r[2]) for r in rows], utc=True),
            "behaviour": [r[3] for r in rows],
            "confidence": [r[4] for r in rows],
        }
    )


def test_column_width_fits_the_session_in_whole_seconds():
    assert column_seconds(timedelta(minutes=2)) == 1  # 120 s in 240 columns: one second each
    assert column_seconds(timedelta(minutes=90)) == 23  # ceil(5400 / 240)
    assert column_seconds(timedelta(0)) == 1
    assert MAX_COLUMNS == 240


def test_an_event_counts_in_every_column_it_overlaps_and_the_longest_behaviour_wins():
    events = spans(
        ("alice", 30, 90, "phone_usage", 0.4),  # 30 s in column 0, 30 s in column 1
        ("alice", 90, 120, "attentive_listening", 0.9),  # 30 s in column 1: a tie with phone
        ("bob", 0, 10, "hand_raising", 0.7),
        ("bob", 10, 50, "note_taking", 0.8),  # 40 s of column 0
        ("bob", 50, 60, "note_taking", 0.2),  # 10 s more: note taking, (40*0.8 + 10*0.2) / 50
    )
    cells = grid_cells(events, origin=T0, width=60, low_below=0.5).set_index(["student", "column"])
    assert cells.loc[("alice", 0), "behaviour"] == "phone_usage"
    assert cells.loc[("alice", 0), "seconds"] == pytest.approx(30)
    assert cells.loc[("alice", 0), "low"]  # 0.4 < 0.5
    # a tie goes to the behaviour earlier in the paper's order (listening 4 before phone 5)
    assert cells.loc[("alice", 1), "behaviour"] == "attentive_listening"
    assert cells.loc[("alice", 1), "seconds"] == pytest.approx(60)
    assert not cells.loc[("alice", 1), "low"]
    assert cells.loc[("bob", 0), "behaviour"] == "note_taking"
    assert cells.loc[("bob", 0), "confidence"] == pytest.approx((40 * 0.8 + 10 * 0.2) / 50)
    assert cells.loc[("bob", 0), "start"] == pd.Timestamp(T0)
    assert cells.loc[("bob", 0), "end"] == pd.Timestamp(T0 + timedelta(seconds=60))
    assert len(cells) == 3


def test_the_order_of_the_events_does_not_change_the_cells():
    events = spans(
        ("alice", 0, 30, "phone_usage", 0.6),
        ("alice", 30, 60, "attentive_listening", 0.9),
        ("carol", 5, 7, "drinking_water", 0.3),
    )
    forward = grid_cells(events, origin=T0, width=60, low_below=0.5)
    backward = grid_cells(events.iloc[::-1].reset_index(drop=True), origin=T0, width=60, low_below=0.5)
    pd.testing.assert_frame_equal(forward, backward)


def test_no_events_no_cells():
    assert grid_cells(spans(), origin=T0, width=1, low_below=0.5).empty


def test_low_confidence_share_per_student():
    events = spans(
        ("alice", 0, 4, "phone_usage", 0.3),
        ("alice", 4, 8, "phone_usage", 0.7),
        ("bob", 0, 4, "note_taking", 0.9),
    )
    assert low_confidence_share(events, 0.5).to_dict() == {"alice": 0.5, "bob": 0.0}
