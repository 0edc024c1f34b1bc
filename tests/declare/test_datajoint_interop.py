"""Our attribute columns agree with the MySQL column SQL datajoint 0.14's own compiler produces.

`datajoint.declare.compile_attribute` is pure (no database), so each line below is compiled by both
parsers and the column type, nullability, default value and column comment are compared.
"""

from __future__ import annotations

import re

import pytest

from dj_flows.backends.base import parse_literal
from dj_flows.declare import parse_attribute_line
from dj_flows.heading import parse_type

pytestmark = [pytest.mark.interop, pytest.mark.filterwarnings("ignore::DeprecationWarning")]

LINES = [
    "id : int",
    "x = 3 : int unsigned  # a count",
    "x = -5 : smallint",
    "big = 9000000000 : bigint unsigned",
    "f = 2.5 : float",
    "d = null : double  # maybe",
    "m = 12.50 : decimal(6,2)",
    "c = 'N' : char(1)",
    's = "a:b#c" : varchar(12)  # note: with # and "quotes"',
    "s2 = 'it''s' : varchar(12)",
    "word = pending : varchar(12)",
    "e = 'b#2' : enum('a', 'b#2')  # choice",
    "day = '2024-01-02' : date",
    "t = '12:30:00' : time",
    "dt = '2024-01-02 03:04:05' : datetime",
    "ts = CURRENT_TIMESTAMP : timestamp  # inserted at",
    "flag : bool",
    "j = null : json",
    "u : uuid  # unique id",
    "b0 : longblob  # internal",
    "b1 : blob@shared  # a python object stored on S3",
    "b2 = null : blob@local",
    "a0 : attach",
    "a1 : attach@shared  # file",
    "fp : filepath@data  # a path",
    "tb : tinyblob",
    "mb : mediumblob",
]
DJ_COLUMN = re.compile(
    r"`(?P<name>\w+)` (?P<type>.+?) (?P<null>NOT NULL|DEFAULT NULL)(?: DEFAULT (?P<default>.+?))?"
    r'(?: COMMENT "(?P<comment>.*)")?',
    re.S,
)


def dj_column(line: str) -> dict[str, str | None]:
    from datajoint.declare import compile_attribute

    name, sql, _store = compile_attribute(line, False, [], {})
    match = DJ_COLUMN.fullmatch(sql)
    assert match, sql
    return match.groupdict()


def normalise_dj_type(text: str) -> str:
    lowered = text.lower()
    if lowered in ("bool", "boolean"):
        return "tinyint"  # MySQL's alias
    if lowered.startswith("enum"):
        return parse_type(lowered).sql_type
    return lowered


@pytest.mark.parametrize("line", LINES)
def test_column_agrees_with_datajoint(line: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DJ_SUPPORT_FILEPATH_MANAGEMENT", "TRUE")
    theirs = dj_column(line)
    ours = parse_attribute_line(line, in_key=False)
    assert ours.name == theirs["name"]
    assert ours.sql_type == normalise_dj_type(theirs["type"])
    assert ours.nullable == (theirs["null"] == "DEFAULT NULL")
    if theirs["default"] is None:
        assert ours.default in (None, "null")
    else:
        their_default = parse_literal(theirs["default"])
        our_default = parse_literal(ours.default)
        if isinstance(our_default, (int, float)):
            assert float(their_default) == our_default
        else:
            assert our_default == their_default
    assert ours.mysql_comment == (theirs["comment"] or "").replace('\\"', '"')


def test_filepath_switch_is_not_needed_by_us() -> None:
    assert parse_attribute_line("fp : filepath@data", in_key=False).sql_type == "binary(16)"
