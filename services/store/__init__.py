"""Store service: writes behaviour events to SQL idempotently and keeps the aggregates current."""
