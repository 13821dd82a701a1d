"""the schema as of 2026-12-07 (tables of the store and the dashboard)

Revision ID: 0001
Revises:
Create Date: 2026-12-07 14:31:38.104867
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlmodel.sql import sqltypes

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    _create_behaviour_event()
    _create_class_session()
    _create_classroom()
    _create_course()
    _create_courseinstructor()
    _create_dashboard_login_failure()
    _create_dashboard_user()
    _create_session_minute()
    _create_student_minute()
    _create_student_session_summary()


def _behaviour_score_columns() -> list[sa.Column]:
    """The ten behaviours' mean scores of the aggregate tables, spelled as they were at 0001."""
    return [
        sa.Column("s_hand_raising", sa.Float(), nullable=False),
        sa.Column("s_page_turning", sa.Float(), nullable=False),
        sa.Column("s_head_down_writing", sa.Float(), nullable=False),
        sa.Column("s_chin_resting", sa.Float(), nullable=False),
        sa.Column("s_attentive_listening", sa.Float(), nullable=False),
        sa.Column("s_phone_usage", sa.Float(), nullable=False),
        sa.Column("s_note_taking", sa.Float(), nullable=False),
        sa.Column("s_drinking_water", sa.Float(), nullable=False),
        sa.Column("s_side_conversation", sa.Float(), nullable=False),
        sa.Column("s_upright_sitting", sa.Float(), nullable=False),
    ]


