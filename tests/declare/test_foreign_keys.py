"""Foreign keys: inherited attributes, options, proj renames, merges of shared attributes."""

from __future__ import annotations

import pytest

from dj_flows.declare import ForeignKeySpec, IndexSpec, parse_reference
from dj_flows.errors import DeclarationError

from .catalog import Catalog


@pytest.fixture
def catalog() -> Catalog:
    catalog = Catalog("lab")
    catalog.declare(
        "Subject", "subject", "subject_id : varchar(16)  # animal id\n---\nsex : enum('M','F')"
    )
    catalog.declare(
        "Session",
        "session",
        "-> Subject\nsession_idx : smallint unsigned  # session number\n---\nnote = '' : varchar(255)",
    )
    catalog.declare(
        "Counter", "#counter", "counter_id : int auto_increment\n---\nlabel : varchar(8)"
    )
    catalog.declare("other.Rig", "rig", "rig : char(4)", schema="other_db")
    catalog.refs["master"] = catalog.refs["Session"]  # inside Session, 'master' names it
    catalog.declare("Session.Trial", "session__trial", "-> master\ntrial : int")
    return catalog


def attrs(spec):
    return [(a.name, a.sql_type, a.in_key, a.nullable, a.default) for a in spec.attributes]


def test_primary_foreign_key_copies_key_in_parent_order(catalog: Catalog) -> None:
    spec = catalog.parse("-> Session\nepoch : int\n---\nvalue : float")
    assert attrs(spec) == [
        ("subject_id", "varchar(16)", True, False, None),
        ("session_idx", "smallint unsigned", True, False, None),
        ("epoch", "int", True, False, None),
        ("value", "float", False, False, None),
    ]
    assert spec.attributes[0].comment == "animal id"  # comments are inherited
    (fk,) = spec.foreign_keys
    assert fk == ForeignKeySpec(
        "lab",
        "session",
        {"subject_id": "subject_id", "session_idx": "session_idx"},
        True,
        False,
        False,
    )
    assert list(fk.attr_map) == ["subject_id", "session_idx"]


def test_secondary_nullable_unique(catalog: Catalog) -> None:
    spec = catalog.parse("id : int\n---\n-> [nullable, unique] Subject\n-> [UNIQUE] other.Rig")
    assert attrs(spec) == [
        ("id", "int", True, False, None),
        ("subject_id", "varchar(16)", False, True, "null"),
        ("rig", "char(4)", False, False, None),
    ]
    fk_subject, fk_rig = spec.foreign_keys
    assert (fk_subject.in_key, fk_subject.nullable, fk_subject.unique) == (False, True, True)
    assert (fk_rig.parent_schema, fk_rig.parent_table, fk_rig.unique, fk_rig.nullable) == (
        "other_db",
        "rig",
        True,
        False,
    )
    assert spec.indexes == (IndexSpec(("subject_id",), True), IndexSpec(("rig",), True))


def test_nullable_alone(catalog: Catalog) -> None:
    spec = catalog.parse("id : int\n---\n-> [ nullable ] Subject  # who, if known")
    assert spec.attributes[1].nullable and spec.indexes == ()
    assert spec.foreign_keys[0].nullable and not spec.foreign_keys[0].unique


def test_proj_renames_key_attributes(catalog: Catalog) -> None:
    spec = catalog.parse(
        "-> Session.proj(pre_subject='subject_id', pre_idx=\"session_idx\")\n"
        "-> Session.proj(post_idx='session_idx')\n---\n"
    )
    assert [a.name for a in spec.attributes] == ["pre_subject", "pre_idx", "subject_id", "post_idx"]
    pre, post = spec.foreign_keys
    assert pre.attr_map == {"pre_subject": "subject_id", "pre_idx": "session_idx"}
    assert post.attr_map == {"subject_id": "subject_id", "post_idx": "session_idx"}
    assert spec.attributes[1].sql_type == "smallint unsigned"
    assert spec.attributes[1].comment == "session number"


def test_chained_and_empty_proj(catalog: Catalog) -> None:
    spec = catalog.parse("-> Subject.proj().proj(a='subject_id').proj(b='a')")
    assert spec.foreign_keys[0].attr_map == {"b": "subject_id"}
    assert catalog.lookups[-1] == "Subject"


