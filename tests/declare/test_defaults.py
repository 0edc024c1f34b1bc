"""Defaults are checked against their type and stored as safe SQL literals."""

from __future__ import annotations

import pytest

from dj_flows.declare import parse_attribute_line
from dj_flows.errors import DeclarationError


def default_of(line: str) -> tuple[bool, str | None]:
    attribute = parse_attribute_line(line, in_key=False)
    return attribute.nullable, attribute.default


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("x = 3 : int", "3"),
        ("x = -128 : tinyint", "-128"),
        ("x = +7 : int unsigned", "7"),
        ("x = 4294967295 : int unsigned", "4294967295"),
        ('x = "12" : bigint', "12"),
        ("x = true : bool", "1"),
        ("x = FALSE : bool", "0"),
        ("x = 1 : boolean", "1"),
        ("x = 2.5e-3 : double", "2.5e-3"),
        ("x = .5 : float", ".5"),
        ("x = '1.25' : float", "1.25"),
        ("x = 123.45 : decimal(5,2)", "123.45"),
        ("x = -0.001 : decimal(4,3)", "-0.001"),
        ('x = "a:b#c" : varchar(8)', "'a:b#c'"),
        ("x = 'it''s' : varchar(8)", "'it''s'"),
        ('x = "say ""hi""" : varchar(12)', "'say \"hi\"'"),
        ('x = "" : varchar(8)', "''"),
        ("x = pending : varchar(8)", "'pending'"),
        ("x = 'b#2' : enum('a', 'b#2')", "'b#2'"),
        ("x = a : enum('a', 'b')", "'a'"),
        ("x = '2024-02-29' : date", "'2024-02-29'"),
        ("x = '0000-00-00' : date", "'0000-00-00'"),
        ("x = '2024-01-02 03:04:05.123' : datetime(3)", "'2024-01-02 03:04:05.123'"),
        ("x = '12:30:00' : time", "'12:30:00'"),
        ("x = CURRENT_TIMESTAMP : timestamp", "CURRENT_TIMESTAMP"),
        ("x = current_timestamp : datetime", "CURRENT_TIMESTAMP"),
        ("x = CURRENT_TIMESTAMP(3) : timestamp(3)", "CURRENT_TIMESTAMP"),
        ("x = '3' : char(1)  # a quoted digit stays a string", "'3'"),
    ],
)
def test_valid_defaults(line: str, expected: str) -> None:
    assert default_of(line) == (False, expected)


@pytest.mark.parametrize(
    "declared",
    [
        "int",
        "varchar(3)",
        "longblob",
        "blob@s",
        "attach",
        "attach@s",
        "json",
        "uuid",
        "date",
        "filepath@s",
    ],
)
def test_null_default_makes_nullable(declared: str) -> None:
    assert default_of(f"x = null : {declared}") == (True, "null")
    assert default_of(f"x = NULL : {declared}") == (True, "null")


def test_quoted_null_is_a_string() -> None:
    assert default_of("x = 'null' : varchar(4)") == (False, "'null'")


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("x = 1; drop table y : int", "invalid default '1; drop table y'"),
        ("x = 1) ; drop table y; -- : int", "invalid default"),
        ("x = 'a'); drop table y; -- : varchar(40)", "invalid default"),
        ("x = 'a' || 'b' : varchar(40)", "invalid default"),
        ("x = 1.5 : int", "not an integer"),
        ("x = abc : int", "not an integer"),
        ("x = 128 : tinyint", "out of range"),
        ("x = -1 : int unsigned", "out of range"),
        ("x = -1.5 : float unsigned", "negative"),
        ("x = 1e999 : double", "out of range"),
        ("x = 'abc' : float", "not a number"),
        ("x = 1234.5 : decimal(5,2)", "too many digits"),
        ("x = 'toolong' : char(3)", "longer than 3"),
        ("x = 'c' : enum('a','b')", "not one of the enum's values"),
        ("x = 'a\\b' : varchar(9)", "backslashes"),
        ("x = 'yesterday' : date", "not a date value"),
        ("x = '2023-02-30' : date", "not a date value"),
        ("x = '2023-01-01 25:00' : datetime", "not a datetime value"),
        ("x = '10:75' : time", "not a time value"),
        ("x = CURRENT_TIMESTAMP : date", "CURRENT_TIMESTAMP is only a default"),
        ("x = CURRENT_TIMESTAMP : varchar(20)", "CURRENT_TIMESTAMP is only a default"),
        ("x = 'abc' : longblob", "can only default to null"),
        ("x = 0 : blob@s", "can only default to null"),
        ("x = '{}' : json", "can only default to null"),
        ("x = 'x' : attach", "can only default to null"),
        ("x = '00000000-0000-0000-0000-000000000000' : uuid", "can only default to null"),
        ("x =  : int", "has '=' but no default"),
    ],
)
def test_invalid_defaults(line: str, message: str) -> None:
    with pytest.raises(DeclarationError, match=message):
        parse_attribute_line(line, in_key=False)


def test_null_default_not_in_primary_key() -> None:
    with pytest.raises(DeclarationError, match="cannot be nullable"):
        parse_attribute_line("x = null : int", in_key=True)


def test_key_attribute_may_have_a_value_default() -> None:
    attribute = parse_attribute_line("x = 0 : int", in_key=True)
    assert attribute.in_key and attribute.default == "0"
