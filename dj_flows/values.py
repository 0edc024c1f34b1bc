"""Python values <-> column values for the plain (non-blob) attribute kinds.

Checks happen here, in Python, before anything reaches the database, so that a bad value fails the
same way on SQLite and MySQL, with a message naming the attribute. Blobs, attachments and external
objects are encoded by the table layer (they need the codec and the stores).
"""

from __future__ import annotations

import datetime
import decimal
import json
import math
import re
import uuid
from collections.abc import Callable
from typing import Any

import numpy as np

from .errors import DataValueError
from .heading import Attribute

FSP = re.compile(r"\((\d)\)")
TIME_TEXT = re.compile(r"(-)?(\d{1,3}):(\d{1,2})(?::(\d{1,2})(?:\.(\d{1,6}))?)?")
MAX_TIME = datetime.timedelta(hours=838, minutes=59, seconds=59)


def to_python(value: Any) -> Any:
    """numpy scalars -> Python scalars (drivers cannot bind numpy types)."""
    if isinstance(value, np.generic):
        if isinstance(value, np.datetime64):  # .item() of a [ns] value is an int, not a datetime
            return value.astype("datetime64[us]").item()
        if isinstance(value, np.timedelta64):
            return value.astype("timedelta64[us]").item()
        return value.item()
    return value


def _json_default(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, uuid.UUID | decimal.Decimal):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def is_missing(attribute: Attribute, value: Any) -> bool:
    """DataJoint's rule: None, and NaN or '' for numeric attributes, mean 'use the default'."""
    if value is None:
        return True
    if isinstance(value, np.datetime64 | np.timedelta64) and np.isnat(value):
        return True
    if type(value).__name__ == "NaTType":  # pandas.NaT in a DataFrame's datetime column
        return True
    if attribute.numeric:
        if isinstance(value, str) and value == "":
            return True
        if isinstance(value, float | np.floating) and math.isnan(value):
            return True
    return False


def _fail(attribute: Attribute, value: Any, expected: str) -> DataValueError:
    shown = repr(value)
    if len(shown) > 60:
        shown = shown[:57] + "..."
    return DataValueError(f"attribute {attribute.name!r} ({attribute.type.declared}) expects {expected}, got {shown}")


def encode_value(attribute: Attribute, value: Any) -> Any:
    """Validate and convert a value of a plain attribute kind (not blob/attach/filepath)."""
    value = to_python(value)
    kind = attribute.kind
    if kind in ("int", "bool"):
        if isinstance(value, bool):
            return int(value)
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, str):
            try:
                value = int(value.strip())
            except ValueError:
                raise _fail(attribute, value, "an integer") from None
        if not isinstance(value, int):
            raise _fail(attribute, value, "an integer")
        low, high = attribute.type.int_range or (-(2**63), 2**64 - 1)
        if not low <= value <= high:
            raise _fail(attribute, value, f"an integer in [{low}, {high}]")
        return value
    if kind == "float":
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                raise _fail(attribute, value, "a number") from None
        if isinstance(value, bool) or not isinstance(value, int | float | decimal.Decimal):
            raise _fail(attribute, value, "a number")
        value = float(value)
        if not math.isfinite(value):
            raise _fail(attribute, value, "a finite number (MySQL stores no NaN or inf)")
        if attribute.type.unsigned and value < 0:
            raise _fail(attribute, value, "a non-negative number")
        return value
    if kind == "decimal":
        try:
            number = decimal.Decimal(str(value)) if not isinstance(value, decimal.Decimal) else value
        except decimal.InvalidOperation:
            raise _fail(attribute, value, "a decimal number") from None
        if not number.is_finite():
            raise _fail(attribute, value, "a finite decimal number")
        info = attribute.type
        quantized = number.quantize(decimal.Decimal(1).scaleb(-(info.scale or 0)), rounding=decimal.ROUND_HALF_UP)
        if len(quantized.as_tuple().digits) > (info.precision or 10) and quantized != 0:
            raise _fail(attribute, value, f"at most {info.precision} digits")
        if info.unsigned and quantized < 0:
            raise _fail(attribute, value, "a non-negative number")
        return quantized
    if kind in ("string", "enum"):
        if isinstance(value, bytes):
            raise _fail(attribute, value, "a string")
        if isinstance(value, int | float | decimal.Decimal) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str):
            raise _fail(attribute, value, "a string")
        if kind == "string" and attribute.type.declared.startswith("char("):
            value = value.rstrip(" ")  # MySQL's CHAR drops trailing spaces; make every backend agree
        if "\x00" in value and kind == "enum":
            raise _fail(attribute, value, "one of " + ", ".join(attribute.type.enum_values))
        if kind == "string" and attribute.type.length is not None and len(value) > attribute.type.length:
            raise _fail(attribute, value, f"a string of at most {attribute.type.length} characters")
        if kind == "enum" and value not in attribute.type.enum_values:
            raise _fail(attribute, value, "one of " + ", ".join(repr(v) for v in attribute.type.enum_values))
        return value
    if kind == "uuid":
        try:
            if isinstance(value, uuid.UUID):
                return value.bytes
            if isinstance(value, bytes) and len(value) == 16:
                return value
            return uuid.UUID(str(value)).bytes
        except ValueError:
            raise _fail(attribute, value, "a UUID") from None
    if kind == "json":
        try:
            return json.dumps(value, default=_json_default)
        except (TypeError, ValueError):
            raise _fail(attribute, value, "a JSON-serializable value") from None
    if kind in ("date", "datetime", "timestamp"):
        return _encode_temporal(attribute, value)
    if kind == "time":
        return _encode_time(attribute, value)
    return value


