"""Codecs: how attribute values become bytes. `blob` is DataJoint's blob format."""

from .blob import pack, unpack
from .matlab import MatCell, MatStruct
from .registry import BlobCodec, Codec, get_codec, register

__all__ = ["BlobCodec", "Codec", "MatCell", "MatStruct", "get_codec", "pack", "register", "unpack"]
