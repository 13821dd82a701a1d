"""The engagement dashboard (Streamlit entry point): ``streamlit run dashboards/app.py``.

Reads only SQL: the store's tables through dashboards/queries.py. Settings come from
DASHBOARD_* environment variables (dashboards/config.py). Every page needs a login; the
route (page, session, student) lives in the browser session and is mirrored in the URL,
so a link such as ``?page=session&session=<id>`` opens that session after the login, if
the viewer may see it. Whatever goes wrong becomes a message on the page; the stack trace
goes to the server's log only.
"""

from __future__ import annotations

import streamlit as st
from pydantic import ValidationError
from sqlalchemy.engine import Engine

from dashboards.config import DashboardSettings
from dashboards.database import DatabaseUnavailable, open_engine
from dashboards.views import alerts, session, sessions, student
from dashboards.views.common import (
    PAGES,
    PageContext,
    current_route,
    failures_as_messages,
    mapping_caption,
    mirror_route_in_url,
    nav_key,
    plain,
)
from dashboards.views.login import logged_in_viewer, logout, render_login
from services.common.engagement import EngagementMapping, load_mapping


@st.cache_resource(show_spinner=False)
def _engine(database_url: str) -> Engine:
    return open_engine(database_url)


@st.cache_resource(show_spinner=False)
def _mapping(path: str | None) -> EngagementMapping:
    return load_mapping(path)


def _startup() -> tuple[DashboardSettings, Engine, EngagementMapping] | None:
    """Settings, engine and mapping, or None after showing why the dashboard cannot start."""
    try:
        settings = DashboardSettings()
    except ValidationError as exc:
        problems = "; ".join(
            f"DASHBOARD_{'.'.join(map(str, e['loc'])).upper()}: {e['msg']}" for e in exc.errors()
        )
        st.error(f"The dashboard's configuration is invalid: {plain(problems)}")
        return None
    try:
        mapping = _mapping(
            str(settings.engagement_mapping_file) if settings.engagement_mapping_file else None
        )
    except (OSError, ValueError) as exc:
        st.error(f"The engagement mapping cannot be loaded: {plain(exc)}")
        return None
    try:
        engine = _engine(settings.database_url)
    except DatabaseUnavailable as exc:
        st.error(
            f"{plain(exc)} The dashboard will show data again once the database is back; reload the page."
        )
        return None
    return settings, engine, mapping


def _sidebar(ctx: PageContext, route: dict[str, str]) -> str:
    with st.sidebar:
        st.markdown(f"**{plain(ctx.viewer.username)}** · {ctx.viewer.role.value}")
        st.button("Log out", on_click=logout, key="logout")
        key = nav_key()
        if key not in st.session_state:
            st.session_state[key] = route["page"]
        page = str(st.radio("Page", list(PAGES), format_func=PAGES.get, key=key))
        st.divider()
        st.caption(ctx.zone_caption())
        st.caption(mapping_caption(ctx.mapping))
    return page


def main() -> None:
    st.set_page_config(page_title="Classroom engagement", page_icon=":material/school:", layout="wide")
    started = _startup()
    if started is None:
        return
    settings, engine, mapping = started
    route = current_route()  # taken from the URL on the first run, before the login
    with failures_as_messages(settings):
        viewer = logged_in_viewer(engine, settings)
        if viewer is None:
            render_login(engine, settings)
            return
        ctx = PageContext(settings=settings, engine=engine, viewer=viewer, mapping=mapping)
        page = _sidebar(ctx, route)
        if page != route["page"]:
            route["page"] = page
            st.session_state["route"] = route
        mirror_route_in_url(route)
        if page == "sessions":
            sessions.render(ctx)
        elif page == "session":
            session.render(ctx, route.get("session"), route.get("student"))
        elif page == "student":
            student.render(ctx, route.get("student"))
        else:
            alerts.render(ctx)
        mirror_route_in_url(current_route())  # a page may have chosen a session or student meanwhile


main()
