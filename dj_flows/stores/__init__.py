"""External object stores (folder, S3, any fsspec filesystem), DataJoint 0.14's object layout,
and the local fetch cache."""

from .cache import ObjectCache, get_cache
from .layout import (
    attachment_uuid,
    filepath_uuid,
    object_key,
    subfold,
    uuid_from_buffer,
    uuid_from_file,
)
from .registry import clear_store_cache, get_store
from .store import MissingObjectError, Store, StoredObject, transfer_concurrency

__all__ = [
    "MissingObjectError",
    "ObjectCache",
    "Store",
    "StoredObject",
    "attachment_uuid",
    "clear_store_cache",
    "filepath_uuid",
    "get_cache",
    "get_store",
    "object_key",
    "subfold",
    "transfer_concurrency",
    "uuid_from_buffer",
    "uuid_from_file",
]
