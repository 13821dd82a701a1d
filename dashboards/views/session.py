"""One session: class engagement over time, behaviour distribution, alerts, a per-student table,
every student over time (dashboards/views/event_view.py), and one student in detail.

A live session (its newest event at most DASHBOARD_LIVE_WITHIN_SECONDS old) is marked as
live and redraws itself every DASHBOARD_LIVE_REFRESH_SECONDS, as a Streamlit fragment; once
it has finished, one whole rerun draws it as finished, and it stops refreshing.
"""

from __future__ import annotations

from datetime import timedelta

import altair as alt
import pandas as pd
import streamlit as st

from dashboards import queries
from dashboards.behaviour_grid import low_confidence_share
from dashboards.views.common import (
    PageContext,
    current_route,
    download_csv,
    failures_as_messages,
    go,
    low_confidence_caption,
    low_confidence_columns,
    mapping_caption,
    marked_table,
    mirror_route_in_url,
    model_banner,
    open_button,
    percent,
    plain,
    sort_frame,
)
from dashboards.views.event_view import behaviour_over_time
from dashboards.views.login import login_still_valid
from dashboards.views.widgets import alerts_frame, behaviour_bars, behaviour_label, local_time_x
from services.common.vocabulary import BEHAVIOURS

SORTABLE = {
    "student": "student",
    "engagement (%)": "engagement",
    "engaged share (%)": "engaged share",
    "phone minutes": "phone minutes",
    "hand raises": "hand raises",
    "observed minutes": "observed minutes",
    "low-confidence events (%)": "low-confidence events (%)",
}


def students_frame(rows: list[queries.StudentRow], low_share: pd.Series | None = None) -> pd.DataFrame:
    """The per-student table (one row per student present) as the page and the CSV show it;
    ``low_share`` is each student's share of low-confidence events (0..1)."""
    low = low_share if low_share is not None else pd.Series(dtype=float)
    frame = pd.DataFrame(
        {
            "student": [r.student_id for r in rows],
            "seat": [r.seat_id for r in rows],
            "observed minutes": [round(r.observed_minutes, 2) for r in rows],
            "engagement": [None if r.engagement is None else round(100 * r.engagement, 1) for r in rows],
            "engaged share": [
                None if r.engaged_share is None else round(100 * r.engaged_share, 1) for r in rows
            ],
            "hand raises": [r.hand_raises for r in rows],
            "phone minutes": [round(r.phone_minutes, 2) for r in rows],
            **low_confidence_columns(
                [float(low[r.student_id]) if r.student_id in low.index else None for r in rows]
            ),
            **{f"{behaviour_label(b)} (min)": [round(r.minutes[b], 2) for r in rows] for b in BEHAVIOURS},
        }
    )
    return frame


def timeline_frame(ctx: PageContext, timeline: queries.SessionTimeline) -> pd.DataFrame:
    """One row per minute from the first to the last observed one; gap minutes hold no values."""
    if not timeline.points:
        return pd.DataFrame(columns=["minute", "engagement", "engaged share", "students seen"])
    observed = {p.minute: p for p in timeline.points}
    minute, last = timeline.points[0].minute, timeline.points[-1].minute
    rows = []
    while minute <= last:
        point = observed.get(minute)
        rows.append(
            {
                "minute": ctx.local(minute).replace(tzinfo=None),
                "engagement": None if point is None or point.engagement is None else 100 * point.engagement,
                "engaged share": None
                if point is None or point.engaged_share is None
                else 100 * point.engaged_share,
                "students seen": None if point is None else round(point.students_seen, 1),
            }
        )
        minute += timedelta(minutes=1)
    return pd.DataFrame(rows)


