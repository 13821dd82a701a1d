"""Dashboard users, password hashing, login rate limiting and login expiry.

Users live in the dashboard's own table ``dashboard_user`` in the store's database:
a username, a role (``admin`` sees every classroom, ``instructor`` only the courses the
``courseinstructor`` table gives them) and an Argon2id hash of the password (argon2-cffi).
Failed logins are recorded in ``dashboard_login_failure`` per username and per client
address, so a restart of the dashboard does not reset the rate limit.

A login survives a reload through a signed token (a cookie, dashboards/views/login.py): the
username, when the login was made and when it was last used, and an HMAC-SHA256 over those
and the user's current password hash. The token never holds the password; changing the
password or removing the user ends every token issued before, and the login's age and idle
limits apply to a token exactly as to a login kept in the browser session.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, func
from sqlalchemy.engine import Engine
from sqlmodel import Field, Session, SQLModel, select

from services.common.db.models import CourseInstructor
from services.common.db.retention import deleted_rows

USERNAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
MIN_PASSWORD_LENGTH = 10

_hasher = PasswordHasher()  # Argon2id with the library's current recommended cost


class Role(StrEnum):
    ADMIN = "admin"
    INSTRUCTOR = "instructor"


class DashboardUser(SQLModel, table=True):
    __tablename__ = "dashboard_user"

    username: str = Field(primary_key=True)
    role: str
    password_hash: str
    created_at: datetime


class LoginFailure(SQLModel, table=True):
    """One failed login; rows older than the lockout window are deleted as new ones arrive."""

    __tablename__ = "dashboard_login_failure"

    id: int | None = Field(default=None, primary_key=True)
    username: str = Field(index=True)
    client: str = Field(index=True)
    at: datetime = Field(index=True)


class UserError(ValueError):
    """A user cannot be added or changed as asked (bad name, weak password, unknown role)."""


@dataclass(frozen=True)
class Viewer:
    """Who is looking: every query is scoped by this, not only what the pages show."""

    username: str
    role: Role

    @property
    def is_admin(self) -> bool:
        return self.role is Role.ADMIN


@dataclass(frozen=True)
class LoginLimits:
    max_failures_per_user: int = 5
    max_failures_per_client: int = 20
    window: timedelta = timedelta(minutes=15)


@dataclass(frozen=True)
class LoginResult:
    viewer: Viewer | None
    message: str
    retry_after_s: int = 0


def _utcnow() -> datetime:
    return datetime.now(UTC)


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def add_user(
    engine: Engine,
    username: str,
    password: str,
    role: Role | str,
    *,
    courses: tuple[str, ...] = (),
    replace: bool = False,
) -> DashboardUser:
    """Create (or with ``replace`` overwrite) a user; instructors can be given courses at once."""
    if not USERNAME_PATTERN.match(username):
        raise UserError("a username is 1-64 letters, digits or . _ @ - and starts with a letter or digit")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise UserError(f"a password needs at least {MIN_PASSWORD_LENGTH} characters")
    try:
        role = Role(role)
    except ValueError:
        raise UserError(f"role must be one of {[r.value for r in Role]}, not {role!r}") from None
    with Session(engine) as session:
        existing = session.get(DashboardUser, username)
        if existing is not None and not replace:
            raise UserError(f"user {username!r} exists already (use --replace to change it)")
        user = existing or DashboardUser(
            username=username, role=role.value, password_hash="", created_at=_utcnow()
        )
        user.role = role.value
        user.password_hash = hash_password(password)
        session.add(user)
        for course_id in courses:
            if session.get(CourseInstructor, (course_id, username)) is None:
                session.add(CourseInstructor(course_id=course_id, username=username))
        session.commit()
        session.refresh(user)
        return user


def list_users(engine: Engine) -> list[tuple[str, str, list[str]]]:
    """(username, role, courses) for every user, by username."""
    with Session(engine) as session:
        users = session.exec(select(DashboardUser).order_by(DashboardUser.username)).all()
        rows = session.exec(select(CourseInstructor)).all()
    courses: dict[str, list[str]] = {}
    for row in rows:
        courses.setdefault(row.username, []).append(row.course_id)
    return [(u.username, u.role, sorted(courses.get(u.username, []))) for u in users]


def remove_user(engine: Engine, username: str) -> bool:
    """Delete a user; True when one was deleted. Their open dashboard sessions end on their next click."""
    with Session(engine) as session:
        user = session.get(DashboardUser, username)
        if user is None:
            return False
        session.delete(user)
        session.commit()
        return True


def current_viewer(engine: Engine, username: str) -> Viewer | None:
    """The viewer for a logged-in username, or None when the user was removed meanwhile."""
    with Session(engine) as session:
        user = session.get(DashboardUser, username)
    return None if user is None else Viewer(user.username, Role(user.role))


@cache
def _unknown_user_hash() -> str:
    """Verified for unknown usernames, so a wrong name takes as long as a wrong password."""
    return _hasher.hash("no user has this password")


def authenticate(
    engine: Engine,
    username: str,
    password: str,
    *,
    client: str,
    limits: LoginLimits,
    now: datetime | None = None,
) -> LoginResult:
    """Check a login, enforcing the per-username and per-client failure limits first."""
    now = now or _utcnow()
    since = now - limits.window
    with Session(engine) as session:
        for column, value, limit in (
            (LoginFailure.username, username, limits.max_failures_per_user),
            (LoginFailure.client, client, limits.max_failures_per_client),
        ):
            count, oldest = session.exec(
                select(func.count(), func.min(LoginFailure.at)).where(
                    column == value, LoginFailure.at > since
                )  # type: ignore[arg-type]
            ).one()
            if count >= limit:
                retry = int((oldest + limits.window - now).total_seconds()) + 1
                return LoginResult(
                    None, f"Too many failed logins; try again in {retry // 60 + 1} min.", retry
                )

        user = session.get(DashboardUser, username)
        try:
            ok = (
                _hasher.verify(user.password_hash if user else _unknown_user_hash(), password)
                and user is not None
            )
        except (VerificationError, InvalidHashError):
            ok = False
        if not ok or user is None:
            session.add(LoginFailure(username=username, client=client, at=now))
            session.exec(delete(LoginFailure).where(LoginFailure.at <= since))  # type: ignore[call-overload,arg-type]
            session.commit()
            return LoginResult(None, "Wrong username or password.")

        if _hasher.check_needs_rehash(user.password_hash):
            user.password_hash = hash_password(password)
            session.add(user)
        # A success forgives this username's failures, not the client's: one valid account
        # must not reset a client's budget for guessing other accounts.
        session.exec(delete(LoginFailure).where(LoginFailure.username == username))  # type: ignore[call-overload,arg-type]
        session.commit()
        return LoginResult(Viewer(user.username, Role(user.role)), "Logged in.")


@dataclass(frozen=True)
class LoginSession:
    """What st.session_state keeps about a login; the browser's cookie carries it signed (login_token)."""

    username: str
    issued_at: datetime
    last_seen: datetime

    def expiry_reason(self, now: datetime, *, ttl: timedelta, idle: timedelta) -> str | None:
        """Why this login is no longer valid at ``now``, or None while it is."""
        if now - self.issued_at >= ttl:
            return f"Your login expired after {ttl.total_seconds() / 60:.0f} minutes; please log in again."
        if now - self.last_seen >= idle:
            minutes = idle.total_seconds() / 60
            return f"Your login expired after {minutes:.0f} idle minutes; please log in again."
        return None