def _fsp(attribute: Attribute) -> int:
    """The declared fractional-second digits of a temporal type: `datetime(3)` -> 3, `time` -> 0."""
    match = FSP.search(attribute.type.declared)
    return int(match.group(1)) if match else 0


def _truncate_micro(microseconds: int, fsp: int) -> int:
    """Drop the digits the column cannot hold, as MariaDB does (so every backend stores the same)."""
    step = 10 ** (6 - fsp)
    return microseconds - microseconds % step


def _encode_time(attribute: Attribute, value: Any) -> datetime.timedelta:
    if isinstance(value, datetime.time):
        value = datetime.timedelta(
            hours=value.hour, minutes=value.minute, seconds=value.second, microseconds=value.microsecond
        )
    elif isinstance(value, int | float) and not isinstance(value, bool):
        if not math.isfinite(value):
            raise _fail(attribute, value, "a finite number of seconds")
        value = datetime.timedelta(seconds=value)
    elif isinstance(value, str):
        match = TIME_TEXT.fullmatch(value.strip())
        if not match:
            raise _fail(attribute, value, "a time as [-]H:MM[:SS[.ffffff]]")
        sign, hours, minutes, seconds, fraction = match.groups()
        if int(minutes) > 59 or int(seconds or 0) > 59:
            raise _fail(attribute, value, "a time as [-]H:MM[:SS[.ffffff]]")
        value = datetime.timedelta(
            hours=int(hours), minutes=int(minutes), seconds=int(seconds or 0),
            microseconds=int((fraction or "0").ljust(6, "0")),
        )
        value = -value if sign else value
    if not isinstance(value, datetime.timedelta):
        raise _fail(attribute, value, "a time or timedelta")
    if abs(value) >= MAX_TIME + datetime.timedelta(seconds=1):
        raise _fail(attribute, value, "a time within ±838:59:59")
    fsp = _fsp(attribute)
    if fsp < 6 and value.microseconds:
        negative = value < datetime.timedelta(0)
        whole = abs(value)
        whole -= datetime.timedelta(microseconds=whole.microseconds - _truncate_micro(whole.microseconds, fsp))
        value = -whole if negative else whole
    return value


def _encode_temporal(attribute: Attribute, value: Any) -> Any:
    kind = attribute.kind
    if isinstance(value, np.datetime64):
        value = value.astype("datetime64[us]").item()
    if isinstance(value, str):
        text = value.strip()
        try:
            value = datetime.date.fromisoformat(text) if kind == "date" else datetime.datetime.fromisoformat(text)
        except ValueError:
            raise _fail(attribute, text, "an ISO date" if kind == "date" else "an ISO date and time") from None
    if kind == "date":
        if isinstance(value, datetime.datetime):
            if value.time() != datetime.time(0):
                raise _fail(attribute, value, "a date without a time of day")
            return value.date()
        if isinstance(value, datetime.date):
            return value
        raise _fail(attribute, value, "a date")
    if isinstance(value, datetime.datetime):
        if value.tzinfo is not None:
            value = value.astimezone().replace(tzinfo=None)
        fsp = _fsp(attribute)
        if fsp < 6 and value.microsecond:
            value = value.replace(microsecond=_truncate_micro(value.microsecond, fsp))
        return value
    if isinstance(value, datetime.date):
        return datetime.datetime(value.year, value.month, value.day)
    raise _fail(attribute, value, "a datetime")


def decode_value(attribute: Attribute, value: Any) -> Any:
    """Convert a fetched column value of a plain kind to its Python type."""
    if value is None:
        return None
    kind = attribute.kind
    if kind == "uuid":
        return uuid.UUID(bytes=bytes(value))
    if kind == "json":
        return json.loads(value) if isinstance(value, str | bytes) else value
    if kind == "decimal" and not isinstance(value, decimal.Decimal):
        return decimal.Decimal(str(value))
    return value


def make_missing_test(attribute: Attribute) -> Callable[[Any], bool]:
    """`is_missing` for one attribute, with the common cases decided without the general checks."""
    if attribute.numeric:
        def missing(value: Any) -> bool:
            kind = type(value)
            if kind is int:
                return False
            if kind is float:
                return value != value  # NaN
            return is_missing(attribute, value)
    elif attribute.kind in ("date", "datetime", "timestamp", "time"):
        def missing(value: Any) -> bool:
            return value is None or (type(value) is not str and is_missing(attribute, value))
    else:
        def missing(value: Any) -> bool:
            return value is None
    return missing


def make_encoder(attribute: Attribute, to_db: Callable[[Attribute, Any], Any], native_ints: int = 2**64) -> Callable[[Any], Any]:
    """`to_db(encode_value(...))` for one attribute, as a function built once per insert: values of
    the plain Python type the column holds pass straight through; all others take the general path
    (same checks, same messages). `native_ints`: integers below it need no adapting by the backend."""

    def general(value: Any) -> Any:
        return to_db(attribute, encode_value(attribute, value))

    info, kind = attribute.type, attribute.kind
    if kind == "int" and info.int_range:
        low, high = info.int_range[0], min(info.int_range[1], native_ints - 1)

        def encode(value: Any) -> Any:
            return value if type(value) is int and low <= value <= high else general(value)
    elif kind == "float":
        unsigned = info.unsigned

        def encode(value: Any) -> Any:
            if type(value) is float and math.isfinite(value) and not (unsigned and value < 0):
                return value
            return general(value)
    elif kind == "string" and info.length is not None:
        length, char = info.length, info.declared.startswith("char(")

        def encode(value: Any) -> Any:
            if type(value) is str and len(value) <= length and not (char and value.endswith(" ")):
                return value
            return general(value)
    elif kind == "enum":
        allowed = frozenset(info.enum_values)

        def encode(value: Any) -> Any:
            return value if type(value) is str and value in allowed else general(value)
    else:
        encode = general
    return encode
