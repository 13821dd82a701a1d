"""Login form and the checks that keep a login valid (expiry, idle timeout, user still present)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import streamlit as st
from sqlalchemy.engine import Engine

from dashboards.auth import LoginLimits, LoginSession, Viewer, authenticate, current_viewer
from dashboards.config import DashboardSettings

log = logging.getLogger("dashboards.login")
LOGIN_KEY = "login"


def client_address() -> str:
    """The client's address as Streamlit sees it (the proxy's, behind one); 'unknown' in tests."""
    try:
        address = st.context.ip_address
    except Exception:  # st.context is unavailable outside a browser session
        return "unknown"
    return address if isinstance(address, str) and address else "unknown"


def limits_from(settings: DashboardSettings) -> LoginLimits:
    return LoginLimits(
        max_failures_per_user=settings.max_failures_per_user,
        max_failures_per_client=settings.max_failures_per_client,
        window=timedelta(minutes=settings.lockout_window_minutes),
    )


def logged_in_viewer(engine: Engine, settings: DashboardSettings) -> Viewer | None:
    """The viewer of a still-valid login, refreshing its idle clock; None (with a message) otherwise."""
    login: LoginSession | None = st.session_state.get(LOGIN_KEY)
    if login is None:
        return None
    now = datetime.now(UTC)
    reason = login.expiry_reason(
        now,
        ttl=timedelta(minutes=settings.session_ttl_minutes),
        idle=timedelta(minutes=settings.idle_timeout_minutes),
    )
    viewer = None if reason else current_viewer(engine, login.username)
    if viewer is None:
        del st.session_state[LOGIN_KEY]
        st.session_state["login_notice"] = reason or "Your account no longer exists; ask an administrator."
        return None
    st.session_state[LOGIN_KEY] = LoginSession(login.username, login.issued_at, now)
    return viewer


def logout() -> None:
    st.session_state.pop(LOGIN_KEY, None)
    st.session_state["login_notice"] = "You are logged out."


def render_login(engine: Engine, settings: DashboardSettings) -> None:
    st.title("Classroom engagement")
    notice = st.session_state.pop("login_notice", None)
    if notice:
        st.info(notice)
    with st.form("login_form"):
        username = st.text_input("Username", key="login_username")
        password = st.text_input("Password", type="password", key="login_password")
        submitted = st.form_submit_button("Log in")
    if not submitted:
        return
    if not username or not password:
        st.error("Enter a username and a password.")
        return
    result = authenticate(
        engine, username.strip(), password, client=client_address(), limits=limits_from(settings)
    )
    if result.viewer is None:
        log.warning("failed login for %r from %s: %s", username, client_address(), result.message)
        st.error(result.message)
        return
    now = datetime.now(UTC)
    st.session_state[LOGIN_KEY] = LoginSession(result.viewer.username, now, now)
    st.rerun()
