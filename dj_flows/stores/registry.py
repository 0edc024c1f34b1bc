"""`get_store(name)`: the Store configured as `dj.config['stores'][name]`, built once per spec.

Stores hold live clients (an s3fs event loop and connection pool), so they are cached; the cache
is keyed by the spec's content, so editing `dj.config['stores']` takes effect on the next call.
"""

from __future__ import annotations

import json
import threading
from typing import Any

from ..errors import StoreError
from .store import Store

_lock = threading.Lock()
_stores: dict[str, tuple[str, Store]] = {}


def _fingerprint(spec: Any) -> str:
    return json.dumps(spec, sort_keys=True, default=repr)


def get_store(name: str) -> Store:
    """The store named `name` in `dj.config['stores']` (StoreError if it is not configured)."""
    from ..settings import config

    stores = config.get("stores") or {}
    if name not in stores:
        configured = ", ".join(sorted(map(repr, stores))) or "none"
        raise StoreError(
            f"store {name!r} is not configured in dj.config['stores'] (configured: {configured})"
        )
    spec = stores[name]
    fingerprint = _fingerprint(spec)
    with _lock:
        cached = _stores.get(name)
        if cached is not None and cached[0] == fingerprint:
            return cached[1]
        store = Store.from_spec(name, spec)
        _stores[name] = (fingerprint, store)
        return store


def clear_store_cache() -> None:
    """Forget every built store (their clients are released when no longer referenced)."""
    with _lock:
        _stores.clear()
