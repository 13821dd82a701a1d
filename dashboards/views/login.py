"""Login form and the checks that keep a login valid (expiry, idle timeout, user still present).

A login lives in the browser session (st.session_state) and, so that a reload keeps it, in a
cookie holding a signed token (dashboards/auth.py: username and times, never the password).
The cookie is read once per browser session, when Streamlit opens it; it is written by a
small script on the page (Streamlit has no server-side Set-Cookie), SameSite=Strict, Secure
over HTTPS, and expires with the login's age limit. Its idle clock moves at most once a
minute, so the idle limit holds to the minute across a reload.
"""

from __future__ import annotations

import json
import logging
import secrets
from datetime import UTC, datetime, timedelta

import streamlit as st
from sqlalchemy.engine import Engine

from dashboards.auth import (
    LoginLimits,
    LoginSession,
    Viewer,
    authenticate,
    current_viewer,
    login_from_token,
    login_token,
    password_hash_of,
)
from dashboards.config import DashboardSettings

log = logging.getLogger("dashboards.login")
LOGIN_KEY = "login"
LOGIN_COOKIE = "classroom_login"
COOKIE_REFRESH = timedelta(minutes=1)
_COOKIE_CHECKED, _COOKIE_WRITTEN, _COOKIE_CLEAR = (
    "login_cookie_checked",
    "login_cookie_written",
    "login_cookie_clear",
)


@st.cache_resource(show_spinner=False)
def _process_key() -> bytes:
    """The signing key when DASHBOARD_LOGIN_SECRET is unset: logins then end when the process does."""
    return secrets.token_bytes(32)


def signing_key(settings: DashboardSettings) -> bytes:
    return settings.login_secret.get_secret_value().encode() if settings.login_secret else _process_key()


def _browser_cookie() -> str | None:
    try:
        return st.context.cookies.get(LOGIN_COOKIE)
    except Exception:  # st.context is unavailable outside a browser session
        return None


def _set_cookie(token: str, max_age_s: int) -> None:
    """Write (or with max_age_s 0, delete) the login cookie from a script on the page."""
    assignment = f"{LOGIN_COOKIE}={token}; Max-Age={max_age_s}; Path=/; SameSite=Strict"
    st.html(
        f"<script>document.cookie = {json.dumps(assignment)}"
        " + (location.protocol === 'https:' ? '; Secure' : '');</script>",
        unsafe_allow_javascript=True,
    )


def _restore_from_cookie(engine: Engine, settings: DashboardSettings) -> None:
    """Once per browser session (a reload starts a new one): a valid cookie restores the login."""
    if st.session_state.get(_COOKIE_CHECKED):
        return
    st.session_state[_COOKIE_CHECKED] = True
    token = _browser_cookie()
    if not token or LOGIN_KEY in st.session_state:
        return
    login = login_from_token(engine, token, key=signing_key(settings))
    if login is None:
        st.session_state[_COOKIE_CLEAR] = True
        return
    st.session_state[LOGIN_KEY] = login
    st.session_state[_COOKIE_WRITTEN] = login.last_seen


def _keep_cookie(engine: Engine, settings: DashboardSettings, login: LoginSession) -> None:
    """Re-sign the cookie when its idle clock is a minute behind (or it was never written)."""
    written = st.session_state.get(_COOKIE_WRITTEN)
    if written is not None and login.last_seen - written < COOKIE_REFRESH:
        return
    password_hash = password_hash_of(engine, login.username)
    if password_hash is None:
        return
    ttl = timedelta(minutes=settings.session_ttl_minutes)
    remaining = int((login.issued_at + ttl - login.last_seen).total_seconds())
    _set_cookie(login_token(login, key=signing_key(settings), password_hash=password_hash), max(remaining, 0))
    st.session_state[_COOKIE_WRITTEN] = login.last_seen


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
    _restore_from_cookie(engine, settings)
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
        st.session_state[_COOKIE_CLEAR] = True
        return None
    login = LoginSession(login.username, login.issued_at, now)
    st.session_state[LOGIN_KEY] = login
    _keep_cookie(engine, settings, login)
    return viewer


def login_still_valid(engine: Engine, settings: DashboardSettings) -> bool:
    """Whether this browser session's login still holds, without moving its idle clock: a page that
    redraws itself is not a click, so a live page left open still expires."""
    login: LoginSession | None = st.session_state.get(LOGIN_KEY)
    if login is None:
        return False
    reason = login.expiry_reason(
        datetime.now(UTC),
        ttl=timedelta(minutes=settings.session_ttl_minutes),
        idle=timedelta(minutes=settings.idle_timeout_minutes),
    )
    return reason is None and current_viewer(engine, login.username) is not None


def logout() -> None:
    st.session_state.pop(LOGIN_KEY, None)
    st.session_state.pop(_COOKIE_WRITTEN, None)
    st.session_state[_COOKIE_CLEAR] = True
    st.session_state["login_notice"] = "You are logged out."


def render_login(engine: Engine, settings: DashboardSettings) -> None:
    st.title("Classroom engagement")
    if st.session_state.pop(_COOKIE_CLEAR, False):
        _set_cookie("", 0)
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
    st.session_state.pop(_COOKIE_WRITTEN, None)  # the next run writes this login's cookie
    st.rerun()
