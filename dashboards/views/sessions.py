"""Sessions page: every class session the viewer may see, filtered by classroom, course and dates."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboards import queries
from dashboards.views.common import PageContext, download_csv, mapping_caption, model_banner, open_button
from dashboards.views.widgets import classroom_and_course, date_range, engagement_trend


def sessions_frame(ctx: PageContext, rows: list[queries.SessionRow]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "start": [ctx.local(r.started_at).replace(tzinfo=None) for r in rows],
            "minutes": [round((r.ended_at - r.started_at).total_seconds() / 60) for r in rows],
            "classroom": [r.classroom_name or r.classroom_id for r in rows],
            "course": [r.course_name or r.course_id or "(no course)" for r in rows],
            "students present": [r.students_present for r in rows],
            "mean engagement": [None if r.mean_engagement is None else 100 * r.mean_engagement for r in rows],
            "status": ["live" if ctx.is_live(r.ended_at) else "finished" for r in rows],
            "session": [r.session_id for r in rows],
        }
    )


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

    model_banner(((r.model_version, r.model_trained) for r in listing.rows), ctx)
    a, b, c = st.columns(3)
    a.metric("Sessions matching", f"{listing.total:,}")
    means = [r.mean_engagement for r in listing.rows if r.mean_engagement is not None]
    b.metric("Mean engagement (this page)", "–" if not means else f"{100 * sum(means) / len(means):.0f} %")
    c.metric(
        "Students present (this page, mean)",
        f"{sum(r.students_present for r in listing.rows) / len(listing.rows):.1f}",
    )

    frame = sessions_frame(ctx, listing.rows)
    if (classroom or course) and len(frame) >= 2:
        st.subheader("Engagement over the semester")
        chart = engagement_trend(frame, value="mean engagement", timezone=ctx.settings.display_timezone)
        st.altair_chart(chart, width="stretch")

    st.subheader(f"{len(frame)} of {listing.total:,} sessions")
    live = int((frame["status"] == "live").sum())
    if live:
        st.badge(f"{live} live", icon=":material/sensors:", color="red")
        st.caption("A live session is still recording; its page redraws itself while it lasts.")
    st.dataframe(
        frame,
        hide_index=True,
        width="stretch",
        column_config={
            "start": st.column_config.DatetimeColumn(
                f"start ({ctx.settings.display_timezone})", format="ddd D MMM YYYY, HH:mm"
            ),
            "mean engagement": st.column_config.ProgressColumn(
                "mean engagement", format="%.0f %%", min_value=0, max_value=100
            ),
        },
        key="sessions_table",
    )
    download_csv(
        frame.rename(
            columns={
                "start": f"start ({ctx.settings.display_timezone})",
                "mean engagement": "mean engagement (%)",
            }
        ),
        label="Download CSV",
        file_name=f"sessions-{ctx.mapping.name}-{ctx.mapping.digest}.csv",
        key="sessions_csv",
    )
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
