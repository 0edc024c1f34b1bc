"""The small pipeline the GC tests use (importable by spawned worker processes: no pytest here)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

import dj_flows as dj

STORE = "gcstore"


def blob(content: int) -> np.ndarray:
    """The array of content number `content` (distinct contents, distinct hashes)."""
    return np.arange(16, dtype=np.float64) * 0.5 + content


def attachment(folder: Path, content: int) -> Path:
    path = folder / f"file{content}.bin"
    if not path.exists():
        path.write_bytes(bytes([content % 256]) * (100 + content))
    return path


def declare(schema: dj.Schema) -> dict[str, type]:
    """Two tables referencing the store: Item (blob and attachment) and Note (blob)."""

    @schema
    class Item(dj.Manual):
        definition = f"""
        id : int
        ---
        content : int
        b : blob@{STORE}
        a = null : attach@{STORE}
        """

    @schema
    class Note(dj.Manual):
        definition = f"""
        name : varchar(20)
        day : date
        ---
        b : blob@{STORE}
        """

    return {"Item": Item, "Note": Note}
