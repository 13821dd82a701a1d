"""Shared fixtures. Integration fixtures (broker, PostgreSQL, gRPC) live in tests/fixtures.py."""
