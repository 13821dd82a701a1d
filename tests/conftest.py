"""Shared fixtures; the integration ones are defined in tests/fixtures.py."""

from tests.fixtures import broker, postgres_schema_url, topic_prefix  # noqa: F401
