"""Widgets and charts that several pages draw the same way."""

from __future__ import annotations

from datetime import date

import altair as alt
import pandas as pd
import streamlit as st

from dashboards import queries
from services.common.engagement import EngagementMapping
from services.common.vocabulary import BEHAVIOURS

ENGAGED_COLOURS = alt.Scale(domain=["engaged", "not engaged"], range=["#2e7d32", "#c62828"])


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
    """Engagement (%) per session over time, one line per course; ``frame`` has start, course, ``value``."""
    return (
        alt.Chart(frame.dropna(subset=[value]))
        .mark_line(point=True)
        .encode(
            x=alt.X("start:T", title=f"session start ({timezone})"),
            y=alt.Y(f"{value}:Q", title=f"{value} (%)", scale=alt.Scale(domain=[0, 100])),
            color=alt.Color("course:N", title="course"),
            tooltip=["start:T", "course:N", alt.Tooltip(f"{value}:Q", format=".0f")],
        )
        .properties(height=280)
    )