def test_shared_attributes_merge(catalog: Catalog) -> None:
    catalog.declare("Probe", "probe", "-> Subject\nprobe : int")
    spec = catalog.parse("-> Session\n-> Probe\n---\n-> [nullable] Subject")
    assert [a.name for a in spec.attributes] == ["subject_id", "session_idx", "probe"]
    assert len(spec.foreign_keys) == 3
    assert spec.foreign_keys[1].attr_map == {"subject_id": "subject_id", "probe": "probe"}
    assert spec.foreign_keys[2].attr_map == {"subject_id": "subject_id"}
    assert not spec.attributes[0].nullable  # the key attribute keeps its own properties


def test_merge_with_explicit_attribute_of_same_type(catalog: Catalog) -> None:
    spec = catalog.parse("subject_id : varchar(16)\n-> Subject")
    assert [a.name for a in spec.attributes] == ["subject_id"]
    assert spec.foreign_keys[0].attr_map == {"subject_id": "subject_id"}


def test_merge_conflict_of_types_is_an_error(catalog: Catalog) -> None:
    with pytest.raises(
        DeclarationError, match=r"'subject_id' from Subject has type 'varchar\(16\)'"
    ):
        catalog.parse("subject_id : int\n-> Subject")


def test_auto_increment_is_not_inherited(catalog: Catalog) -> None:
    spec = catalog.parse("-> Counter\n---\n")
    assert spec.attributes[0].sql_type == "int" and not spec.attributes[0].autoincrement
    assert spec.attributes[0].in_key


def test_part_and_master_references(catalog: Catalog) -> None:
    spec = catalog.parse("-> master\nitem : int")
    assert spec.foreign_keys[0].parent_table == "session"
    spec = catalog.parse("-> Session.Trial\n---\nx : int")
    assert spec.primary_key == ["subject_id", "session_idx", "trial"]
    assert spec.foreign_keys[0].parent_table == "session__trial"


def test_reference_parser() -> None:
    assert parse_reference("Subject") == ("Subject", [])
    assert parse_reference(" a.B.C  # comment") == ("a.B.C", [])
    assert parse_reference("A.proj(x='y').proj()") == ("A", [{"x": "y"}, {}])


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("-> [nullable] Subject", "cannot be \\[nullable\\]"),
        ("-> [optional] Subject", "invalid foreign key option 'optional'"),
        ("-> []  Subject", "invalid foreign key option ''"),
        ("-> Unknown", "cannot resolve foreign key reference 'Unknown'"),
        ("-> Subject()", "unsupported foreign key reference"),
        ("-> Subject & 'x=1'", "unsupported foreign key reference"),
        ("-> Subject.proj('sex')", "only renames"),
        ("-> Subject.proj(a='sex')", "'sex', which is not in its primary key"),
        ("-> Subject.proj(a='nope')", "'nope', which is not one of its attributes"),
        ("-> Subject.proj(a=subject_id)", "must be new='old'"),
        ("-> Subject.proj(**x)", "must be new='old'"),
        ("-> Session.proj(a='subject_id', b='subject_id')", "renames 'subject_id' twice"),
        ("-> Session.proj(session_idx='subject_id')", "two key attributes the name 'session_idx'"),
        ("-> Subject.proj(Bad='subject_id')", "invalid attribute name 'Bad'"),
        ("-> __import__('os').system('true')", "unsupported foreign key reference"),
        ("-> Subject.", "cannot parse foreign key reference"),
        ("->", "names no parent table"),
        ("x -> Subject", "starts with '->'"),
    ],
)
def test_bad_foreign_keys(catalog: Catalog, line: str, message: str) -> None:
    with pytest.raises(DeclarationError, match=message) as info:
        catalog.parse(f"id : int\n{line}", table="child")
    assert str(info.value).startswith(f"table 'child' line 2 \"{line.strip()}\": ")


def test_lookup_failure_of_any_kind_is_wrapped() -> None:
    from dj_flows.declare import parse_definition

    def lookup(name: str):
        raise RuntimeError(f"boom {name}")

    with pytest.raises(
        DeclarationError, match="cannot resolve foreign key reference 'X': RuntimeError: boom X"
    ):
        parse_definition("-> X", "t", lookup)


@pytest.mark.parametrize(
    "reference",
    ["(" * 400 + "A" + ")" * 400, "A." * 600 + "B", "-" * 999 + "A", "A" + ".proj()" * 200],
)
def test_pathological_references_are_declaration_errors(catalog: Catalog, reference: str) -> None:
    with pytest.raises(DeclarationError, match="foreign key reference"):
        catalog.parse(f"id : int\n-> {reference}")
