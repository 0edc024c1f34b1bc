"""Attributes and headings: what a column is, in DataJoint's terms and in MySQL's.

An `Attribute` carries both the type the user declared (`blob@shared`, `uuid`, `varchar(30)`) and the
MySQL column type DataJoint 0.14 gives it (`binary(16)`, `longblob`, ...), plus the `:type:` prefix that
goes into the MySQL column comment. Backends map these to their own DDL; nothing here touches a
database. `parse_type` is the single place that understands DataJoint's type grammar, shared by the
declaration parser and by MySQL introspection.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Iterator
from typing import Any

from .errors import DeclarationError, MissingAttributeError

INT_RANGES = {
    "tinyint": (-(2**7), 2**7 - 1),
    "smallint": (-(2**15), 2**15 - 1),
    "mediumint": (-(2**23), 2**23 - 1),
    "int": (-(2**31), 2**31 - 1),
    "bigint": (-(2**63), 2**63 - 1),
}
BLOB_TYPES = ("tinyblob", "blob", "mediumblob", "longblob")
STORE_NAME = r"[a-z][a-z0-9_]*"

# kind -> the regular expression that recognises a declared type of that kind
_TYPE_PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    ("int", re.compile(r"(?P<base>tinyint|smallint|mediumint|int|integer|bigint)(\s*\(\d+\))?(?P<unsigned>\s+unsigned)?(?P<autoinc>\s+auto_increment)?", re.I)),
    ("bool", re.compile(r"bool|boolean", re.I)),
    ("float", re.compile(r"(?P<base>float|double|real)(\s*\(\s*\d+\s*(,\s*\d+\s*)?\))?(?P<unsigned>\s+unsigned)?", re.I)),
    ("decimal", re.compile(r"(decimal|numeric)\s*(\(\s*(?P<precision>\d+)\s*(,\s*(?P<scale>\d+)\s*)?\))?(?P<unsigned>\s+unsigned)?", re.I)),
    ("string", re.compile(r"(?P<base>char|varchar)\s*\(\s*(?P<length>\d+)\s*\)", re.I)),
    ("enum", re.compile(r"enum\s*\((?P<values>.*)\)", re.I | re.S)),
    ("date", re.compile(r"date", re.I)),
    ("time", re.compile(r"time(\s*\(\d\))?", re.I)),
    ("datetime", re.compile(r"datetime(\s*\(\d\))?", re.I)),
    ("timestamp", re.compile(r"timestamp(\s*\(\d\))?", re.I)),
    ("json", re.compile(r"json", re.I)),
    ("uuid", re.compile(r"uuid", re.I)),
    ("blob", re.compile(rf"(?P<base>tinyblob|blob|mediumblob|longblob)(@(?P<store>{STORE_NAME}))?", re.I)),
    ("attach", re.compile(rf"attach(@(?P<store>{STORE_NAME}))?", re.I)),
    ("filepath", re.compile(rf"filepath@(?P<store>{STORE_NAME})", re.I)),
]

ENUM_VALUE = re.compile(r"""\s*(?:'((?:[^'\\]|\\.|'')*)'|"((?:[^"\\]|\\.|"")*)")\s*(,|$)""")


@dataclasses.dataclass(frozen=True)
class TypeInfo:
    """A DataJoint type, parsed."""

    kind: str  # int bool float decimal string enum date time datetime timestamp json uuid blob attach filepath
    declared: str  # normalised declared type, e.g. 'int unsigned', 'varchar(30)', 'blob@shared'
    sql_type: str  # the MySQL column type DataJoint 0.14 uses
    store: str | None = None
    unsigned: bool = False
    autoincrement: bool = False
    length: int | None = None  # char/varchar
    precision: int | None = None  # decimal
    scale: int | None = None
    enum_values: tuple[str, ...] = ()
    int_range: tuple[int, int] | None = None

    @property
    def special(self) -> bool:
        """Types recorded in the MySQL column comment as `:type:`."""
        return self.kind in ("uuid", "attach", "filepath") or (self.kind == "blob" and self.store is not None)