def _token_mac(key: bytes, body: str, password_hash: str) -> str:
    return hmac.new(key, f"{body}|{password_hash}".encode(), hashlib.sha256).hexdigest()


def password_hash_of(engine: Engine, username: str) -> str | None:
    with Session(engine) as session:
        user = session.get(DashboardUser, username)
    return None if user is None else user.password_hash


def login_token(login: LoginSession, *, key: bytes, password_hash: str) -> str:
    """``login`` signed for the browser: base64url(username|issued|last seen) '.' HMAC (hex)."""
    payload = f"{login.username}|{int(login.issued_at.timestamp())}|{int(login.last_seen.timestamp())}"
    body = base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")
    return f"{body}.{_token_mac(key, body, password_hash)}"


def login_from_token(engine: Engine, token: str, *, key: bytes) -> LoginSession | None:
    """The login a token carries when its signature holds for the user's current password hash, else
    None (forged, altered, signed with another key, user removed or password changed since).
    Its expiry is the caller's to check, with LoginSession.expiry_reason."""
    try:
        body, mac = token.split(".", 1)
        payload = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)).decode()
        username, issued, seen = payload.split("|")
        issued_at, last_seen = (datetime.fromtimestamp(int(v), UTC) for v in (issued, seen))
    except (ValueError, UnicodeDecodeError, OverflowError):
        return None
    if not USERNAME_PATTERN.match(username):
        return None
    stored = password_hash_of(engine, username)
    if stored is None or not hmac.compare_digest(mac, _token_mac(key, body, stored)):
        return None
    return LoginSession(username, issued_at, last_seen)


def purge_login_failures(engine: Engine, cutoff: datetime) -> int:
    """Delete failed-login records older than ``cutoff`` (retention; ``classroom db purge``)."""
    with Session(engine) as session, session.begin():
        return deleted_rows(session.execute(delete(LoginFailure).where(LoginFailure.at < cutoff)))  # type: ignore[arg-type]
