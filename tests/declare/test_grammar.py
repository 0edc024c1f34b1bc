"""The definition grammar: comments, separator, indexes, names; every error names table and line."""

from __future__ import annotations

import re

import pytest

from dj_flows.declare import IndexSpec, parse_definition
from dj_flows.errors import DeclarationError

from .catalog import Catalog


def parse(definition: str, table: str = "test"):
    return Catalog().parse(definition, table)


def test_comments_blank_lines_and_separator_variants() -> None:
    spec = parse(
        """

        #   Sessions: one per day # really
        # not the table comment
        day : date   # the day: YYYY-MM-DD # with a hash

        ------------  # end of the key
        # a comment line between attributes
        note = "a # b : c" : varchar(20)  # note: 'quoted' "text"
        """
    )
    assert spec.comment == "Sessions: one per day # really"
    assert spec.primary_key == ["day"]
    day, note = spec.attributes
    assert day.comment == "the day: YYYY-MM-DD # with a hash"
    assert (note.default, note.comment) == ("'a # b : c'", "note: 'quoted' \"text\"")


def test_comment_only_on_first_line_is_the_table_comment() -> None:
    spec = parse("id : int\n# not a table comment\n---\nx : int")
    assert spec.comment == ""


def test_underscore_separator() -> None:
    assert parse("id : int\n___\nx : int").primary_key == ["id"]


def test_key_only_table_and_declaration_order() -> None:
    spec = parse("b : int\na : int\n---\nz : int\ny : int")
    assert [a.name for a in spec.attributes] == ["b", "a", "z", "y"]
    assert spec.primary_key == ["b", "a"]
    assert parse("k : int").primary_key == ["k"]


def test_indexes() -> None:
    spec = parse(
        """
        id : int
        ---
        a : int
        b : varchar(8)
        index(a, b)
        UNIQUE INDEX ( b )  # names are unique
        index(c)
        unique index(a, b)
        index(a,b)
        c : int
        """
    )
    assert spec.indexes == (
        IndexSpec(("a", "b"), False),
        IndexSpec(("b",), True),
        IndexSpec(("c",), False),  # an index may precede its attribute's declaration
        IndexSpec(("a", "b"), True),
    )


def test_attribute_named_like_index_is_an_attribute() -> None:
    spec = parse("index_number : int\n---\nunique_index : int")
    assert [a.name for a in spec.attributes] == ["index_number", "unique_index"]


def test_heading_of_spec() -> None:
    spec = parse("# comment\nid : int\n---\nx = null : float")
    heading = spec.heading
    assert heading.primary_key == ["id"] and heading.secondary_attributes == ["x"]
    assert heading["x"].nullable and heading.table_comment == "comment"


BAD = [
    # (definition, line number, offending line, message fragment)
    (
        "id : int\n---\nb1 : blobb@shared",
        3,
        "b1 : blobb@shared",
        "unsupported attribute type 'blobb@shared'",
    ),
    ("\n  # comment\n  id : int\n  Name : int", 4, "Name : int", "invalid attribute name 'Name'"),
    ("id : int\nx int", 2, "x int", "expected 'name : type'"),
    ("id : int\nx :", 2, "x :", "has no type"),
    ("id : int\n2x : int", 2, "2x : int", "invalid attribute name '2x'"),
    ("id : int\nmy name : int", 2, "my name : int", "invalid attribute name 'my name'"),
    ("id : int\n---\nid : int", 3, "id : int", "declared twice"),
    ("id : int\nid : varchar(2)", 2, "id : varchar(2)", "declared twice"),
    ("id : int\n---\nx = null : int\nx : int", 4, "x : int", "declared twice"),
    (
        "id : int auto_increment\nj : int auto_increment",
        2,
        "j : int auto_increment",
        "only one auto_increment",
    ),
    (
        "id : int\n---\nj : int auto_increment",
        3,
        "j : int auto_increment",
        "must be in the primary key",
    ),
    ("id = null : int", 1, "id = null : int", "cannot be nullable"),
    ("id : longblob", 1, "id : longblob", "cannot be in the primary key"),
    ("id : json", 1, "id : json", "cannot be in the primary key"),
    ("id : int\n---\nx : int # :secret:", 3, "x : int # :secret:", 'must not start with ":"'),
    ("# :blob: comment\nid : int", 1, "# :blob: comment", 'must not start with ":"'),
    ("id : int\n---\n---\nx : int", 3, "---", "a second '---' separator"),
    ("id : int\n--- x : int", 2, "--- x : int", "separator line"),
    ("id : int\nindex()", 2, "index()", "at least one attribute"),
    ("id : int\nindex(a, a)", 2, "index(a, a)", "appears twice"),
    ("id : int\nindex(nope)", 2, "index(nope)", "index attribute 'nope' is not declared"),
    (
        "id : int\nunique index(id->>'a')",
        2,
        "unique index(id->>'a')",
        "invalid attribute name .id->>'a'. in index",
    ),
    ("id : int\nindex(a", 2, "index(a", "malformed index"),
    ("id : int\nx = 'abc : varchar(9)", 2, "x = 'abc : varchar(9)", "unterminated ' quote"),
    ("id : int\nx : enum('a", 2, "x : enum('a", "unterminated ' quote"),
    ("id : int\nx = 1 = 2 : int", 2, "x = 1 = 2 : int", "invalid default"),
    ("id : int\nx : decimal(70,2)", 2, "x : decimal(70,2)", "precision"),
    ("id : int\nx : enum()", 2, "x : enum()", "at least one value"),
    ("id : int\n" + "y" * 65 + " : int", 2, "y" * 65 + " : int", "longer than 64"),
    ("id : int\nx : int  # " + "c" * 1100, 2, "x : int  # " + "c" * 1100, "longer than 1024"),
]


@pytest.mark.parametrize(("definition", "number", "line", "message"), BAD)
def test_bad_definitions_name_table_and_line(
    definition: str, number: int, line: str, message: str
) -> None:
    with pytest.raises(DeclarationError, match=message) as info:
        parse(definition, "bad_table")
    assert str(info.value).startswith(f"table 'bad_table' line {number} \"{line}\": ")


def test_the_brief_s_example_message() -> None:
    with pytest.raises(DeclarationError) as info:
        parse("id : int\n---\nb1 : blobb@shared", "test")
    assert (
        str(info.value)
        == "table 'test' line 3 \"b1 : blobb@shared\": unsupported attribute type 'blobb@shared'"
    )


@pytest.mark.parametrize(
    ("definition", "message"),
    [
        ("", "the definition is empty"),
        ("\n   \n", "the definition is empty"),
        ("# only a comment", "at least one primary key attribute"),
        ("---\nx : int", 'line 1 "---": the table needs at least one primary key attribute'),
    ],
)
def test_definitions_without_a_key(definition: str, message: str) -> None:
    with pytest.raises(DeclarationError, match=re.escape(message)) as info:
        parse(definition, "keyless")
    assert "table 'keyless'" in str(info.value)


def test_definition_must_be_a_string() -> None:
    with pytest.raises(DeclarationError, match="must be a string"):
        parse_definition(None, "t", Catalog().lookup)  # type: ignore[arg-type]
