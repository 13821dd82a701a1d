"""Capture agent: one per classroom camera position; reads RGB + depth + thermal and publishes frame sets."""
