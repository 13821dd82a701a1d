"""Agreement of stored events with the simulator's ground truth, on hand-built data."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import Session

from services.cli.agreement import load_ground_truth, measure_agreement
from services.cli.main import main
from services.common.db.engine import make_engine
from services.common.db.models import BehaviourEvent
from services.common.db.schema import upgrade_schema

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


def us(seconds: float) -> int:
    return round((T0 + timedelta(seconds=seconds)).timestamp() * 1e6)


def write_truth(path, rows):
    """rows: (seconds, {student: label}) -> one JSON line per frame set, as the capture agent writes."""
    with path.open("w") as out:
        for seconds, labels in rows:
            record = {
                "session_id": "sess-1",
                "classroom_id": "room-101",
                "capture_ts_us": us(seconds),
                "students": [
                    {"student_id": s, "label": label, "extra": s.startswith("extra")}
                    for s, label in labels.items()
                ],
            }
            out.write(json.dumps(record) + "\n")
        out.write('{"torn line')  # a crash mid-write leaves a partial last line


def event(event_id: str, student: str, start: float, end: float, label: str) -> BehaviourEvent:
    return BehaviourEvent(
        event_id=event_id,
        created_at=T0,
        session_id="sess-1",
        classroom_id="room-101",
        student_id=student,
        window_start=T0 + timedelta(seconds=start),
        window_end=T0 + timedelta(seconds=end),
        segment_start=T0 + timedelta(seconds=start),
        segment_end=T0 + timedelta(seconds=end),
        label=label,
        confidence=0.9,
        top5="[]",
        attention="{}",
        model_version="proposed@abc",
        model_trained=True,
    )


@pytest.fixture
def store(tmp_path):
    url = f"sqlite:///{tmp_path / 'events.db'}"
    engine = make_engine(url)
    upgrade_schema(engine)
    truth = tmp_path / "truth.jsonl"
    # S01 writes for 0-2 s then raises a hand; S02 listens throughout; an extra is never scored
    rows = []
    for k in range(41):  # 10 frame sets per second for 4 s
        t = k / 10
        rows.append(
            (
                t,
                {
                    "S01": "head_down_writing" if t < 2.0 else "hand_raising",
                    "S02": "attentive_listening",
                    "extra-01": "phone_usage",
                },
            )
        )
    write_truth(truth, rows)
    with Session(engine) as session:
        session.add(event("e1", "S01", 0.0, 1.9, "head_down_writing"))  # right, one true label
        session.add(
            event("e2", "S01", 1.5, 2.9, "hand_raising")
        )  # 1.5-2.9: 5 writing, 10 hand-raising frames
        session.add(event("e3", "S02", 0.0, 1.9, "upright_sitting"))  # wrong
        session.add(event("e4", "S02", 2.0, 3.9, "attentive_listening"))  # right
        session.add(event("e5", "S03", 0.0, 1.9, "attentive_listening"))  # no ground truth
        session.add(event("e6", "extra-01", 0.0, 1.9, "phone_usage"))  # extras have none either
        session.commit()
    engine.dispose()
    return url, truth


def test_agreement_by_hand(store):
    url, truth = store
    result = measure_agreement(url, truth)
    assert result["events"] == 6 and result["scored"] == 4 and result["without_ground_truth"] == 2
    assert result["agreement"] == pytest.approx(3 / 4)
    # e2 straddles the switch at 2 s: only e1, e3, e4 had one true behaviour
    assert result["stable_windows"] == 3
    assert result["agreement_stable_windows"] == pytest.approx(2 / 3, abs=1e-4)  # rounded to 4 places
    assert result["per_class"]["attentive_listening"] == {"n": 2, "agreement": 0.5}
    # per class on stable windows only: e2 (majority hand raising, straddling the switch) is left out
    assert result["per_class"]["hand_raising"] == {"n": 1, "agreement": 1.0}
    assert "hand_raising" not in result["per_class_stable"]
    assert result["per_class_stable"]["head_down_writing"] == {"n": 1, "agreement": 1.0}
    assert result["model_versions"] == ["proposed@abc (trained)"]


def test_ground_truth_skips_torn_lines(store, capsys):
    _, truth = store
    tracks = load_ground_truth(truth)
    assert set(tracks) == {("sess-1", "S01"), ("sess-1", "S02")}
    assert tracks[("sess-1", "S01")].labels_between(us(1.95), us(2.05)) == ["hand_raising"]
    assert "skipped 1 unreadable" in capsys.readouterr().err


def test_command_reports_and_refuses_a_missing_file(store, tmp_path, capsys):
    url, truth = store
    assert main(["agreement", "--database-url", url, "--ground-truth", str(truth)]) == 0
    assert "75.0% of 4 events" in capsys.readouterr().out
    assert main(["agreement", "--database-url", url, "--ground-truth", str(tmp_path / "none.jsonl")]) == 2
    assert "no such ground-truth file" in capsys.readouterr().err


def test_agreement_of_some_sessions_only(store):
    url, truth = store
    assert measure_agreement(url, truth, session_ids=["sess-1"]) == measure_agreement(url, truth)
    other = measure_agreement(url, truth, session_ids=["sess-2"])
    assert other["events"] == 0 and other["scored"] == 0 and other["agreement"] is None
