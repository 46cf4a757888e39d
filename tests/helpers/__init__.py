"""Shared test helpers (no fixtures here: tests/conftest.py is left to others)."""
