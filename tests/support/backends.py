"""Fixtures: backends (filled in by its owner)."""