def _timeline_chart(ctx: PageContext, frame: pd.DataFrame, gaps: list[queries.Gap]) -> alt.LayerChart:
    long = frame.melt(
        id_vars=["minute"],
        value_vars=["engagement", "engaged share"],
        var_name="measure",
        value_name="percent",
    )

    def x(field: str) -> alt.X:  # one scale for every layer
        return local_time_x(
            frame["minute"],
            field=field,
            title=f"time ({ctx.settings.display_timezone})",
            min_span=timedelta(minutes=10),
            label_format="%H:%M",
        )

    long["when"] = pd.to_datetime(long["minute"]).dt.strftime("%H:%M")
    # nulls break the line, so a camera gap shows as a gap, not as a straight line across it
    lines = (
        alt.Chart(long)
        .mark_line(point=False, invalid="break-paths-show-domains")
        .encode(
            x=x("minute"),
            y=alt.Y("percent:Q", title="% of observed time", scale=alt.Scale(domain=[0, 100])),
            color=alt.Color("measure:N", title=None),
            tooltip=[
                alt.Tooltip("when:N", title=f"minute ({ctx.settings.display_timezone})"),
                "measure:N",
                alt.Tooltip("percent:Q", format=".0f"),
            ],
        )
    )
    threshold = (
        alt.Chart(pd.DataFrame({"alert below": [100 * ctx.mapping.alert_below]}))
        .mark_rule(strokeDash=[4, 4], color="firebrick")
        .encode(y="alert below:Q")
    )
    layers: list[alt.Chart] = [lines, threshold]
    if gaps:
        gap_frame = pd.DataFrame(
            {
                "from": [ctx.local(g.start).replace(tzinfo=None) for g in gaps],
                "to": [ctx.local(g.end).replace(tzinfo=None) for g in gaps],
                "what": "no observations",
            }
        )
        layers.insert(
            0,
            alt.Chart(gap_frame)
            .mark_rect(opacity=0.25, color="gray")
            .encode(x=x("from"), x2="to:T", tooltip=["what:N"]),
        )
    return alt.LayerChart(layer=layers, height=280)


def _choose_session(ctx: PageContext) -> str | None:
    st.info("Choose a session on the Sessions page, or enter a session id.")
    typed = st.text_input("Session id", key="session_id_input").strip()
    if typed:
        go("session", session=typed)
        return typed
    return None


def _student_detail(
    ctx: PageContext,
    info: queries.SessionInfo,
    students: list[queries.StudentRow],
    alerts: list[queries.Alert],
    preferred: str | None,
    order: list[str],
) -> None:
    """One student in this session: their numbers, when they were disengaged, and a link across sessions.

    The choice lists students in the table's order, so without a student in the URL the first
    shown is the table's first (by default the least engaged).
    """
    st.markdown("**One student in this session**")
    ids = order
    chosen = st.selectbox(
        "Student",
        ids,
        index=ids.index(preferred) if preferred in ids else 0,
        key=f"session_student_{info.session_id}",
    )
    if chosen != preferred:
        go("session", student=chosen)  # the URL names the student, so the view can be shared
        mirror_route_in_url(current_route())  # a live page's redraw runs without app.py's mirroring
    row = next(r for r in students if r.student_id == chosen)
    a, b, c, d, e = st.columns(5)
    a.metric("Engagement", percent(row.engagement), help="time-weighted mean of the mapping's weights")
    b.metric("Engaged share", percent(row.engaged_share))
    c.metric("Hand raises", row.hand_raises)
    d.metric("Phone minutes", f"{row.phone_minutes:.1f}")
    e.metric("Observed minutes", f"{row.observed_minutes:.1f}")
    own = [a for a in alerts if a.student_id == chosen]
    if own:
        st.warning(
            "Low engagement "
            + "; ".join(
                f"{ctx.when(a.start, '%H:%M')}–{ctx.when(a.end, '%H:%M')} ({a.minutes} min)" for a in own
            ),
            icon=":material/trending_down:",
        )
    points = queries.student_minutes(ctx.engine, ctx.viewer, ctx.mapping, info.session_id, chosen)
    timeline = queries.SessionTimeline(points=points, gaps=queries.find_gaps([p.minute for p in points]))
    st.altair_chart(_timeline_chart(ctx, timeline_frame(ctx, timeline), timeline.gaps), width="stretch")
    open_button(
        "Open this student across sessions",
        page="student",
        id_name="student",
        choice_key=f"session_student_{info.session_id}",
        key="session_open_student",
    )


def render(ctx: PageContext, session_id: str | None, preferred_student: str | None = None) -> None:
    st.title("One session")
    st.caption(mapping_caption(ctx.mapping))
    session_id = session_id or _choose_session(ctx)
    if not session_id:
        return
    try:
        info = queries.get_session(ctx.engine, ctx.viewer, session_id)
    except queries.SessionNotAccessible as exc:
        st.error(plain(exc))
        return
    if ctx.is_live(info.ended_at):
        st.fragment(_live_session, run_every=ctx.settings.live_refresh_seconds)(ctx, session_id)
    else:
        _session_body(ctx, info, preferred_student, live=False)


