"""Small helpers shared by the external-store tests."""

from __future__ import annotations

from pathlib import Path

import dj_flows as dj
from dj_flows.stores import get_store


def objects_under(store_name: str, prefix: str = "") -> dict[str, int]:
    """{key: size} of every object a store holds below `prefix` (a real listing)."""
    return {o.key: o.size for o in get_store(store_name).list(prefix) if ".dj-" not in o.key}


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def declare_item(schema: dj.Schema, blob: str, attach: str, local: str) -> type:
    """`Item`: an id and three nullable external attributes with the given names: a blob and an
    attachment in store 'shared' (S3) and a blob in store 'local' (a folder)."""

    class Item(dj.Manual):
        definition = f"""
        id : int
        ---
        {blob} = null : blob@shared
        {attach} = null : attach@shared
        {local} = null : blob@local
        """

    return schema(Item)
