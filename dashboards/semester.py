"""One semester of synthetic behaviour events for a whole campus, written through the store's code.

What it generates (``SemesterPlan``; the defaults are the benchmark's data set):
50 classrooms, 4 sessions a day, 5 days a week, 15 weeks (15,000 class sessions of
50 minutes); 12 courses per classroom (8 meet twice a week, 4 once), rosters of 20-40
students drawn from a population of 8,000, 85-97 % attendance, some students late or
leaving early. Each present student's behaviour follows a latent on-task level (a
student's baseline, the time of day, fatigue over the session, AR(1) noise, occasional
personal slumps and whole-class lulls), from which one behaviour per segment is drawn,
sticky from one segment to the next. A few sessions have a camera gap (minutes without
any event), so the dashboard's gap handling is exercised on real volumes.

Segments are coarse on purpose: the store receives one event per student per second
(docs/contracts.md), which for a semester would be about a billion rows; here one event
covers ``segment_seconds`` (60 s by default, each student's segments start at a random
phase so a minute bucket mixes two behaviours). The pages read only the aggregates
(StudentSessionSummary, SessionMinute, StudentMinute), and those have exactly the
per-minute and per-session shape they would have with 1 s events.

Every event goes through ``services.common.db.crud.record_events`` (one transaction per
session), so the aggregates are built by the same code the store runs. Event ids are
deterministic, sessions already present are skipped, so an interrupted run resumes.
Several worker processes can share the work: building events and SQLAlchemy's statement
construction run in parallel; SQLite's WAL lets one of them write at a time (the busy
timeout covers the wait), PostgreSQL lets them write concurrently.

Events carry ``model_version = "synthetic/semester-v1"`` and ``model_trained = False``:
nothing here was recognised from a camera, and the dashboard says so on every page.
"""

from __future__ import annotations

import json
import math
import multiprocessing
import random
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import text
from sqlmodel import Session, select

from dashboards.database import open_engine
from services.common.campus import Camera, Campus, Classroom, Course, RosterEntry, Seat
from services.common.db.crud import record_events, sync_campus
from services.common.db.models import BehaviourEvent, ClassSession
from services.common.vocabulary import BEHAVIOURS

SYNTHETIC_MODEL_VERSION = "synthetic/semester-v1"

# The generator's own ground truth of how on-task each behaviour is. It is deliberately
# not the engagement mapping (services/common/engagement.py): the mapping is what the
# dashboard assumes, this is what the synthetic students do, and a campus that changes
# the mapping should see the numbers change.
ON_TASK: dict[str, float] = {
    "hand_raising": 1.0,
    "attentive_listening": 0.95,
    "note_taking": 0.95,
    "head_down_writing": 0.8,
    "page_turning": 0.7,
    "upright_sitting": 0.6,
    "drinking_water": 0.5,
    "chin_resting": 0.25,
    "side_conversation": 0.1,
    "phone_usage": 0.0,
}
# How common each behaviour is in a lecture, before the on-task level tilts it.
BASE_RATE: dict[str, float] = {
    "attentive_listening": 0.26,
    "note_taking": 0.15,
    "upright_sitting": 0.15,
    "head_down_writing": 0.10,
    "chin_resting": 0.08,
    "page_turning": 0.07,
    "phone_usage": 0.07,
    "side_conversation": 0.05,
    "drinking_water": 0.03,
    "hand_raising": 0.02,
}
TILT = 10.0  # how strongly the on-task level favours on-task behaviours
# Chance a student keeps the previous segment's behaviour: on-task behaviours last, off-task
# ones are mostly brief unless the student's on-task level stays low (then they recur).
STICKINESS_ON_TASK = 0.6
STICKINESS_OFF_TASK = 0.3
SLOT_STARTS = ((8, 0), (10, 0), (13, 0), (15, 0), (17, 0), (19, 0))
SEAT_ROWS, SEAT_COLUMNS = 5, 8  # 40 seats per classroom


