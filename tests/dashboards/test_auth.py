"""Users, Argon2 password hashes, persisted login rate limits and login expiry."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import Session, select

from dashboards.auth import (
    DashboardUser,
    LoginFailure,
    LoginLimits,
    LoginSession,
    Role,
    UserError,
    Viewer,
    add_user,
    authenticate,
    current_viewer,
    list_users,
    login_from_token,
    login_token,
    password_hash_of,
    remove_user,
)
from dashboards.database import open_engine
from tests.dashboards.conftest import PASSWORD

LIMITS = LoginLimits(max_failures_per_user=3, max_failures_per_client=5, window=timedelta(minutes=15))
NOW = datetime(2025, 3, 3, 12, 0, tzinfo=UTC)


def login(engine, username, password, *, client="10.0.0.1", at=NOW):  # type: ignore[no-untyped-def]
    return authenticate(engine, username, password, client=client, limits=LIMITS, now=at)


def test_passwords_are_stored_as_argon2id_hashes(fresh_db):
    _, engine = fresh_db
    with Session(engine) as session:
        stored = session.get(DashboardUser, "ines")
    assert stored is not None
    assert stored.password_hash.startswith("$argon2id$")
    assert PASSWORD not in stored.password_hash


def test_right_and_wrong_passwords(fresh_db):
    _, engine = fresh_db
    assert login(engine, "ines", PASSWORD).viewer == Viewer("ines", Role.INSTRUCTOR)
    assert login(engine, "root", PASSWORD).viewer == Viewer("root", Role.ADMIN)
    wrong = login(engine, "ines", "not-the-password")
    assert wrong.viewer is None and wrong.message == "Wrong username or password."
    # an unknown name gets the same answer as a wrong password
    assert login(engine, "mallory", PASSWORD).message == wrong.message


def test_failures_per_username_lock_the_account_even_for_the_right_password(fresh_db):
    _, engine = fresh_db
    for i in range(3):
        assert (
            login(engine, "ines", "guess", client=f"10.0.0.{i}", at=NOW + timedelta(seconds=i)).viewer is None
        )
    locked = login(engine, "ines", PASSWORD, client="10.9.9.9", at=NOW + timedelta(minutes=1))
    assert locked.viewer is None and "Too many failed logins" in locked.message
    # the oldest failure (NOW) leaves the 15-minute window at NOW+15min: 14 minutes to wait at NOW+1min
    assert locked.retry_after_s == 14 * 60 + 1
    assert login(engine, "ines", PASSWORD, at=NOW + timedelta(minutes=15, seconds=1)).viewer is not None
    # other users are not affected
    assert login(engine, "paul", PASSWORD, at=NOW + timedelta(minutes=1)).viewer is not None


def test_failures_per_client_lock_that_client_for_every_username(fresh_db):
    _, engine = fresh_db
    for i, name in enumerate(["a1", "a2", "a3", "a4", "a5"]):
        login(engine, name, "guess", client="203.0.113.7", at=NOW + timedelta(seconds=i))
    assert "Too many" in login(engine, "paul", PASSWORD, client="203.0.113.7").message
    assert login(engine, "paul", PASSWORD, client="198.51.100.1").viewer is not None


def test_success_forgives_the_username_but_not_the_client(fresh_db):
    _, engine = fresh_db
    for i in range(2):
        login(engine, "ines", "guess", at=NOW + timedelta(seconds=i))
    assert login(engine, "ines", PASSWORD, at=NOW + timedelta(seconds=5)).viewer is not None
    with Session(engine) as session:
        left = session.exec(select(LoginFailure)).all()
    assert [f.username for f in left] == []  # ines's failures were the client's only ones, and were forgiven
    for i in range(3):
        login(engine, "mallory", "guess", at=NOW + timedelta(seconds=10 + i))
    login(engine, "ines", PASSWORD, at=NOW + timedelta(seconds=20))
    with Session(engine) as session:
        assert len(session.exec(select(LoginFailure).where(LoginFailure.client == "10.0.0.1")).all()) == 3


def test_the_rate_limit_survives_a_restart(fresh_db):
    url, engine = fresh_db
    for i in range(3):
        login(engine, "ines", "guess", at=NOW + timedelta(seconds=i))
    engine.dispose()
    restarted = open_engine(url)  # a new process would open the same database
    try:
        assert "Too many" in login(restarted, "ines", PASSWORD, at=NOW + timedelta(minutes=2)).message
    finally:
        restarted.dispose()


def test_user_management(fresh_db):
    _, engine = fresh_db
    add_user(engine, "olga", "a-long-password", "instructor", courses=("PHYS",))
    assert ("olga", "instructor", ["PHYS"]) in list_users(engine)
    assert ("ines", "instructor", ["MATH"]) in list_users(engine)  # from the campus file
    with pytest.raises(UserError, match="exists already"):
        add_user(engine, "olga", "a-long-password", "instructor")
    add_user(engine, "olga", "another-long-one", "admin", replace=True)
    assert login(engine, "olga", "another-long-one").viewer == Viewer("olga", Role.ADMIN)
    assert remove_user(engine, "olga") is True
    assert remove_user(engine, "olga") is False
    assert current_viewer(engine, "olga") is None


@pytest.mark.parametrize(
    ("username", "password", "role", "message"),
    [
        ("ok-name", "short", "admin", "at least 10"),
        ("bad name", "a-long-password", "admin", "username"),
        ("-dash", "a-long-password", "admin", "username"),
        ("ok-name", "a-long-password", "superuser", "role must be"),
    ],
)
def test_bad_users_are_refused_with_a_reason(fresh_db, username, password, role, message):
    _, engine = fresh_db
    with pytest.raises(UserError, match=message):
        add_user(engine, username, password, role)


def test_login_sessions_expire_by_age_and_by_idleness():
    issued = NOW
    login_session = LoginSession("ines", issued, issued + timedelta(minutes=30))
    ttl, idle = timedelta(hours=8), timedelta(minutes=60)
    assert login_session.expiry_reason(issued + timedelta(minutes=89), ttl=ttl, idle=idle) is None
    assert "60 idle minutes" in login_session.expiry_reason(
        issued + timedelta(minutes=90), ttl=ttl, idle=idle
    )
    fresh_click = LoginSession("ines", issued, issued + timedelta(hours=7, minutes=59))
    assert "480 minutes" in fresh_click.expiry_reason(issued + timedelta(hours=8), ttl=ttl, idle=idle)


def test_a_login_token_carries_the_login_and_nothing_else(fresh_db):
    _, engine = fresh_db
    key = b"k" * 32
    login = LoginSession("ines", NOW - timedelta(minutes=5), NOW)
    token = login_token(login, key=key, password_hash=password_hash_of(engine, "ines") or "")
    assert PASSWORD not in token and "argon2" not in token
    assert login_from_token(engine, token, key=key) == login


def test_a_forged_or_stale_login_token_is_refused(fresh_db):
    _, engine = fresh_db
    key = b"k" * 32
    login = LoginSession("ines", NOW, NOW)
    token = login_token(login, key=key, password_hash=password_hash_of(engine, "ines") or "")
    body, mac = token.split(".")
    forged = login_token(LoginSession("root", NOW, NOW), key=key, password_hash="")  # no hash known
    assert login_from_token(engine, token, key=b"x" * 32) is None  # another dashboard's key
    assert login_from_token(engine, f"{forged.split('.')[0]}.{mac}", key=key) is None  # another user
    assert login_from_token(engine, forged, key=key) is None
    assert login_from_token(engine, "not a token", key=key) is None
    assert login_from_token(engine, f"{body}.", key=key) is None
    add_user(engine, "ines", "a-new-password-2", Role.INSTRUCTOR, replace=True)
    assert login_from_token(engine, token, key=key) is None  # a new password ends old tokens
    remove_user(engine, "ines")
    assert login_from_token(engine, token, key=key) is None