def _live_session(ctx: PageContext, session_id: str) -> None:
    """One redraw of a live session: read it again, draw it, and when it has finished, rerun the
    whole page so that it is drawn once more without the timer. A redraw runs without app.py, so
    it checks the login itself; an expired one reruns the page, which then asks for a login. A
    button in it that opened another page (its callback moved the route) reruns the whole app too,
    which draws that page: a redraw alone would draw this session again."""
    if not login_still_valid(ctx.engine, ctx.settings) or current_route()["page"] != "session":
        st.rerun()
    live = True
    with failures_as_messages(ctx.settings):
        info = queries.get_session(ctx.engine, ctx.viewer, session_id)
        live = ctx.is_live(info.ended_at)
        _session_body(ctx, info, current_route().get("student"), live=live)
    if not live:
        st.rerun()


def _session_body(ctx: PageContext, info: queries.SessionInfo, preferred: str | None, *, live: bool) -> None:
    _header(ctx, info, live=live)
    models = _model_banners(ctx, info)
    students = queries.student_table(ctx.engine, ctx.viewer, ctx.mapping, info.session_id)
    if not students:
        st.info("No student was observed in this session (no behaviour events were stored for it).")
        return
    spans = queries.session_event_spans(ctx.engine, ctx.viewer, info.session_id)
    _class_numbers(ctx, students, spans)
    timeline = queries.session_timeline(ctx.engine, ctx.viewer, ctx.mapping, info.session_id)
    _gap_warnings(ctx, timeline.gaps)
    _class_charts(ctx, info, timeline)
    alerts = queries.session_alerts(ctx.engine, ctx.viewer, ctx.mapping, info.session_id)
    context = _csv_context(ctx, info, models)
    _alerts_section(ctx, info, alerts, context)
    order = _students_section(ctx, info, students, spans, context)
    behaviour_over_time(ctx, info, spans)
    _student_detail(ctx, info, students, alerts, preferred, order)


def _header(ctx: PageContext, info: queries.SessionInfo, *, live: bool) -> None:
    st.subheader(
        f"{plain(info.course_name or info.course_id or '(no course)')} · "
        f"{plain(info.classroom_name or info.classroom_id)}"
    )
    if live:
        st.badge("Live", icon=":material/sensors:", color="red")
        st.caption(
            f"Still recording: the newest event is from {ctx.when(info.ended_at, '%H:%M:%S')}. This page "
            f"redraws itself every {ctx.settings.live_refresh_seconds} s; its numbers grow until the session ends."
        )
    else:
        st.badge("Finished", icon=":material/check_circle:", color="gray")
    st.caption(
        f"Session {plain(info.session_id)} · {ctx.when(info.started_at)} – "
        f"{ctx.when(info.ended_at, '%H:%M')} ({plain(ctx.settings.display_timezone)}) · "
        f"camera {plain(info.camera_id or '?')}"
    )


def _model_banners(ctx: PageContext, info: queries.SessionInfo) -> list[queries.ModelUse]:
    models = queries.session_models(ctx.engine, ctx.viewer, info.session_id)
    model_banner(
        [(m.model_version, m.model_trained) for m in models] or [(info.model_version, info.model_trained)],
        ctx,
    )
    if len(models) > 1:
        st.caption(
            "Events by model: "
            + ", ".join(
                f"{plain(m.model_version)} ({'trained' if m.model_trained else 'untrained'}): {m.events}"
                for m in models
            )
        )
    return models


def _class_numbers(ctx: PageContext, students: list[queries.StudentRow], spans: pd.DataFrame) -> None:
    total = {b: sum(r.minutes[b] for r in students) * 60 for b in BEHAVIOURS}
    a, b, c, d, e = st.columns(5)
    a.metric("Students present", len(students))
    scores = [r.engagement for r in students if r.engagement is not None]
    b.metric(
        "Mean engagement", percent(sum(scores) / len(scores) if scores else None), help="mean over students"
    )
    c.metric(
        "Class engaged share",
        percent(ctx.mapping.engaged_share(total)),
        help="share of all observed student time",
    )
    d.metric("Hand raises", sum(r.hand_raises for r in students))
    e.metric("Phone minutes", f"{sum(r.phone_minutes for r in students):.0f}")
    below = ctx.settings.low_confidence_below
    low = int((spans["confidence"] < below).sum()) if not spans.empty else 0
    low_confidence_caption(
        ctx,
        [queries.ConfidenceCount(low, len(spans))],
        behind="in this session",
        elsewhere=" They are faded in the student × time view and flagged in the event export.",
    )


