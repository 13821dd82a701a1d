"""Settings of the store service (environment variables prefixed STORE_)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from services.common.db.engine import DEFAULT_DATABASE_URL
from services.common.settings import ServiceSettings


class StoreSettings(ServiceSettings):
    """Store: behaviours.v1 -> SQL (SQLite by default, PostgreSQL by URL)."""

    model_config = SettingsConfigDict(env_prefix="STORE_", frozen=True, extra="ignore")

    database_url: str = Field(default=DEFAULT_DATABASE_URL, description="SQLAlchemy URL of the SQL store")
    max_poll_records: int = Field(default=256, ge=1, description="events written per transaction at most")
