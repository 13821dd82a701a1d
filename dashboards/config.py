"""Settings of the engagement dashboard (environment variables with the prefix ``DASHBOARD_``).

Frozen and validated at start-up like every service's settings; ``classroom dashboard
--validate-config`` checks them (and the engagement mapping file) before anything
connects to the database.
"""

from __future__ import annotations

from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from services.common.db.engine import DEFAULT_DATABASE_URL


class DashboardSettings(BaseSettings):
    """Where the data lives, how logins behave, and how pages show times."""

    model_config = SettingsConfigDict(env_prefix="DASHBOARD_", frozen=True, extra="ignore")

    database_url: str = Field(
        default=DEFAULT_DATABASE_URL,
        description="SQLAlchemy URL of the store's database (sqlite:///path or postgresql+psycopg2://...)",
    )
    engagement_mapping_file: Path | None = Field(
        default=None,
        description="YAML engagement mapping; unset uses $ENGAGEMENT_MAPPING_FILE or the default",
    )
    session_ttl_minutes: int = Field(
        default=480, ge=1, description="a login expires this long after it was made"
    )
    idle_timeout_minutes: int = Field(
        default=60, ge=1, description="a login expires after this long without a click"
    )
    max_failures_per_user: int = Field(
        default=5, ge=1, description="failed logins per username within the window"
    )
    max_failures_per_client: int = Field(
        default=20, ge=1, description="failed logins per client address within the window"
    )
    lockout_window_minutes: int = Field(
        default=15, ge=1, description="failed logins older than this are forgotten"
    )
    sessions_page_size: int = Field(default=200, ge=10, le=2000, description="sessions listed per page")
    display_timezone: str = Field(
        default="UTC", description="the campus's IANA time zone: every page shows times in it and names it"
    )
    login_secret: SecretStr | None = Field(
        default=None,
        description="key that signs the login cookie, so a login survives a reload; unset: a random key per "
        "dashboard process (logins then end when it restarts; set it when several replicas serve one campus)",
    )
    low_confidence_below: float = Field(
        default=0.5,
        gt=0.0,
        le=1.0,
        description="an event whose confidence (the model's probability of its label) is below this is "
        "marked low-confidence: under 0.5 the model gives its own label less than even odds",
    )
    live_within_seconds: int = Field(
        default=120, ge=10, description="a session whose newest event is this recent is shown as live"
    )
    live_refresh_seconds: int = Field(
        default=15,
        ge=2,
        le=600,
        description="a live session's page, and the sessions list while it lists one, redraw themselves this often",
    )
    model_cards: str = Field(
        default="",
        description="comma-separated files or folders with model.quality.json cards (classroom evaluate) besides "
        "the committed checkpoints'",
    )

    @field_validator("database_url")
    @classmethod
    def _parsable_url(cls, value: str) -> str:
        try:
            url = make_url(value)
        except ArgumentError as exc:
            raise ValueError(f"not a database URL: {exc}") from None
        if url.get_backend_name() not in {"sqlite", "postgresql"}:
            raise ValueError(f"the store runs on SQLite or PostgreSQL, not {url.get_backend_name()}")
        return value

    @field_validator("display_timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError("not a known IANA time zone (e.g. UTC, Europe/Berlin)") from None
        return value
