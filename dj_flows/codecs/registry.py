"""A small codec registry in zarr's style: a codec is a frozen dataclass with a `name`, a
`to_dict`/`from_dict` round trip, and `encode`/`decode`. Configuration can then name a codec (and
its options) as plain JSON, and plug-ins can add codecs with `register`.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

from ..errors import BlobError
from . import blob

__all__ = ["BlobCodec", "Codec", "get_codec", "register", "registered"]

_REGISTRY: dict[str, type[Codec]] = {}


@dataclasses.dataclass(frozen=True)
class Codec:
    """Base class: subclasses set `name` and implement encode/decode."""

    name: ClassVar[str] = ""

    def encode(self, value: Any) -> bytes:
        raise NotImplementedError

    def decode(self, data: bytes | memoryview) -> Any:
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "configuration": dataclasses.asdict(self)}

    @classmethod
    def from_dict(cls, spec: dict[str, Any]) -> Codec:
        return cls(**spec.get("configuration", {}))


@dataclasses.dataclass(frozen=True)
class BlobCodec(Codec):
    """DataJoint's blob format (see dj_flows.codecs.blob)."""

    name: ClassVar[str] = "djblob"
    compress: bool = True
    native: bool | None = None  # None: follow config['enable_python_native_blobs']
    squeeze: bool = False

    def encode(self, value: Any) -> bytes:
        return blob.pack(value, self.compress, native=self.native)

    def decode(self, data: bytes | memoryview) -> Any:
        return blob.unpack(data, self.squeeze)


def register(codec: type[Codec]) -> type[Codec]:
    """Add a codec class under its `name` (usable as a class decorator)."""
    if not codec.name:
        raise BlobError(f"Codec class {codec.__qualname__} has no name.")
    _REGISTRY[codec.name] = codec
    return codec


def registered() -> list[str]:
    return sorted(_REGISTRY)


def get_codec(spec: str | dict[str, Any]) -> Codec:
    """A codec from its name or its `to_dict()` form."""
    if isinstance(spec, str):
        spec = {"name": spec}
    try:
        cls = _REGISTRY[spec["name"]]
    except KeyError:
        raise BlobError(f"Unknown codec {spec.get('name')!r}; known: {registered()}.") from None
    return cls.from_dict(spec)


register(BlobCodec)