@dataclass(frozen=True)
class SemesterPlan:
    rooms: int = 50
    weeks: int = 15
    days_per_week: int = 5
    slots_per_day: int = 4
    session_minutes: int = 50
    students_min: int = 20
    students_max: int = 40
    population: int = 8000
    segment_seconds: int = 60
    first_day: date = date(2025, 9, 1)  # a Monday
    seed: int = 0
    camera_gap_rate: float = 0.03
    class_lull_rate: float = 0.12
    student_slump_rate: float = 0.06

    def __post_init__(self) -> None:
        if not 1 <= self.slots_per_day <= len(SLOT_STARTS):
            raise ValueError(f"slots_per_day must be 1..{len(SLOT_STARTS)}")
        if not 1 <= self.days_per_week <= 5:
            raise ValueError("days_per_week must be 1..5")
        if not 1 <= self.students_min <= self.students_max <= SEAT_ROWS * SEAT_COLUMNS:
            raise ValueError(
                f"need 1 <= students_min <= students_max <= {SEAT_ROWS * SEAT_COLUMNS} (seats per room)"
            )
        if self.population < self.students_max:
            raise ValueError("the population must be at least students_max")
        if not 5 <= self.segment_seconds <= 300:
            raise ValueError("segment_seconds must be 5..300")
        if self.rooms < 1 or self.weeks < 1 or self.session_minutes < 10:
            raise ValueError("need at least one room, one week and 10-minute sessions")

    @property
    def n_sessions(self) -> int:
        return self.rooms * self.weeks * self.days_per_week * self.slots_per_day


@dataclass(frozen=True)
class PlannedSession:
    session_id: str
    classroom_id: str
    course_id: str
    started_at: datetime  # UTC


@dataclass
class GenerationReport:
    sessions_written: int = 0
    sessions_skipped: int = 0
    events: int = 0
    seconds: float = 0.0


def _room_id(r: int) -> str:
    return f"room-{r + 1:02d}"


def _student_id(k: int) -> str:
    return f"stu-{k + 1:05d}"


def _seat_ids() -> list[str]:
    return [f"R{row + 1}-{col + 1}" for row in range(SEAT_ROWS) for col in range(SEAT_COLUMNS)]


def _course_meetings(plan: SemesterPlan) -> list[tuple[int, tuple[int, ...]]]:
    """(slot, weekdays) of each course of one classroom: Mon/Wed and Tue/Thu pairs, Friday alone."""
    pairs = [(0, 2), (1, 3)] if plan.days_per_week >= 4 else [(d,) for d in range(min(plan.days_per_week, 4))]
    singles = [(d,) for d in range(4, plan.days_per_week)]
    return [(slot, days) for slot in range(plan.slots_per_day) for days in (*pairs, *singles)]


