"""SQLModel tables: reference data, behaviour events, and the aggregates the store keeps current.

No table holds an image or anything derived from pixels beyond labels, probabilities
and attention weights. Times are timezone-aware UTC datetimes.

Aggregates (kept up to date by the store in the same transaction as the events, so the
dashboard never scans raw events on a hot path):
- ``StudentSessionSummary``: per student and session, seconds in each behaviour,
  hand-raise count, first and last seen.
- ``SessionMinute``: per session and minute, seconds in each behaviour over all students.
- ``StudentMinute``: per student, session and minute, seconds in each behaviour.
Engagement is not stored: it is computed from the seconds with the configured mapping
(services/common/engagement.py), so changing the mapping needs no recomputation.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, Index, Text
from sqlmodel import Field, SQLModel

from services.common.vocabulary import BEHAVIOURS


def seconds_column(behaviour: str) -> str:
    """Column name holding seconds spent in ``behaviour``."""
    return f"s_{behaviour}"


SECONDS_COLUMNS: tuple[str, ...] = tuple(seconds_column(b) for b in BEHAVIOURS)


class BehaviourSeconds(SQLModel):
    """Seconds spent in each of the 10 behaviours (one column per behaviour, see BEHAVIOURS)."""

    s_hand_raising: float = 0.0
    s_page_turning: float = 0.0
    s_head_down_writing: float = 0.0
    s_chin_resting: float = 0.0
    s_attentive_listening: float = 0.0
    s_phone_usage: float = 0.0
    s_note_taking: float = 0.0
    s_drinking_water: float = 0.0
    s_side_conversation: float = 0.0
    s_upright_sitting: float = 0.0


assert set(BehaviourSeconds.model_fields) == set(SECONDS_COLUMNS), "one seconds column per behaviour"


class Classroom(SQLModel, table=True):
    id: str = Field(primary_key=True)
    name: str = ""
    building: str = ""


class Course(SQLModel, table=True):
    id: str = Field(primary_key=True)
    name: str = ""
    classroom_id: str = Field(index=True)


class CourseInstructor(SQLModel, table=True):
    """Which dashboard users teach which course (instructors see only their courses)."""

    course_id: str = Field(primary_key=True)
    username: str = Field(primary_key=True, index=True)


class ClassSessionBase(SQLModel):
    classroom_id: str = Field(index=True)
    course_id: str = Field(default="", index=True)
    camera_id: str = ""
    started_at: datetime = Field(index=True)
    ended_at: datetime = Field(index=True)  # retention purges by it
    model_version: str = ""
    model_trained: bool = False


class ClassSession(ClassSessionBase, table=True):
    __tablename__ = "class_session"

    id: str = Field(primary_key=True)


class BehaviourEventBase(SQLModel):
    session_id: str
    classroom_id: str
    course_id: str = ""
    camera_id: str = ""
    student_id: str
    seat_id: str = ""
    window_start: datetime
    window_end: datetime
    segment_start: datetime
    segment_end: datetime
    label: str
    confidence: float
    top5: str = Field(sa_column=Column(Text, nullable=False))  # JSON: [[label, probability], ...]
    attention: str = Field(sa_column=Column(Text, nullable=False))  # JSON: keypoint and frame weights
    model_version: str
    model_trained: bool


class BehaviourEvent(BehaviourEventBase, table=True):
    __tablename__ = "behaviour_event"
    __table_args__ = (
        Index("ix_event_session_student_time", "session_id", "student_id", "segment_start"),
        Index("ix_event_student_time", "student_id", "segment_start"),
    )

    event_id: str = Field(primary_key=True)
    created_at: datetime


class StudentSessionSummary(BehaviourSeconds, table=True):
    __tablename__ = "student_session_summary"
    __table_args__ = (Index("ix_summary_student", "student_id", "first_seen"),)

    session_id: str = Field(primary_key=True)
    student_id: str = Field(primary_key=True)
    classroom_id: str = ""
    course_id: str = Field(default="", index=True)
    seat_id: str = ""
    first_seen: datetime
    last_seen: datetime
    n_events: int = 0
    hand_raise_count: int = 0
    last_label: str = ""


class SessionMinute(BehaviourSeconds, table=True):
    __tablename__ = "session_minute"

    session_id: str = Field(primary_key=True)
    minute: datetime = Field(primary_key=True)
    n_events: int = 0


class StudentMinute(BehaviourSeconds, table=True):
    __tablename__ = "student_minute"

    session_id: str = Field(primary_key=True)
    student_id: str = Field(primary_key=True)
    minute: datetime = Field(primary_key=True)
    n_events: int = 0
