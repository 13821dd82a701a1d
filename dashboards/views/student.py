"""One student across sessions: engagement trend and behaviour mix, within the viewer's courses."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboards import queries
from dashboards.views.common import (
    PageContext,
    download_csv,
    go,
    low_confidence_caption,
    low_confidence_columns,
    mapping_caption,
    marked_table,
    model_banner,
    open_button,
    percent,
    plain,
)
from dashboards.views.widgets import behaviour_bars, engagement_trend
from services.common.vocabulary import BEHAVIOURS


def student_sessions_frame(
    ctx: PageContext, rows: list[queries.StudentSessionRow], low: dict[str, queries.ConfidenceCount]
) -> pd.DataFrame:
    """One row per session of the student; ``low``: the student's low-confidence events per session."""
    return pd.DataFrame(
        {
            "start": [ctx.local(r.started_at).replace(tzinfo=None) for r in rows],
            "course": [r.course_name or r.course_id for r in rows],
            "classroom": [r.classroom_id for r in rows],
            "engagement": [None if r.engagement is None else round(100 * r.engagement, 1) for r in rows],
            "engaged share": [
                None if r.engaged_share is None else round(100 * r.engaged_share, 1) for r in rows
            ],
            "hand raises": [r.hand_raises for r in rows],
            "phone minutes": [round(r.minutes["phone_usage"], 2) for r in rows],
            "observed minutes": [round(sum(r.minutes.values()), 2) for r in rows],
            **low_confidence_columns([low.get(r.session_id, queries.NO_EVENTS).share for r in rows]),
            "session": [r.session_id for r in rows],
        }
    )


def behaviour_mix(rows: list[queries.StudentSessionRow]) -> dict[str, float]:
    """Minutes in each behaviour over all the sessions shown."""
    return {b: sum(r.minutes[b] for r in rows) for b in BEHAVIOURS}


def _pick_student(ctx: PageContext, current: str | None) -> str | None:
    options = queries.filter_options(ctx.engine, ctx.viewer, timezone=ctx.settings.display_timezone)
    course_labels = dict(options.courses)
    left, right = st.columns(2)
    with left:
        course = st.selectbox(
            "Course",
            ["", *course_labels],
            format_func=lambda c: course_labels.get(c, "Choose a course"),
            key="student_course",
        )
        if course:
            roster = queries.course_students(ctx.engine, ctx.viewer, course)
            picked = st.selectbox(
                "Student in this course",
                ["", *roster],
                key="student_pick",
                format_func=lambda s: s or "Choose a student",
            )
            if picked and picked != current:
                go("student", student=picked)
                return picked
    with right:
        typed = st.text_input("…or a student id", key="student_typed").strip()
        if typed and typed != current:
            go("student", student=typed)
            return typed
    return current


def _summary_metrics(rows: list[queries.StudentSessionRow], mix: dict[str, float]) -> None:
    scores = [r.engagement for r in rows if r.engagement is not None]
    a, b, c, d = st.columns(4)
    a.metric("Sessions", len(rows))
    b.metric(
        "Mean engagement", percent(sum(scores) / len(scores) if scores else None), help="mean over sessions"
    )
    c.metric("Hand raises", sum(r.hand_raises for r in rows))
    d.metric("Phone minutes", f"{mix['phone_usage']:.0f}")


def _charts(ctx: PageContext, frame: pd.DataFrame, mix: dict[str, float]) -> None:
    """Engagement per session beside the behaviour mix."""
    left, right = st.columns([3, 2])
    with left:
        st.markdown("**Engagement per session**")
        trend = engagement_trend(frame, value="engagement", timezone=ctx.settings.display_timezone)
        st.altair_chart(trend, width="stretch")
    with right:
        st.markdown("**Behaviour mix** (minutes over these sessions)")
        bars = behaviour_bars(ctx.mapping, mix, value_title="minutes")
        st.altair_chart(bars, width="stretch")


def _sessions_table(
    ctx: PageContext,
    student_id: str,
    rows: list[queries.StudentSessionRow],
    frame: pd.DataFrame,
    low: dict[str, queries.ConfidenceCount],
) -> None:
    """The student's sessions with the low-confidence caption, and their CSV."""
    table = frame.rename(
        columns={
            "start": f"start ({ctx.settings.display_timezone})",
            "engagement": "engagement (%)",
            "engaged share": "engaged share (%)",
        }
    )
    low_confidence_caption(
        ctx,
        (low.get(r.session_id, queries.NO_EVENTS) for r in rows),
        behind=f"of student {plain(student_id)}",
    )
    marked_table(table, "student_sessions_table")
    download_csv(
        table.rename(columns={"course": "course name"}),
        label="Download CSV",
        file_name=f"student-{student_id}-sessions-{ctx.mapping.name}-{ctx.mapping.digest}.csv",
        key="student_csv",
        session=[r.session_id for r in rows],
        course=[r.course_id for r in rows],
        date=[ctx.when(r.started_at, "%Y-%m-%d") for r in rows],
        model=[r.model_version for r in rows],
        student=str(student_id),
    )


def _open_a_session(ctx: PageContext, rows: list[queries.StudentSessionRow]) -> None:
    labels = {
        r.session_id: f"{ctx.when(r.started_at)} · {r.course_name or r.course_id}" for r in reversed(rows)
    }
    st.selectbox(
        "Open one of these sessions", list(labels), format_func=lambda k: labels[k], key="student_open_choice"
    )
    open_button(
        "Open session",
        page="session",
        id_name="session",
        choice_key="student_open_choice",
        key="student_open_session",
    )


def render(ctx: PageContext, student_id: str | None) -> None:
    st.title("One student")
    st.caption(mapping_caption(ctx.mapping))
    student_id = _pick_student(ctx, student_id)
    if not student_id:
        st.info("Choose a course and a student, or type a student id.")
        return
    rows = queries.student_sessions(ctx.engine, ctx.viewer, ctx.mapping, student_id)
    st.subheader(f"Student {plain(student_id)}")
    if not rows:
        scope = "any session" if ctx.viewer.is_admin else "any session of your courses"
        st.info(f"Student {plain(student_id)} was not observed in {scope}.")
        return
    model_banner({(r.model_version, r.model_trained) for r in rows}, ctx)

    low = queries.low_confidence_of_student(
        ctx.engine, ctx.viewer, student_id, below=ctx.settings.low_confidence_below
    )
    frame = student_sessions_frame(ctx, rows, low)
    mix = behaviour_mix(rows)
    _summary_metrics(rows, mix)
    _charts(ctx, frame, mix)
    _sessions_table(ctx, student_id, rows, frame, low)
    _open_a_session(ctx, rows)