def build_campus(plan: SemesterPlan) -> Campus:
    """Classrooms with one camera and 40 seats, courses with instructors and rosters."""
    rng = random.Random(f"{plan.seed}:campus")
    seat_ids = _seat_ids()
    seat_w, seat_h = 640 / SEAT_COLUMNS, 360 / SEAT_ROWS
    seats = tuple(
        Seat(
            id=seat_ids[i],
            box=(
                (i % SEAT_COLUMNS) * seat_w,
                (i // SEAT_COLUMNS) * seat_h,
                (i % SEAT_COLUMNS + 1) * seat_w,
                (i // SEAT_COLUMNS + 1) * seat_h,
            ),
        )
        for i in range(len(seat_ids))
    )
    classrooms = tuple(
        Classroom(
            id=_room_id(r),
            name=f"Room {r + 1}",
            building=f"Building {'ABCDE'[r % 5]}",
            cameras=(Camera(id="front", seats=seats),),
        )
        for r in range(plan.rooms)
    )
    courses = []
    meetings = _course_meetings(plan)
    n_courses = plan.rooms * len(meetings)
    n_instructors = max(1, math.ceil(n_courses / 2.5))
    for r in range(plan.rooms):
        for m in range(len(meetings)):
            index = r * len(meetings) + m
            size = rng.randint(plan.students_min, plan.students_max)
            students = rng.sample(range(plan.population), size)
            chosen_seats = rng.sample(seat_ids, size)
            courses.append(
                Course(
                    id=f"C{index + 1:04d}",
                    name=f"Course {index + 1}",
                    classroom=_room_id(r),
                    instructors=(f"instr-{rng.randrange(n_instructors) + 1:03d}",),
                    roster=tuple(
                        RosterEntry(student=_student_id(s), seat=seat)
                        for s, seat in zip(students, chosen_seats, strict=True)
                    ),
                )
            )
    return Campus(name="semester", classrooms=classrooms, courses=tuple(courses))


def planned_sessions(plan: SemesterPlan, campus: Campus) -> list[PlannedSession]:
    """Every class session of the semester, in time order."""
    meetings = _course_meetings(plan)
    by_room: dict[str, list[Course]] = {}
    for course in campus.courses:
        by_room.setdefault(course.classroom, []).append(course)
    sessions = []
    for week in range(plan.weeks):
        for weekday in range(plan.days_per_week):
            day = plan.first_day + timedelta(days=7 * week + weekday)
            for slot in range(plan.slots_per_day):
                hour, minute = SLOT_STARTS[slot]
                start = datetime(day.year, day.month, day.day, hour, minute, tzinfo=UTC)
                for room in campus.classrooms:
                    course = next(
                        c
                        for c, (s, days) in zip(by_room[room.id], meetings, strict=True)
                        if s == slot and weekday in days
                    )
                    sessions.append(
                        PlannedSession(
                            session_id=f"{room.id}-{start:%Y%m%d-%H%M}",
                            classroom_id=room.id,
                            course_id=course.id,
                            started_at=start,
                        )
                    )
    return sessions


def _student_traits(plan: SemesterPlan, student_id: str) -> tuple[float, float]:
    """A student's baseline on-task level and how strongly they drift (deterministic per student)."""
    rng = random.Random(f"{plan.seed}:student:{student_id}")
    return min(0.95, max(0.25, rng.gauss(0.72, 0.08))), rng.uniform(0.04, 0.08)


def _draw_behaviour(rng: random.Random, on_task_level: float, previous: str | None) -> str:
    if previous is not None and previous != "hand_raising":
        stickiness = STICKINESS_ON_TASK if ON_TASK[previous] >= 0.5 else STICKINESS_OFF_TASK
        if rng.random() < stickiness:
            return previous
    weights = [BASE_RATE[b] * math.exp(TILT * (ON_TASK[b] - 0.5) * (on_task_level - 0.5)) for b in BEHAVIOURS]
    return rng.choices(BEHAVIOURS, weights=weights)[0]


def _top5(rng: random.Random, label: str) -> tuple[float, str]:
    confidence = round(rng.uniform(0.55, 0.95), 2)
    others = rng.sample([b for b in BEHAVIOURS if b != label], 4)
    rest, probabilities = 1.0 - confidence, []
    for _ in others:
        share = round(rest * rng.uniform(0.4, 0.7), 2)
        probabilities.append(share)
        rest -= share
    return confidence, json.dumps([[label, confidence], *map(list, zip(others, probabilities, strict=True))])


def session_events(plan: SemesterPlan, campus: Campus, planned: PlannedSession) -> list[BehaviourEvent]:
    """The events of one class session (deterministic in the plan's seed and the session id)."""
    rng = random.Random(f"{plan.seed}:session:{planned.session_id}")
    course = campus.course(planned.course_id)
    assert course is not None, planned.course_id
    length = plan.session_minutes * 60
    slot_effect = {8: -0.04, 13: -0.06}.get(planned.started_at.hour, 0.0)  # early start, after lunch
    class_mood = rng.gauss(0.0, 0.05) + slot_effect
    lull = None
    if rng.random() < plan.class_lull_rate:
        lull_start = rng.uniform(0.2, 0.7) * length
        lull = (lull_start, lull_start + rng.uniform(6, 14) * 60)
    gap = None
    if rng.random() < plan.camera_gap_rate:
        gap_start = rng.uniform(0.15, 0.75) * length
        gap = (gap_start, gap_start + rng.uniform(3, 8) * 60)
    attendance = rng.uniform(0.85, 0.97)
    created = planned.started_at + timedelta(seconds=length)

    events: list[BehaviourEvent] = []
    for entry in course.roster:
        if rng.random() > attendance:
            continue
        base, drift = _student_traits(plan, entry.student)
        arrive = rng.uniform(120, 600) if rng.random() < 0.08 else 0.0
        leave = length - (rng.uniform(300, 900) if rng.random() < 0.05 else 0.0)
        slump = None
        if rng.random() < plan.student_slump_rate:
            slump_start = rng.uniform(0.1, 0.7) * length
            slump = (slump_start, slump_start + rng.uniform(6, 12) * 60)
        t = arrive + rng.uniform(0, plan.segment_seconds)  # random phase: minute buckets mix behaviours
        noise, previous, k = 0.0, None, 0
        while t + plan.segment_seconds <= leave:
            end = t + plan.segment_seconds
            noise = 0.8 * noise + rng.gauss(0.0, drift)
            level = base + class_mood + noise - 0.004 * max(0.0, t / 60 - 20)  # fatigue after 20 minutes
            if lull and lull[0] <= t < lull[1]:
                level -= 0.6
            if slump and slump[0] <= t < slump[1]:
                level -= 0.5
            label = _draw_behaviour(rng, level, previous)
            previous = label
            if gap and end > gap[0] and t < gap[1]:
                t, k = end, k + 1
                continue
            confidence, top5 = _top5(rng, label)
            start = planned.started_at + timedelta(seconds=round(t, 3))
            stop = planned.started_at + timedelta(seconds=round(end, 3))
            events.append(
                BehaviourEvent(
                    event_id=f"{planned.session_id}:{entry.student}:{k}",
                    created_at=created,
                    session_id=planned.session_id,
                    classroom_id=planned.classroom_id,
                    course_id=planned.course_id,
                    camera_id="front",
                    student_id=entry.student,
                    seat_id=entry.seat,
                    window_start=start,
                    window_end=stop,
                    segment_start=start,
                    segment_end=stop,
                    label=label,
                    confidence=confidence,
                    top5=top5,
                    attention="{}",  # nothing was attended to: no network produced these
                    model_version=SYNTHETIC_MODEL_VERSION,
                    model_trained=False,
                )
            )
            t, k = end, k + 1
    return events


def _write_sessions(
    database_url: str,
    plan: SemesterPlan,
    sessions: list[PlannedSession],
    progress: Callable[[int, int], None] | None = None,
) -> tuple[int, int, int]:
    """Write ``sessions`` (skipping those present) through record_events; (written, skipped, events)."""
    engine = open_engine(database_url)
    campus = build_campus(plan)
    with Session(engine) as session:
        sync_campus(session=session, campus=campus)
        session.commit()
        present = set(session.exec(select(ClassSession.id)).all())
    written = skipped = n_events = 0
    for planned in sessions:
        if planned.session_id in present:
            skipped += 1
            continue
        events = session_events(plan, campus, planned)
        with Session(engine) as session:
            n_events += record_events(session=session, events=events)
            session.commit()
        written += 1
        if progress is not None:
            progress(written, skipped)
    engine.dispose()
    return written, skipped, n_events


def _worker(job: tuple[str, SemesterPlan, list[PlannedSession], int]) -> tuple[int, int, int]:
    database_url, plan, sessions, worker_index = job
    started = time.monotonic()

    def progress(written: int, skipped: int) -> None:
        if written % 100 == 0:
            rate = written / (time.monotonic() - started)
            left = (len(sessions) - written - skipped) / rate if rate else float("nan")
            print(
                f"  worker {worker_index}: {written + skipped}/{len(sessions)} sessions, "
                f"{rate:.2f}/s, about {left / 60:.0f} min left",
                file=sys.stderr,
                flush=True,
            )

    return _write_sessions(database_url, plan, sessions, progress)


def analyse(database_url: str) -> None:
    """Refresh the planner's statistics after a bulk load (both SQLite and PostgreSQL plan by them)."""
    engine = open_engine(database_url)
    with engine.begin() as connection:
        connection.execute(text("ANALYZE"))
    engine.dispose()


def generate_semester(
    database_url: str, plan: SemesterPlan, *, workers: int = 1, limit_sessions: int | None = None
) -> GenerationReport:
    """Generate the plan's semester into ``database_url``; ``limit_sessions`` writes only the first N."""
    started = time.monotonic()
    campus = build_campus(plan)
    sessions = planned_sessions(plan, campus)[:limit_sessions]
    report = GenerationReport()
    workers = max(1, min(workers, len(sessions) or 1))
    open_engine(database_url).dispose()  # schema and tables exist before any worker starts
    # interleave so every worker gets a share of every week (progress is even)
    jobs = [(database_url, plan, sessions[w::workers], w) for w in range(workers)]
    if workers == 1:
        results = [_worker(jobs[0])]
    else:
        with multiprocessing.get_context("spawn").Pool(workers) as pool:
            results = list(pool.imap_unordered(_worker, jobs))
    for written, skipped, n_events in results:
        report.sessions_written += written
        report.sessions_skipped += skipped
        report.events += n_events
    analyse(database_url)
    report.seconds = time.monotonic() - started
    return report


def iter_plan_summary(plan: SemesterPlan) -> Iterator[str]:
    """Lines describing what a plan will generate (printed before a long run)."""
    campus = build_campus(plan)
    sizes = [len(c.roster) for c in campus.courses]
    yield (
        f"{plan.rooms} classrooms x {plan.slots_per_day} sessions/day x {plan.days_per_week} days x "
        f"{plan.weeks} weeks = {plan.n_sessions} sessions of {plan.session_minutes} min"
    )
    mean_size = sum(sizes) / len(sizes)
    yield (
        f"{len(campus.courses)} courses, rosters {min(sizes)}-{max(sizes)} students (mean {mean_size:.1f}),"
        f" events of {plan.segment_seconds} s segments"
    )
