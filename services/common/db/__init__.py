"""The SQL store's schema and data functions, shared by the store service and the dashboard."""
