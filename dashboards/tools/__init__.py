"""The dashboard's tools that its pages never import: a semester of synthetic events, the SQLite to
PostgreSQL copier and the page benchmark (``classroom dashboard generate-semester|copy-db|bench``)."""
