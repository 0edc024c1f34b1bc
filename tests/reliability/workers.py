"""How many times make() ran for each key, from the populate test pipeline's calls file."""

from __future__ import annotations

import collections
from pathlib import Path

from tests.populate.pipeline import read_calls


def call_counts(calls_file: Path) -> collections.Counter:
    return collections.Counter(key_id for key_id, _, _ in read_calls(calls_file))
