"""Sessions page: every class session the viewer may see, filtered by classroom, course and dates.

While a listed session is live (its newest event at most DASHBOARD_LIVE_WITHIN_SECONDS old),
the list redraws itself every DASHBOARD_LIVE_REFRESH_SECONDS, as a Streamlit fragment like the
session page's; once none is live, one whole rerun draws it without the timer. Opening a
session stays outside the fragment, so that it reruns the whole app and switches page.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st
from sqlalchemy.engine import Engine

from dashboards import queries
from dashboards.auth import Viewer
from dashboards.views.common import (
    PageContext,
    download_csv,
    failures_as_messages,
    low_confidence_caption,
    low_confidence_columns,
    mapping_caption,
    marked_table,
    model_banner,
    open_button,
)
from dashboards.views.login import login_still_valid
from dashboards.views.widgets import classroom_and_course, date_range, engagement_trend


def sessions_frame(
    ctx: PageContext, rows: list[queries.SessionRow], low: dict[str, queries.ConfidenceCount]
) -> pd.DataFrame:
    """The sessions table as the page shows it; ``low``: each session's low-confidence events."""
    return pd.DataFrame(
        {
            "start": [ctx.local(r.started_at).replace(tzinfo=None) for r in rows],
            "minutes": [round((r.ended_at - r.started_at).total_seconds() / 60) for r in rows],
            "classroom": [r.classroom_name or r.classroom_id for r in rows],
            "course": [r.course_name or r.course_id or "(no course)" for r in rows],
            "students present": [r.students_present for r in rows],
            "mean engagement": [None if r.mean_engagement is None else 100 * r.mean_engagement for r in rows],
            **low_confidence_columns([low.get(r.session_id, queries.NO_EVENTS).share for r in rows]),
            "status": ["live" if ctx.is_live(r.ended_at) else "finished" for r in rows],
            "session": [r.session_id for r in rows],
        }
    )


@st.cache_data(ttl=600, max_entries=256, show_spinner=False)
def _finished_counts(
    _engine: Engine,
    database_url: str,
    _viewer: Viewer,
    viewer_key: str,
    session_ids: tuple[str, ...],
    below: float,
) -> dict[str, queries.ConfidenceCount]:
    return queries.low_confidence_by_session(_engine, _viewer, session_ids, below=below)


def low_confidence_counts(
    ctx: PageContext, rows: list[queries.SessionRow]
) -> dict[str, queries.ConfidenceCount]:
    """Low-confidence events of the listed sessions. No aggregate keeps them, so they are counted
    from the events; a finished session's do not change, and are kept for a while, so that a live
    list's redraws count only the live sessions' events again."""
    below = ctx.settings.low_confidence_below
    finished = tuple(sorted(r.session_id for r in rows if not ctx.is_live(r.ended_at)))
    live = [r.session_id for r in rows if ctx.is_live(r.ended_at)]
    viewer_key = f"{ctx.viewer.role.value}:{ctx.viewer.username}"
    counts = dict(
        _finished_counts(ctx.engine, ctx.settings.database_url, ctx.viewer, viewer_key, finished, below)
    )
    return counts | queries.low_confidence_by_session(ctx.engine, ctx.viewer, live, below=below)


