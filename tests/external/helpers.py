"""Small helpers shared by the external-store tests."""

from __future__ import annotations

from pathlib import Path

from dj_flows.stores import get_store


def objects_under(store_name: str, prefix: str = "") -> dict[str, int]:
    """{key: size} of every object a store holds below `prefix` (a real listing)."""
    return {o.key: o.size for o in get_store(store_name).list(prefix) if ".dj-" not in o.key}


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path
