"""Every student of a session over time, and why the model said what it said at one second.

The student x time view draws the cells of dashboards/behaviour_grid.py (behaviour by colour,
low-confidence cells faded). Selecting a cell, or choosing a student and a second below it,
shows the event that covers that second: its top five behaviours with their probabilities,
and the recogniser's attention over the 17 keypoints and over the frames of its window
(section 3.4, eq. 9), as the store keeps them per event. No image is involved: the model's
inputs are keypoints, and none are shown.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import altair as alt
import pandas as pd
import streamlit as st

from dashboards import queries
from dashboards.behaviour_grid import column_seconds, grid_cells
from dashboards.views.common import PageContext, percent, plain
from dashboards.views.widgets import behaviour_label, local_time_x
from services.common.vocabulary import BEHAVIOURS, KEYPOINTS

LOW, CONFIDENT = "low", "confident"
# svg, not canvas: every cell is an element that a browser (and the browser test) can click
SVG = {"embedOptions": {"renderer": "svg"}}


def _picker_keys(session_id: str, generation: int) -> tuple[str, str]:
    """Keys of the student and second pickers; a selected cell starts a new generation of them.

    Why not set the pickers' values in place: a live session's page redraws itself on a timer,
    and a redraw that the browser asked for before it had shown a click's new values carries the
    pickers' old values, which Streamlit then takes as the user's and so undoes the click. Pickers
    under new keys have no old values in the browser."""
    suffix = f"_{generation}" if generation else ""
    return f"grid_student_{session_id}{suffix}", f"grid_second_{session_id}{suffix}"


def cells_frame(ctx: PageContext, cells: pd.DataFrame) -> pd.DataFrame:
    """The cells as the chart draws them: wall-clock times of the campus's zone, readable labels."""
    local = [ctx.local(t.to_pydatetime()).replace(tzinfo=None) for t in cells["start"]]
    width = cells["end"] - cells["start"]
    return pd.DataFrame(
        {
            "student": cells["student"],
            "column": cells["column"].astype(int),
            "from": local,
            "to": [t + w.to_pytimedelta() for t, w in zip(local, width, strict=True)],
            "when": [t.strftime("%H:%M:%S") for t in local],
            "behaviour": [behaviour_label(b) for b in cells["behaviour"]],
            "confidence (%)": (100 * cells["confidence"]).round(0),
            "confidence": [LOW if low else CONFIDENT for low in cells["low"]],
        }
    )


def grid_chart(ctx: PageContext, frame: pd.DataFrame) -> alt.Chart:
    cell = alt.selection_point(name="cell", fields=["student", "column"], on="click")
    threshold = ctx.settings.low_confidence_below
    return (
        alt.Chart(frame, usermeta=SVG)
        .mark_rect()
        .encode(
            x=local_time_x(
                frame["from"],
                field="from",
                title=f"time ({ctx.settings.display_timezone})",
                min_span=timedelta(minutes=2),
                label_format="%H:%M",
            ),
            x2="to:T",
            y=alt.Y("student:N", title=None, sort="ascending"),
            color=alt.Color(
                "behaviour:N",
                scale=alt.Scale(domain=[behaviour_label(b) for b in BEHAVIOURS], scheme="tableau10"),
            ),
            opacity=alt.Opacity(
                "confidence:N",
                scale=alt.Scale(domain=[CONFIDENT, LOW], range=[1.0, 0.3]),
                legend=alt.Legend(title=f"confidence (low: below {threshold:g})"),
            ),
            stroke=alt.condition(cell, alt.value("black"), alt.value(None)),
            tooltip=["student:N", "when:N", "behaviour:N", "confidence (%):Q", "confidence:N"],
        )
        .add_params(cell)
        .properties(height=max(120, 16 * frame["student"].nunique()))
    )


