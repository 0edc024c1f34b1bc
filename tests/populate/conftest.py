"""Fixtures for the populate tests: a fresh pipeline per test (calls_file and short_lease come
from tests/support/populate_env.py)."""

from __future__ import annotations

import pytest

from tests.populate.pipeline import declare


@pytest.fixture
def pipeline(make_schema, calls_file, short_lease):
    """A new schema with Source and Square (+ Square.Note), Source empty."""
    return declare(make_schema("p"))