def render(ctx: PageContext) -> None:
    st.title("Sessions")
    st.caption(mapping_caption(ctx.mapping))
    options = queries.filter_options(ctx.engine, ctx.viewer, timezone=ctx.settings.display_timezone)
    if options.first_day is None or options.last_day is None:
        if ctx.viewer.is_admin:
            st.info("No sessions yet: the store has not recorded any class session in this database.")
        else:
            st.info("No sessions yet for your courses.")
        return

    filter_col, dates_col = st.columns([2, 1])
    with filter_col:
        classroom, course = classroom_and_course(options, key_prefix="sessions")
    with dates_col:
        days = date_range(options, default=(options.first_day, options.last_day), key="sessions_dates")
    first_day, last_day = days or (None, None)

    filters = queries.SessionFilter(
        classroom_id=classroom,
        course_id=course,
        first_day=first_day,
        last_day=last_day,
        timezone=ctx.settings.display_timezone,
    )
    page_size = ctx.settings.sessions_page_size
    page_no = int(st.session_state.get("sessions_page_no", 1))
    listing = queries.list_sessions(
        ctx.engine, ctx.viewer, ctx.mapping, filters, limit=page_size, offset=(page_no - 1) * page_size
    )
    if listing.total == 0:
        st.info("No sessions match these filters.")
        return
    pages = -(-listing.total // page_size)
    if pages > 1:
        st.number_input(
            f"Page (of {pages}; {page_size} sessions per page, most recent first)",
            min_value=1,
            max_value=pages,
            step=1,
            key="sessions_page_no",
        )
    if not listing.rows:  # the page number outlived a narrower filter
        st.info("This page is past the last session; go back to page 1.")
        return

    trend = bool(classroom or course)
    if any(ctx.is_live(r.ended_at) for r in listing.rows):
        st.fragment(_live_listing, run_every=ctx.settings.live_refresh_seconds)(ctx, filters, page_no, trend)
    else:
        _listing(ctx, listing, trend=trend)
    _open_a_session(ctx, listing)


def _live_listing(ctx: PageContext, filters: queries.SessionFilter, page_no: int, trend: bool) -> None:
    """One redraw of a list with a live session: read it again and draw it; when none is live any
    more, rerun the whole page so that it is drawn once more without the timer. A redraw runs
    without app.py, so it checks the login itself (the session page's live redraw does the same)."""
    if not login_still_valid(ctx.engine, ctx.settings):
        st.rerun()
    live = True
    with failures_as_messages(ctx.settings):
        page_size = ctx.settings.sessions_page_size
        listing = queries.list_sessions(
            ctx.engine, ctx.viewer, ctx.mapping, filters, limit=page_size, offset=(page_no - 1) * page_size
        )
        live = any(ctx.is_live(r.ended_at) for r in listing.rows)
        _listing(ctx, listing, trend=trend)
    if not live:
        st.rerun()


def _listing(ctx: PageContext, listing: queries.SessionPage, *, trend: bool) -> None:
    """The page's sessions: model banner, numbers, trend, live marker, table and CSV."""
    zone = ctx.settings.display_timezone
    model_banner(((r.model_version, r.model_trained) for r in listing.rows), ctx)
    a, b, c = st.columns(3)
    a.metric("Sessions matching", f"{listing.total:,}")
    means = [r.mean_engagement for r in listing.rows if r.mean_engagement is not None]
    b.metric("Mean engagement (this page)", "–" if not means else f"{100 * sum(means) / len(means):.0f} %")
    c.metric(
        "Students present (this page, mean)",
        f"{sum(r.students_present for r in listing.rows) / len(listing.rows):.1f}",
    )

    low = low_confidence_counts(ctx, listing.rows)
    frame = sessions_frame(ctx, listing.rows, low)
    if trend and len(frame) >= 2:
        st.subheader("Engagement over the semester")
        st.altair_chart(engagement_trend(frame, value="mean engagement", timezone=zone), width="stretch")

    st.subheader(f"{len(frame)} of {listing.total:,} sessions")
    live = [r for r in listing.rows if ctx.is_live(r.ended_at)]
    if live:
        newest = max(r.ended_at for r in live)
        st.badge(f"{len(live)} live", icon=":material/sensors:", color="red")
        st.caption(
            f"A live session is still recording (newest event {ctx.when(newest, '%H:%M:%S')}); this list "
            f"redraws itself every {ctx.settings.live_refresh_seconds} s while one is live, and so does "
            "a live session's page."
        )
    low_confidence_caption(ctx, low.values(), behind="of the sessions on this page")
    marked_table(
        frame,
        "sessions_table",
        {
            "start": st.column_config.DatetimeColumn(f"start ({zone})", format="ddd D MMM YYYY, HH:mm"),
            "mean engagement": st.column_config.ProgressColumn(
                "mean engagement", format="%.0f %%", min_value=0, max_value=100
            ),
        },
    )
    download_csv(
        frame.rename(
            columns={
                "start": f"start ({zone})",
                "mean engagement": "mean engagement (%)",
                "course": "course name",
            }
        ),
        label="Download CSV",
        file_name=f"sessions-{ctx.mapping.name}-{ctx.mapping.digest}.csv",
        key="sessions_csv",
        session=[r.session_id for r in listing.rows],
        course=[r.course_id for r in listing.rows],
        date=[ctx.when(r.started_at, "%Y-%m-%d") for r in listing.rows],
        model=[r.model_version for r in listing.rows],
    )


def _open_a_session(ctx: PageContext, listing: queries.SessionPage) -> None:
    labels = {
        r.session_id: f"{ctx.when(r.started_at)} · {r.course_name or r.course_id} · {r.classroom_id}"
        for r in listing.rows
    }
    st.selectbox("Open a session", list(labels), format_func=lambda k: labels[k], key="sessions_open_choice")
    open_button(
        "Open session",
        page="session",
        id_name="session",
        choice_key="sessions_open_choice",
        key="sessions_open",
    )
