"""Agreement of the behaviour events a running pipeline wrote with the simulator's ground truth.

The capture agent writes the exact ground truth of every simulated frame set it publishes
(``CAPTURE_GROUND_TRUTH_OUT``, one JSON line per frame set: session, capture time, and per
student the behaviour label). An event covers one student over ``[window_start, window_end]``;
its ground truth is the label that student held for most of the frames captured in that
span. Agreement = events whose label equals that label / events that have ground truth.
Windows in which the true behaviour changed are reported separately (``stable`` counts only
windows with one true label throughout), since a window that straddles a switch has no single
right answer.

    classroom agreement --database-url sqlite:///var/demo/classroom.db --ground-truth var/demo/ground_truth.jsonl
"""

from __future__ import annotations

import argparse
import bisect
import json
import sys
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from services.common.db import as_utc

if TYPE_CHECKING:  # imported where used: sqlmodel's tables load only when a store is read
    from services.common.db.models import BehaviourEvent


@dataclass(frozen=True)
class TruthTrack:
    """One student's true labels over time, sorted by capture time (microseconds)."""

    times_us: list[int]
    labels: list[str]

    def labels_between(self, start_us: int, end_us: int) -> list[str]:
        lo = bisect.bisect_left(self.times_us, start_us)
        hi = bisect.bisect_right(self.times_us, end_us)
        return self.labels[lo:hi]


def load_ground_truth(path: Path) -> dict[tuple[str, str], TruthTrack]:
    """(session id, student id) -> the student's labels over time; bad lines are counted, not fatal."""
    rows: dict[tuple[str, str], list[tuple[int, str]]] = defaultdict(list)
    bad = 0
    with path.open() as lines:
        for line in lines:
            try:
                record = json.loads(line)
                session, ts = str(record["session_id"]), int(record["capture_ts_us"])
                for student in record.get("students", []):
                    if student.get("label") and not student.get("extra", False):
                        rows[(session, str(student["student_id"]))].append((ts, str(student["label"])))
            except (ValueError, KeyError, TypeError):
                bad += 1  # a torn last line after a crash, for instance
    if bad:
        print(f"agreement: skipped {bad} unreadable ground-truth line(s) in {path}", file=sys.stderr)
    tracks = {}
    for key, values in rows.items():
        values.sort()
        tracks[key] = TruthTrack([t for t, _ in values], [label for _, label in values])
    return tracks


def _us(moment: datetime) -> int:
    return round(as_utc(moment).timestamp() * 1_000_000)


def measure_agreement(
    database_url: str, ground_truth: Path, *, session_ids: Iterable[str] | None = None
) -> dict:
    """Agreement figures (module docstring) of every event in the store that has ground truth,
    or only of the events of ``session_ids``."""
    tracks = load_ground_truth(ground_truth)
    tally = _Tally()
    for event in _stored_events(database_url, session_ids):
        track = tracks.get((event.session_id, event.student_id))
        truth = track.labels_between(_us(event.window_start), _us(event.window_end)) if track else []
        tally.add(event, truth)
    return tally.figures()


def _stored_events(database_url: str, session_ids: Iterable[str] | None) -> Sequence[BehaviourEvent]:
    """Every behaviour event in the store, or those of ``session_ids``."""
    from sqlmodel import Session, col, select

    from services.common.db.engine import make_engine
    from services.common.db.models import BehaviourEvent

    engine = make_engine(database_url)
    try:
        with Session(engine) as session:
            query = select(BehaviourEvent)
            if session_ids is not None:
                query = query.where(col(BehaviourEvent.session_id).in_(sorted(set(session_ids))))
            return session.exec(query).all()
    finally:
        engine.dispose()


@dataclass
class _Tally:
    """Counts of scored events and agreeing ones: overall, per true behaviour, in stable windows."""

    totals: Counter = field(default_factory=Counter)
    per_class: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))
    per_class_stable: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))
    versions: set[str] = field(default_factory=set)

    def add(self, event: BehaviourEvent, truth: list[str]) -> None:
        """One event against the true labels of its student over its window (none: not scored)."""
        totals = self.totals
        totals["events"] += 1
        if not truth:
            totals["without_truth"] += 1
            return
        self.versions.add(f"{event.model_version} ({'trained' if event.model_trained else 'UNTRAINED'})")
        majority, count = Counter(truth).most_common(1)[0]
        stable = count == len(truth)
        hit = event.label == majority
        totals["scored"] += 1
        totals["agree"] += hit
        totals["stable"] += stable
        totals["stable_agree"] += hit and stable
        self.per_class[majority]["n"] += 1
        self.per_class[majority]["agree"] += hit
        if stable:
            self.per_class_stable[majority]["n"] += 1
            self.per_class_stable[majority]["agree"] += hit

    def figures(self) -> dict:
        totals = self.totals

        def rate(a: int, b: int) -> float | None:
            return round(a / b, 4) if b else None

        return {
            "events": totals["events"],
            "scored": totals["scored"],
            "without_ground_truth": totals["without_truth"],
            "agreement": rate(totals["agree"], totals["scored"]),
            "stable_windows": totals["stable"],
            "agreement_stable_windows": rate(totals["stable_agree"], totals["stable"]),
            "per_class": {
                label: {"n": c["n"], "agreement": rate(c["agree"], c["n"])}
                for label, c in sorted(self.per_class.items())
            },
            # per true behaviour, windows with that one behaviour throughout
            "per_class_stable": {
                label: {"n": c["n"], "agreement": rate(c["agree"], c["n"])}
                for label, c in sorted(self.per_class_stable.items())
            },
            "model_versions": sorted(self.versions),
        }


def print_agreement(result: dict) -> None:
    if not result["scored"]:
        print(f"  agreement with ground truth: no event to score ({result['events']} events)")
        return
    print(
        f"  agreement with ground truth: {100 * result['agreement']:.1f}% of {result['scored']} events "
        f"({100 * (result['agreement_stable_windows'] or 0):.1f}% of {result['stable_windows']} windows "
        f"with one true behaviour); model {', '.join(result['model_versions'])}"
    )
    stable = result.get("per_class_stable") or {}
    if stable:
        rows = ", ".join(
            f"{label} {100 * (c['agreement'] or 0):.0f}% of {c['n']}" for label, c in stable.items()
        )
        print(f"  per behaviour, windows with one true behaviour: {rows}")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--database-url", default="sqlite:///var/demo/classroom.db")
    parser.add_argument("--ground-truth", type=Path, default=Path("var/demo/ground_truth.jsonl"))
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")


def run(args: argparse.Namespace) -> int:
    from sqlalchemy.exc import SQLAlchemyError

    if not args.ground_truth.is_file():
        print(f"classroom agreement: {args.ground_truth}: no such ground-truth file", file=sys.stderr)
        return 2
    try:
        result = measure_agreement(args.database_url, args.ground_truth)
    except SQLAlchemyError as exc:
        print(f"classroom agreement: cannot read events from {args.database_url}: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print_agreement(result)
        for label, figures in result["per_class"].items():
            print(f"    {label:<22} {figures['n']:>5} events  {100 * (figures['agreement'] or 0):5.1f}%")
    return 0
