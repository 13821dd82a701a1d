"""Widgets and charts that several pages draw the same way."""

from __future__ import annotations

from datetime import date, timedelta

import altair as alt
import pandas as pd
import streamlit as st

from dashboards import queries
from dashboards.views.common import PageContext, low_confidence_columns
from services.common.engagement import EngagementMapping
from services.common.vocabulary import BEHAVIOURS

ENGAGED_COLOURS = alt.Scale(domain=["engaged", "not engaged"], range=["#2e7d32", "#c62828"])


def _epoch_ms(moment: pd.Timestamp) -> int:
    return int(pd.Timestamp(moment).tz_localize(None).tz_localize("UTC").value // 1_000_000)


def local_time_x(
    values: pd.Series, *, field: str, title: str, min_span: timedelta, label_format: str | None = None
) -> alt.X:
    """An x axis of wall-clock times in the campus's zone, at least ``min_span`` wide.

    Pages hand charts naive datetimes already in the display zone; a UTC scale shows them as
    they are, whatever the browser's own zone. A chart of one session (or one minute) has a
    zero-wide time domain, on which Vega draws a single tick of milliseconds ('.750'); the
    domain is widened around it instead."""
    scale = alt.Scale(type="utc")
    present = pd.to_datetime(values.dropna())
    if not present.empty and present.max() - present.min() < pd.Timedelta(min_span):
        middle = present.min() + (present.max() - present.min()) / 2
        half = pd.Timedelta(min_span) / 2
        scale = alt.Scale(type="utc", domain=[_epoch_ms(middle - half), _epoch_ms(middle + half)])
    axis = alt.Axis(format=label_format) if label_format else alt.Axis()
    return alt.X(f"{field}:T", title=title, scale=scale, axis=axis)


def behaviour_label(behaviour: str) -> str:
    return behaviour.replace("_", " ")


def classroom_and_course(options: queries.FilterOptions, *, key_prefix: str) -> tuple[str | None, str | None]:
    """Two select boxes (in the caller's current container); None stands for 'all'."""
    rooms, courses = dict(options.classrooms), dict(options.courses)
    room_col, course_col = st.columns(2)
    with room_col:
        classroom = st.selectbox(
            "Classroom",
            ["", *rooms],
            format_func=lambda c: rooms.get(c, "All classrooms"),
            key=f"{key_prefix}_classroom",
        )
    with course_col:
        course = st.selectbox(
            "Course",
            ["", *courses],
            format_func=lambda c: courses.get(c, "All courses"),
            key=f"{key_prefix}_course",
        )
    return classroom or None, course or None


def date_range(
    options: queries.FilterOptions, *, default: tuple[date, date], key: str
) -> tuple[date, date] | None:
    """A first-to-last day picker within the data's span; None while no day is chosen."""
    picked = st.date_input(
        "Dates", value=default, min_value=options.first_day, max_value=options.last_day, key=key
    )
    chosen = [d for d in (picked if isinstance(picked, tuple) else (picked,)) if d is not None]
    days = tuple(chosen)
    if not days:
        return None
    return days[0], days[-1]  # mid-selection the picker holds only the first day


def behaviour_bars(mapping: EngagementMapping, minutes: dict[str, float], *, value_title: str) -> alt.Chart:
    """Minutes per behaviour, coloured by whether the mapping counts the behaviour as engaged."""
    frame = pd.DataFrame(
        {
            "behaviour": [behaviour_label(b) for b in BEHAVIOURS],
            value_title: [round(minutes[b], 1) for b in BEHAVIOURS],
            "counts as": ["engaged" if mapping.engaged(b) else "not engaged" for b in BEHAVIOURS],
            "weight": [mapping.weights[b] for b in BEHAVIOURS],
        }
    )
    return (
        alt.Chart(frame)
        .mark_bar()
        .encode(
            x=alt.X(f"{value_title}:Q"),
            y=alt.Y("behaviour:N", sort="-x", title=None),
            color=alt.Color("counts as:N", scale=ENGAGED_COLOURS),
            tooltip=["behaviour:N", f"{value_title}:Q", "weight:Q", "counts as:N"],
        )
        .properties(height=280)
    )


def engagement_trend(frame: pd.DataFrame, *, value: str, timezone: str) -> alt.Chart:
    """Engagement (%) per session over time, one line per course; ``frame`` has start, course, ``value``.

    A single session is a point in the middle of a four-day axis labelled by day."""
    shown = frame.dropna(subset=[value]).assign(when=lambda f: f["start"].dt.strftime("%a %d %b %Y %H:%M"))
    return (
        alt.Chart(shown)
        .mark_line(point=True)
        .encode(
            x=local_time_x(
                shown["start"],
                field="start",
                title=f"session start ({timezone})",
                min_span=timedelta(days=4),
                label_format="%d %b",
            ),
            y=alt.Y(f"{value}:Q", title=f"{value} (%)", scale=alt.Scale(domain=[0, 100])),
            color=alt.Color("course:N", title="course"),
            tooltip=[
                alt.Tooltip("when:N", title=f"start ({timezone})"),
                "course:N",
                alt.Tooltip(f"{value}:Q", format=".0f"),
            ],
        )
        .properties(height=280)
    )


def alerts_frame(
    ctx: PageContext, alerts: list[queries.Alert], low: list[queries.ConfidenceCount]
) -> pd.DataFrame:
    """Alerts as a table (times in the campus's zone); ``low``: each alert's low-confidence events."""
    zone = ctx.settings.display_timezone
    return pd.DataFrame(
        {
            f"from ({zone})": [ctx.when(a.start, "%H:%M") for a in alerts],
            f"to ({zone})": [ctx.when(a.end, "%H:%M") for a in alerts],
            "minutes": [a.minutes for a in alerts],
            "who": ["whole class" if a.kind == "class" else a.student_id for a in alerts],
            "mean engagement (%)": [round(100 * a.mean_engagement) for a in alerts],
            **low_confidence_columns([c.share for c in low]),
        }
    )