def behaviour_over_time(ctx: PageContext, info: queries.SessionInfo, spans: pd.DataFrame) -> None:
    """The student x time view and, below it, the event of the chosen student and second."""
    st.markdown("**Every student over time** (select a cell to see what the model saw at that second)")
    if spans.empty:
        st.caption("No events to draw.")
        return
    origin = spans["start"].min().to_pydatetime()
    width = column_seconds(spans["end"].max().to_pydatetime() - origin)
    cells = grid_cells(spans, origin=origin, width=width, low_below=ctx.settings.low_confidence_below)
    frame = cells_frame(ctx, cells)
    chart_key, generation_key = f"grid_chart_{info.session_id}", f"grid_pickers_{info.session_id}"
    first = frame["from"].min().to_pydatetime()
    last = frame["to"].max().to_pydatetime() - timedelta(seconds=1)

    def cell_chosen() -> None:  # a click moves the student and second pickers below
        chosen = (st.session_state.get(chart_key) or {}).get("selection", {}).get("cell") or []
        if chosen:
            generation = st.session_state.get(generation_key, 0) + 1
            st.session_state[generation_key] = generation
            student_key, second_key = _picker_keys(info.session_id, generation)
            st.session_state[student_key] = str(chosen[0]["student"])
            st.session_state[second_key] = max(
                first, first + timedelta(seconds=width * int(chosen[0]["column"]))
            )

    st.altair_chart(grid_chart(ctx, frame), width="stretch", key=chart_key, on_select=cell_chosen)
    st.caption(
        f"One column is {width} s; a cell shows the behaviour that covers most of its observed seconds, "
        f"faded when its events' confidence is below {ctx.settings.low_confidence_below:g}."
    )
    student_key, second_key = _picker_keys(info.session_id, st.session_state.get(generation_key, 0))
    left, right = st.columns([1, 2])
    student = left.selectbox("Student", sorted(frame["student"].unique()), key=student_key)
    last = max(last, first + timedelta(seconds=1))
    st.session_state[second_key] = min(max(st.session_state.get(second_key) or first, first), last)
    second = right.slider(
        f"Second ({ctx.settings.display_timezone})",
        min_value=first,
        max_value=last,
        step=timedelta(seconds=1),
        format="HH:mm:ss",
        key=second_key,
    )
    moment = second.replace(tzinfo=ctx.zone).astimezone(UTC)
    _explain(ctx, info, str(student), moment)


def _explain(ctx: PageContext, info: queries.SessionInfo, student: str, moment: datetime) -> None:
    detail = queries.event_at(ctx.engine, ctx.viewer, info.session_id, student, moment)
    at = ctx.when(moment, "%H:%M:%S")
    if detail is None:
        st.caption(f"No event of student {plain(student)} covers {at}: the student was not observed then.")
        return
    low = detail.confidence < ctx.settings.low_confidence_below
    st.markdown(
        f"**{at}** · student **{plain(student)}** · **{plain(behaviour_label(detail.label))}**, confidence "
        f"{percent(detail.confidence)} · window {ctx.when(detail.window_start, '%H:%M:%S')}–"
        f"{ctx.when(detail.window_end, '%H:%M:%S')} · model {plain(detail.model_version)}"
    )
    if low:
        st.warning(
            f"Low confidence: the model gave this label {percent(detail.confidence)}, below "
            f"{ctx.settings.low_confidence_below:g}. Read it as a guess.",
            icon=":material/help:",
        )
    top, keypoints, frames = st.columns(3)
    with top:
        st.markdown("**Top five** (probability, %)")
        st.altair_chart(_top5_chart(detail), width="stretch")
    if not detail.keypoint_weights and not detail.frame_weights:
        keypoints.caption(
            "No attention weights were stored with this event (synthetic data, or a recogniser that "
            "does not report them)."
        )
        return
    with keypoints:
        st.markdown("**Attention over keypoints**")
        st.altair_chart(_keypoint_chart(detail), width="stretch")
    with frames:
        st.markdown("**Attention over the window's frames**")
        st.altair_chart(_frame_chart(ctx, detail), width="stretch")


def _bars(frame: pd.DataFrame, *, value: str, category: str, sort: Any, height: int) -> alt.Chart:
    return (
        alt.Chart(frame)
        .mark_bar()
        .encode(
            x=alt.X(f"{value}:Q"),
            y=alt.Y(f"{category}:N", sort=sort, title=None),
            tooltip=[f"{category}:N", alt.Tooltip(f"{value}:Q", format=".3f")],
        )
        .properties(height=height)
    )


def _top5_chart(detail: queries.EventDetail) -> alt.Chart:
    frame = pd.DataFrame(
        {
            "behaviour": [behaviour_label(label) for label, _ in detail.top5],
            "probability (%)": [round(100 * p, 1) for _, p in detail.top5],
        }
    )
    return _bars(frame, value="probability (%)", category="behaviour", sort="-x", height=160)


def _keypoint_chart(detail: queries.EventDetail) -> alt.Chart:
    names = list(KEYPOINTS) if len(detail.keypoint_weights) == len(KEYPOINTS) else None
    frame = pd.DataFrame(
        {
            "keypoint": [
                (names[i] if names else f"keypoint {i}").replace("_", " ")
                for i in range(len(detail.keypoint_weights))
            ],
            "weight": detail.keypoint_weights,
        }
    )
    return _bars(frame, value="weight", category="keypoint", sort=list(frame["keypoint"]), height=300)


def _frame_chart(ctx: PageContext, detail: queries.EventDetail) -> alt.Chart:
    n = len(detail.frame_weights)
    step = (detail.window_end - detail.window_start) / max(n, 1)
    frame = pd.DataFrame(
        {
            "frame": [f"{i + 1}: {ctx.when(detail.window_start + i * step, '%H:%M:%S')}" for i in range(n)],
            "weight": detail.frame_weights,
        }
    )
    return _bars(frame, value="weight", category="frame", sort=list(frame["frame"]), height=300)
