"""Every DataJoint type parses from a definition line to the MySQL column DataJoint 0.14 creates."""

from __future__ import annotations

import re

import pytest

from dj_flows.declare import parse_attribute_line
from dj_flows.errors import DeclarationError

from .catalog import Catalog

# declared type -> (kind, declared (normalised), MySQL column type, store, recorded in the comment)
TYPES = [
    ("tinyint", "int", "tinyint", "tinyint", None, False),
    ("smallint unsigned", "int", "smallint unsigned", "smallint unsigned", None, False),
    ("mediumint", "int", "mediumint", "mediumint", None, False),
    ("int", "int", "int", "int", None, False),
    ("integer", "int", "int", "int", None, False),
    ("int(11) unsigned", "int", "int unsigned", "int unsigned", None, False),
    ("bigint", "int", "bigint", "bigint", None, False),
    ("float", "float", "float", "float", None, False),
    ("double", "float", "double", "double", None, False),
    ("decimal(8,3)", "decimal", "decimal(8,3)", "decimal(8,3)", None, False),
    (
        "decimal(5, 2) unsigned",
        "decimal",
        "decimal(5,2) unsigned",
        "decimal(5,2) unsigned",
        None,
        False,
    ),
    ("char(1)", "string", "char(1)", "char(1)", None, False),
    ("varchar(255)", "string", "varchar(255)", "varchar(255)", None, False),
    ("enum('a', 'b')", "enum", "enum('a','b')", "enum('a','b')", None, False),
    ("date", "date", "date", "date", None, False),
    ("time", "time", "time", "time", None, False),
    ("datetime", "datetime", "datetime", "datetime", None, False),
    ("datetime(3)", "datetime", "datetime(3)", "datetime(3)", None, False),
    ("timestamp", "timestamp", "timestamp", "timestamp", None, False),
    ("bool", "bool", "tinyint", "tinyint", None, False),
    ("boolean", "bool", "tinyint", "tinyint", None, False),
    ("json", "json", "json", "json", None, False),
    ("uuid", "uuid", "uuid", "binary(16)", None, True),
    ("tinyblob", "blob", "tinyblob", "tinyblob", None, False),
    ("blob", "blob", "blob", "blob", None, False),
    ("mediumblob", "blob", "mediumblob", "mediumblob", None, False),
    ("longblob", "blob", "longblob", "longblob", None, False),
    ("attach", "attach", "attach", "longblob", None, True),
    ("blob@shared", "blob", "blob@shared", "binary(16)", "shared", True),
    ("attach@local", "attach", "attach@local", "binary(16)", "local", True),
    ("filepath@data", "filepath", "filepath@data", "binary(16)", "data", True),
]


@pytest.mark.parametrize(("declared", "kind", "normalised", "sql_type", "store", "special"), TYPES)
def test_type(
    declared: str, kind: str, normalised: str, sql_type: str, store: str | None, special: bool
) -> None:
    attribute = parse_attribute_line(f"value : {declared}  # the value", in_key=False)
    assert attribute.name == "value"
    assert (attribute.kind, attribute.type.declared, attribute.sql_type, attribute.store) == (
        kind,
        normalised,
        sql_type,
        store,
    )
    expected_comment = f":{normalised}:the value" if special else "the value"
    assert attribute.mysql_comment == expected_comment
    assert attribute.comment == "the value"


def test_auto_increment_in_key() -> None:
    spec = Catalog().parse("id : int unsigned auto_increment\n---\nx : int")
    attribute = spec.attributes[0]
    assert attribute.autoincrement and attribute.type.unsigned and attribute.in_key
    assert attribute.type.int_range == (0, 2**32 - 1)


def test_enum_values_may_hold_hash_and_comma() -> None:
    attribute = parse_attribute_line("""e : enum('a#1', "b,2", 'it''s')  # pick one""", False)
    assert attribute.type.enum_values == ("a#1", "b,2", "it's")
    assert attribute.comment == "pick one"


def test_spacing_and_case_are_normalised() -> None:
    attribute = parse_attribute_line("x:VARCHAR( 30 )#c", False)
    assert (attribute.name, attribute.sql_type, attribute.comment) == ("x", "varchar(30)", "c")


@pytest.mark.parametrize(
    "declared", ["longblob", "blob@shared", "attach", "attach@s", "json", "filepath@s"]
)
def test_blob_attach_json_filepath_not_in_primary_key(declared: str) -> None:
    with pytest.raises(DeclarationError, match="cannot be in the primary key"):
        parse_attribute_line(f"k : {declared}", in_key=True)


@pytest.mark.parametrize(
    "declared",
    [
        "blobb@shared",
        "longblob@shared",
        "text",
        "varchar",
        "int unsigned unsigned",
        "filepath",
        "blob@",
        "year",
    ],
)
def test_unsupported_types(declared: str) -> None:
    with pytest.raises(DeclarationError, match=re.escape(repr(declared))):
        parse_attribute_line(f"k : {declared}", in_key=False)


def test_huge_length_is_a_declaration_error() -> None:
    with pytest.raises(DeclarationError):
        parse_attribute_line("k : varchar(" + "9" * 5000 + ")", in_key=False)
