"""Alerts page: sustained low engagement of a student or a whole class, with its time window."""

from __future__ import annotations

from datetime import date

import pandas as pd
import streamlit as st

from dashboards import queries
from dashboards.views.common import (
    PageContext,
    download_csv,
    low_confidence_caption,
    mapping_caption,
    marked_table,
    model_banner,
    open_button,
    percent,
)
from dashboards.views.widgets import alerts_frame, classroom_and_course, date_range


def alerts_table(
    ctx: PageContext, alerts: list[queries.Alert], low: list[queries.ConfidenceCount]
) -> pd.DataFrame:
    """The alerts of several sessions: the session page's alert table with the day and the session."""
    frame = alerts_frame(ctx, alerts, low)
    frame.insert(0, "date", [ctx.when(a.start, "%Y-%m-%d") for a in alerts])
    return frame.assign(
        course=[a.course_id for a in alerts],
        classroom=[a.classroom_id for a in alerts],
        session=[a.session_id for a in alerts],
    )


WHO = ["students and classes", "classes only", "students only"]


def _explain(ctx: PageContext) -> None:
    st.title("Alerts")
    st.caption(mapping_caption(ctx.mapping))
    st.markdown(
        f"An alert is at least **{ctx.mapping.alert_minutes} consecutive minutes** in which the engagement "
        f"of a student (or of the whole class) stays below **{percent(ctx.mapping.alert_below)}**. "
        f"Minutes in which the student was seen for less than {queries.MIN_OBSERVED_SECONDS:.0f} s "
        "break a run: being unseen is not being disengaged."
    )


def _pick_filters(
    options: queries.FilterOptions, last_day: date
) -> tuple[tuple[date, date] | None, str | None, str | None, str]:
    """The dates (None while no day is chosen), classroom, course and kind of alert picked."""
    dates_col, filter_col, kinds_col = st.columns([1, 2, 1])
    with dates_col:
        days = date_range(options, default=(last_day, last_day), key="alerts_dates")
    with filter_col:
        classroom, course = classroom_and_course(options, key_prefix="alerts")
    with kinds_col:
        who = st.radio("Who", WHO, key="alerts_who")
    return days, classroom, course, who


def _show_alerts(ctx: PageContext, alerts: list[queries.Alert], days: tuple[date, date]) -> None:
    """The alerts' table with its low-confidence caption, and its CSV."""
    low = queries.low_confidence_of_alerts(
        ctx.engine, ctx.viewer, alerts, below=ctx.settings.low_confidence_below
    )
    table = alerts_table(ctx, alerts, low)
    low_confidence_caption(
        ctx, low, behind="in these alerts' windows (an event in two alerts counts in each)"
    )
    marked_table(table, "alerts_table")
    download_csv(
        table,
        label="Download CSV",
        file_name=f"alerts-{days[0]}-{days[-1]}-{ctx.mapping.name}-{ctx.mapping.digest}.csv",
        key="alerts_csv",
        session=[a.session_id for a in alerts],
        course=[a.course_id for a in alerts],
        date=list(table["date"]),
        model=[a.model_version for a in alerts],
    )


def _open_session_of_an_alert(ctx: PageContext, alerts: list[queries.Alert]) -> None:
    labels = {
        i: " · ".join(
            (
                ctx.when(x.start, "%a %d %b %H:%M"),
                "whole class" if x.kind == "class" else str(x.student_id),
                x.session_id,
            )
        )
        for i, x in enumerate(alerts)
    }
    st.selectbox(
        "Open the session of an alert",
        list(labels),
        format_func=lambda k: labels[k],
        key="alerts_open_choice",
    )
    open_button(
        "Open session",
        page="session",
        id_name="session",
        choice_key="alerts_open_choice",
        key="alerts_open",
        resolve=lambda index: alerts[index].session_id,
    )


def render(ctx: PageContext) -> None:
    _explain(ctx)
    options = queries.filter_options(ctx.engine, ctx.viewer, timezone=ctx.settings.display_timezone)
    if options.last_day is None:
        st.info("No sessions yet, so no alerts.")
        return
    days, classroom, course, who = _pick_filters(options, options.last_day)
    if days is None:
        st.info("Choose a date range.")
        return
    filters = queries.SessionFilter(
        classroom_id=classroom,
        course_id=course,
        first_day=days[0],
        last_day=days[-1],
        timezone=ctx.settings.display_timezone,
    )
    try:
        report = queries.alerts_in_range(ctx.engine, ctx.viewer, ctx.mapping, filters)
    except queries.RangeTooWide as exc:
        st.warning(str(exc))
        return
    model_banner(report.models, ctx)
    alerts = [
        a
        for a in report.alerts
        if who == "students and classes" or (who == "classes only") == (a.kind == "class")
    ]
    a, b, c = st.columns(3)
    a.metric("Sessions checked", report.sessions_checked)
    b.metric("Class alerts", sum(x.kind == "class" for x in alerts))
    c.metric("Student alerts", sum(x.kind == "student" for x in alerts))
    if report.sessions_checked == 0:
        st.info("No sessions in this range.")
        return
    if not alerts:
        st.success("No sustained low engagement in these sessions.")
        return
    _show_alerts(ctx, alerts, days)
    _open_session_of_an_alert(ctx, alerts)
