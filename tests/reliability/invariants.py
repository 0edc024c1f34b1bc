"""Checks that hold after any fault: every row's external object is tracked and present in the
store, and fetching every row returns verified content."""

from __future__ import annotations

from typing import Any

import dj_flows as dj


def referenced_paths(schema: dj.Schema, store: str) -> set[str]:
    """Store paths of the tracking rows that some table row references."""
    ext = schema.external[store]
    used = set(ext.used().fetch("hash").tolist())
    return {str(path) for hash_, path in ext.fetch_external_paths() if hash_ in used}


def all_paths(schema: dj.Schema, store: str) -> set[str]:
    return {str(path) for _, path in schema.external[store].fetch_external_paths()}


def missing_objects(schema: dj.Schema, store: str, fs: Any, root: str = "") -> set[str]:
    """Referenced objects that the store does not hold (must be empty); `root` is the bucket
    (tracking paths start at the location)."""
    prefix = f"{root}/" if root else ""
    return {path for path in referenced_paths(schema, store) if not fs.exists(prefix + path)}