def _create_behaviour_event() -> None:
    op.create_table(
        "behaviour_event",
        sa.Column("session_id", sqltypes.AutoString(), nullable=False),
        sa.Column("classroom_id", sqltypes.AutoString(), nullable=False),
        sa.Column("course_id", sqltypes.AutoString(), nullable=False),
        sa.Column("camera_id", sqltypes.AutoString(), nullable=False),
        sa.Column("student_id", sqltypes.AutoString(), nullable=False),
        sa.Column("seat_id", sqltypes.AutoString(), nullable=False),
        sa.Column("window_start", sqltypes.UTCDateTime(), nullable=False),
        sa.Column("window_end", sqltypes.UTCDateTime(), nullable=False),
        sa.Column("segment_start", sqltypes.UTCDateTime(), nullable=False),
        sa.Column("segment_end", sqltypes.UTCDateTime(), nullable=False),
        sa.Column("label", sqltypes.AutoString(), nullable=False),
        sa.Column("confidence", sa.Float(), nullable=False),
        sa.Column("top5", sa.Text(), nullable=False),
        sa.Column("attention", sa.Text(), nullable=False),
        sa.Column("model_version", sqltypes.AutoString(), nullable=False),
        sa.Column("model_trained", sa.Boolean(), nullable=False),
        sa.Column("event_id", sqltypes.AutoString(), nullable=False),
        sa.Column("created_at", sqltypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("event_id"),
    )
    op.create_index(
        "ix_event_session_student_time",
        "behaviour_event",
        ["session_id", "student_id", "segment_start"],
        unique=False,
    )
    op.create_index("ix_event_student_time", "behaviour_event", ["student_id", "segment_start"], unique=False)


def _create_class_session() -> None:
    op.create_table(
        "class_session",
        sa.Column("classroom_id", sqltypes.AutoString(), nullable=False),
        sa.Column("course_id", sqltypes.AutoString(), nullable=False),
        sa.Column("camera_id", sqltypes.AutoString(), nullable=False),
        sa.Column("started_at", sqltypes.UTCDateTime(), nullable=False),
        sa.Column("ended_at", sqltypes.UTCDateTime(), nullable=False),
        sa.Column("model_version", sqltypes.AutoString(), nullable=False),
        sa.Column("model_trained", sa.Boolean(), nullable=False),
        sa.Column("id", sqltypes.AutoString(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_class_session_classroom_id"), "class_session", ["classroom_id"], unique=False)
    op.create_index(op.f("ix_class_session_course_id"), "class_session", ["course_id"], unique=False)
    op.create_index(op.f("ix_class_session_started_at"), "class_session", ["started_at"], unique=False)


def _create_classroom() -> None:
    op.create_table(
        "classroom",
        sa.Column("id", sqltypes.AutoString(), nullable=False),
        sa.Column("name", sqltypes.AutoString(), nullable=False),
        sa.Column("building", sqltypes.AutoString(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )


def _create_course() -> None:
    op.create_table(
        "course",
        sa.Column("id", sqltypes.AutoString(), nullable=False),
        sa.Column("name", sqltypes.AutoString(), nullable=False),
        sa.Column("classroom_id", sqltypes.AutoString(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_course_classroom_id"), "course", ["classroom_id"], unique=False)


def _create_courseinstructor() -> None:
    op.create_table(
        "courseinstructor",
        sa.Column("course_id", sqltypes.AutoString(), nullable=False),
        sa.Column("username", sqltypes.AutoString(), nullable=False),
        sa.PrimaryKeyConstraint("course_id", "username"),
    )
    op.create_index(op.f("ix_courseinstructor_username"), "courseinstructor", ["username"], unique=False)


def _create_dashboard_login_failure() -> None:
    op.create_table(
        "dashboard_login_failure",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("username", sqltypes.AutoString(), nullable=False),
        sa.Column("client", sqltypes.AutoString(), nullable=False),
        sa.Column("at", sqltypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_dashboard_login_failure_at"), "dashboard_login_failure", ["at"], unique=False)
    op.create_index(
        op.f("ix_dashboard_login_failure_client"), "dashboard_login_failure", ["client"], unique=False
    )
    op.create_index(
        op.f("ix_dashboard_login_failure_username"), "dashboard_login_failure", ["username"], unique=False
    )


def _create_dashboard_user() -> None:
    op.create_table(
        "dashboard_user",
        sa.Column("username", sqltypes.AutoString(), nullable=False),
        sa.Column("role", sqltypes.AutoString(), nullable=False),
        sa.Column("password_hash", sqltypes.AutoString(), nullable=False),
        sa.Column("created_at", sqltypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("username"),
    )


def _create_session_minute() -> None:
    op.create_table(
        "session_minute",
        *_behaviour_score_columns(),
        sa.Column("session_id", sqltypes.AutoString(), nullable=False),
        sa.Column("minute", sqltypes.UTCDateTime(), nullable=False),
        sa.Column("n_events", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("session_id", "minute"),
    )


def _create_student_minute() -> None:
    op.create_table(
        "student_minute",
        *_behaviour_score_columns(),
        sa.Column("session_id", sqltypes.AutoString(), nullable=False),
        sa.Column("student_id", sqltypes.AutoString(), nullable=False),
        sa.Column("minute", sqltypes.UTCDateTime(), nullable=False),
        sa.Column("n_events", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("session_id", "student_id", "minute"),
    )


def _create_student_session_summary() -> None:
    op.create_table(
        "student_session_summary",
        *_behaviour_score_columns(),
        sa.Column("session_id", sqltypes.AutoString(), nullable=False),
        sa.Column("student_id", sqltypes.AutoString(), nullable=False),
        sa.Column("classroom_id", sqltypes.AutoString(), nullable=False),
        sa.Column("course_id", sqltypes.AutoString(), nullable=False),
        sa.Column("seat_id", sqltypes.AutoString(), nullable=False),
        sa.Column("first_seen", sqltypes.UTCDateTime(), nullable=False),
        sa.Column("last_seen", sqltypes.UTCDateTime(), nullable=False),
        sa.Column("n_events", sa.Integer(), nullable=False),
        sa.Column("hand_raise_count", sa.Integer(), nullable=False),
        sa.Column("last_label", sqltypes.AutoString(), nullable=False),
        sa.PrimaryKeyConstraint("session_id", "student_id"),
    )
    op.create_index(
        op.f("ix_student_session_summary_course_id"), "student_session_summary", ["course_id"], unique=False
    )
    op.create_index(
        "ix_summary_student", "student_session_summary", ["student_id", "first_seen"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_summary_student", table_name="student_session_summary")
    op.drop_index(op.f("ix_student_session_summary_course_id"), table_name="student_session_summary")
    op.drop_table("student_session_summary")
    op.drop_table("student_minute")
    op.drop_table("session_minute")
    op.drop_table("dashboard_user")
    op.drop_index(op.f("ix_dashboard_login_failure_username"), table_name="dashboard_login_failure")
    op.drop_index(op.f("ix_dashboard_login_failure_client"), table_name="dashboard_login_failure")
    op.drop_index(op.f("ix_dashboard_login_failure_at"), table_name="dashboard_login_failure")
    op.drop_table("dashboard_login_failure")
    op.drop_index(op.f("ix_courseinstructor_username"), table_name="courseinstructor")
    op.drop_table("courseinstructor")
    op.drop_index(op.f("ix_course_classroom_id"), table_name="course")
    op.drop_table("course")
    op.drop_table("classroom")
    op.drop_index(op.f("ix_class_session_started_at"), table_name="class_session")
    op.drop_index(op.f("ix_class_session_course_id"), table_name="class_session")
    op.drop_index(op.f("ix_class_session_classroom_id"), table_name="class_session")
    op.drop_table("class_session")
    op.drop_index("ix_event_student_time", table_name="behaviour_event")
    op.drop_index("ix_event_session_student_time", table_name="behaviour_event")
    op.drop_table("behaviour_event")