def _gap_warnings(ctx: PageContext, gaps: list[queries.Gap]) -> None:
    for gap in gaps:
        st.warning(
            f"No observations from {ctx.when(gap.start, '%H:%M')} to {ctx.when(gap.end, '%H:%M')} "
            f"({gap.minutes} min): the camera or the pipeline was down, so these minutes are missing, "
            "not zero.",
            icon=":material/videocam_off:",
        )


def _class_charts(ctx: PageContext, info: queries.SessionInfo, timeline: queries.SessionTimeline) -> None:
    minutes = queries.behaviour_minutes(ctx.engine, ctx.viewer, info.session_id)
    left, right = st.columns([3, 2])
    with left:
        st.markdown("**Class engagement over time** (per minute, all students)")
        st.altair_chart(_timeline_chart(ctx, timeline_frame(ctx, timeline), timeline.gaps), width="stretch")
    with right:
        st.markdown("**Behaviour distribution** (student-minutes)")
        st.altair_chart(behaviour_bars(ctx.mapping, minutes, value_title="student-minutes"), width="stretch")


def _csv_context(
    ctx: PageContext, info: queries.SessionInfo, models: list[queries.ModelUse]
) -> dict[str, str]:
    """The columns that every CSV of this session starts with."""
    return {
        "session": info.session_id,
        "course": info.course_id,
        "date": ctx.when(info.started_at, "%Y-%m-%d"),
        "model": "; ".join(m.model_version for m in models) or info.model_version,
    }


def _alerts_section(
    ctx: PageContext, info: queries.SessionInfo, alerts: list[queries.Alert], context: dict[str, str]
) -> None:
    st.markdown(
        f"**Alerts** ({len(alerts)}): engagement below {percent(ctx.mapping.alert_below)} "
        f"for at least {ctx.mapping.alert_minutes} minutes"
    )
    if not alerts:
        st.caption("No sustained low engagement in this session.")
        return
    low = queries.low_confidence_of_alerts(
        ctx.engine, ctx.viewer, alerts, below=ctx.settings.low_confidence_below
    )
    frame = alerts_frame(ctx, alerts, low)
    marked_table(frame, "session_alerts_table")
    download_csv(
        frame,
        label="Download CSV (alerts)",
        file_name=f"session-{info.session_id}-alerts-{ctx.mapping.name}-{ctx.mapping.digest}.csv",
        key="session_alerts_csv",
        **context,
    )


def _students_section(
    ctx: PageContext,
    info: queries.SessionInfo,
    students: list[queries.StudentRow],
    spans: pd.DataFrame,
    context: dict[str, str],
) -> list[str]:
    """The students table, sortable, with its CSV and the session's event export; the students in
    the order shown."""
    st.markdown("**Students**")
    frame = students_frame(students, low_confidence_share(spans, ctx.settings.low_confidence_below))
    left, right = st.columns([2, 1])
    with left:
        sort_label = st.selectbox("Sort by", list(SORTABLE), index=1, key="session_sort")
    with right:
        descending = st.toggle("Highest first", value=False, key="session_sort_desc")
    frame = sort_frame(frame, SORTABLE[sort_label], descending).rename(
        columns={"engagement": "engagement (%)", "engaged share": "engaged share (%)"}
    )
    marked_table(frame, "session_students_table")
    download_csv(
        frame,
        label="Download CSV (students)",
        file_name=f"session-{info.session_id}-students-{ctx.mapping.name}-{ctx.mapping.digest}.csv",
        key="session_csv",
        **context,
    )
    events = queries.session_events(ctx.engine, ctx.viewer, info.session_id)
    if not events.empty:
        threshold = ctx.settings.low_confidence_below
        events[f"low confidence (below {threshold:g})"] = events["confidence (0-1)"] < threshold
    download_csv(
        events,
        label="Download CSV (every event)",
        file_name=f"session-{info.session_id}-events.csv",
        key="session_events_csv",
        session=info.session_id,
        course=info.course_id,
        date=context["date"],
        model=list(events["model"]) if not events.empty else context["model"],
    )
    return list(frame["student"])