def _parse_enum_values(text: str, declared: str) -> tuple[str, ...]:
    values, position = [], 0
    while position < len(text):
        match = ENUM_VALUE.match(text, position)
        if not match:
            raise DeclarationError(f"malformed enum values in type {declared!r}")
        raw = match.group(1) if match.group(1) is not None else match.group(2)
        quote = "'" if match.group(1) is not None else '"'
        values.append(raw.replace(quote * 2, quote).replace("\\" + quote, quote))
        position = match.end()
    if not values:
        raise DeclarationError(f"enum type {declared!r} needs at least one value")
    return tuple(values)


def parse_type(text: str) -> TypeInfo:
    """Parse a declared DataJoint type (or a MySQL column type) into a `TypeInfo`."""
    declared = " ".join(text.strip().split())
    for kind, pattern in _TYPE_PATTERNS:
        match = pattern.fullmatch(declared)
        if not match:
            continue
        groups = match.groupdict()
        unsigned = bool(groups.get("unsigned"))
        if kind == "int":
            base = groups["base"].lower().replace("integer", "int")
            low, high = INT_RANGES[base]
            if unsigned:
                low, high = 0, high * 2 + 1
            norm = base + (" unsigned" if unsigned else "")
            return TypeInfo(kind, norm, norm, unsigned=unsigned, autoincrement=bool(groups.get("autoinc")), int_range=(low, high))
        if kind == "bool":
            return TypeInfo("bool", "tinyint", "tinyint", int_range=(-128, 127))
        if kind == "float":
            base = groups["base"].lower().replace("real", "double")
            norm = base + (" unsigned" if unsigned else "")
            return TypeInfo("float", norm, norm, unsigned=unsigned)
        if kind == "decimal":
            precision = int(groups["precision"] or 10)
            scale = int(groups["scale"] or 0)
            if scale > precision or precision > 65:
                raise DeclarationError(f"invalid decimal precision/scale in type {declared!r}")
            norm = f"decimal({precision},{scale})" + (" unsigned" if unsigned else "")
            return TypeInfo("decimal", norm, norm, unsigned=unsigned, precision=precision, scale=scale)
        if kind == "string":
            base, length = groups["base"].lower(), int(groups["length"])
            norm = f"{base}({length})"
            return TypeInfo("string", norm, norm, length=length)
        if kind == "enum":
            values = _parse_enum_values(groups["values"], declared)
            norm = "enum(" + ",".join("'" + v.replace("'", "''") + "'" for v in values) + ")"
            return TypeInfo("enum", norm, norm, enum_values=values)
        if kind in ("date", "time", "datetime", "timestamp", "json"):
            norm = declared.lower().replace(" ", "")
            return TypeInfo(kind, norm, norm)
        if kind == "uuid":
            return TypeInfo("uuid", "uuid", "binary(16)")
        if kind == "blob":
            base, store = groups["base"].lower(), groups.get("store")
            if store:
                if base != "blob":
                    raise DeclarationError(f"external blobs are declared as blob@store, not {declared!r}")
                return TypeInfo("blob", f"blob@{store}", "binary(16)", store=store)
            return TypeInfo("blob", base, base)
        if kind == "attach":
            store = groups.get("store")
            if store:
                return TypeInfo("attach", f"attach@{store}", "binary(16)", store=store)
            return TypeInfo("attach", "attach", "longblob")
        if kind == "filepath":
            store = groups["store"]
            return TypeInfo("filepath", f"filepath@{store}", "binary(16)", store=store)
    raise DeclarationError(f"unsupported attribute type {declared!r}")


