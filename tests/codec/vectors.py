"""Loading the committed blob vectors (tests/vectors/blob/, written by scripts/make_blob_vectors.py)."""

from __future__ import annotations

import json
import pickle
from functools import cache
from pathlib import Path
from typing import Any

VECTORS = Path(__file__).resolve().parent.parent / "vectors" / "blob"


@cache
def manifest() -> list[dict[str, Any]]:
    return json.loads((VECTORS / "manifest.json").read_text())["vectors"]


@cache
def _expected() -> dict[str, Any]:
    return pickle.loads((VECTORS / "expected.pkl").read_bytes())


def expected(entry: dict[str, Any]) -> Any:
    """A fresh copy of what datajoint 0.14.10 unpacks from the vector (or the NATURAL value)."""
    return pickle.loads(pickle.dumps(_expected()[entry["expected"]]))


def blob(entry: dict[str, Any]) -> bytes:
    return (VECTORS / entry["file"]).read_bytes()
