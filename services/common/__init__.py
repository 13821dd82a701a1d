"""Code shared by every service: vocabulary, settings, codecs, bus, metrics, database schema."""