@dataclasses.dataclass(frozen=True)
class Attribute:
    """One column of a table or query result."""

    name: str
    type: TypeInfo
    in_key: bool = False
    nullable: bool = False
    default: str | None = None  # safe SQL literal: 'null', "'abc'", '3', 'CURRENT_TIMESTAMP'
    comment: str = ""
    sql_expression: str | None = None  # set for computed attributes of a projection
    database: str | None = None  # the schema of the table the column comes from (external objects)

    @property
    def kind(self) -> str:
        return self.type.kind

    @property
    def store(self) -> str | None:
        return self.type.store

    @property
    def is_blob(self) -> bool:
        return self.type.kind == "blob"

    @property
    def is_attachment(self) -> bool:
        return self.type.kind == "attach"

    @property
    def is_filepath(self) -> bool:
        return self.type.kind == "filepath"

    @property
    def is_external(self) -> bool:
        return self.type.store is not None

    @property
    def is_uuid(self) -> bool:
        return self.type.kind == "uuid"

    @property
    def numeric(self) -> bool:
        return self.type.kind in ("int", "bool", "float", "decimal")

    @property
    def autoincrement(self) -> bool:
        return self.type.autoincrement

    @property
    def mysql_comment(self) -> str:
        """The column comment DataJoint 0.14 writes: `:type:comment` for special types."""
        return f":{self.type.declared}:{self.comment}" if self.type.special else self.comment

    @property
    def sql_type(self) -> str:
        return self.type.sql_type

    def renamed(self, name: str) -> Attribute:
        return dataclasses.replace(self, name=name)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type.declared + (" auto_increment" if self.type.autoincrement else ""),
            "in_key": self.in_key,
            "nullable": self.nullable,
            "default": self.default,
            "comment": self.comment,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Attribute:
        return cls(
            name=data["name"],
            type=parse_type(data["type"]),
            in_key=data["in_key"],
            nullable=data["nullable"],
            default=data["default"],
            comment=data["comment"],
        )


class Heading:
    """An ordered set of attributes; the primary key comes first.

    A heading does not change once made (queries build new ones), so the name lists that every
    query asks for are computed once here; the properties hand out copies."""

    def __init__(self, attributes: Iterable[Attribute], table_comment: str = "") -> None:
        self.attributes: dict[str, Attribute] = {a.name: a for a in attributes}
        self.table_comment = table_comment
        values = self.attributes.values()
        self._names = tuple(self.attributes)
        self._key = tuple(a.name for a in values if a.in_key)
        self._secondary = tuple(a.name for a in values if not a.in_key)
        self._has_computed = any(a.sql_expression is not None for a in values)

    def __iter__(self) -> Iterator[Attribute]:
        return iter(self.attributes.values())

    def __len__(self) -> int:
        return len(self.attributes)

    def __contains__(self, name: object) -> bool:
        return name in self.attributes

    def __getitem__(self, name: str) -> Attribute:
        try:
            return self.attributes[name]
        except KeyError:
            raise MissingAttributeError(f"attribute {name!r} is not in the heading ({', '.join(self.names)})") from None

    def __repr__(self) -> str:
        lines = [f"# {self.table_comment}"] if self.table_comment else []
        for attribute in self.primary_key_attributes:
            lines.append(f"{attribute.name:<20}: {attribute.type.declared:<15} # {attribute.comment}")
        if self.secondary_attributes:
            lines.append("---")
        for attribute in self.secondary_attribute_objects:
            lines.append(f"{attribute.name:<20}: {attribute.type.declared:<15} # {attribute.comment}")
        return "\n".join(lines)

    @property
    def names(self) -> list[str]:
        return list(self._names)

    @property
    def primary_key(self) -> list[str]:
        return list(self._key)

    @property
    def secondary_attributes(self) -> list[str]:
        return list(self._secondary)

    @property
    def primary_key_attributes(self) -> list[Attribute]:
        return [a for a in self.attributes.values() if a.in_key]

    @property
    def secondary_attribute_objects(self) -> list[Attribute]:
        return [a for a in self.attributes.values() if not a.in_key]

    @property
    def blobs(self) -> list[str]:
        return [a.name for a in self.attributes.values() if a.is_blob or a.is_attachment]

    @property
    def non_blobs(self) -> list[str]:
        return [a.name for a in self.attributes.values() if not (a.is_blob or a.is_attachment or a.is_filepath)]

    @property
    def has_computed(self) -> bool:
        return self._has_computed
