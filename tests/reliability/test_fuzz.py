"""The definition and restriction parsers under a grammar-aware fuzzer (hypothesis, bounded case
count). Whatever the input: only DataJointError subclasses, and a failed declaration leaves no
table behind."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import dj_flows as dj
from dj_flows.errors import DataJointError

CASES = 250  # per parser and backend
COUNTER = itertools.count()
FUZZ = settings(max_examples=CASES, deadline=None, derandomize=True,
                suppress_health_check=list(HealthCheck))

VALID_NAMES = st.sampled_from(["id", "value", "a_b", "x1", "key", "other", "n2"])
VALID_TYPES = st.sampled_from(["int", "int unsigned", "smallint", "bigint", "float", "double",
                               "decimal(5,2)", "varchar(16)", "char(3)", "date", "datetime",
                               "bool", "enum('a','b')", "uuid", "longblob", "json"])
names = st.one_of(
    VALID_NAMES, VALID_NAMES, VALID_NAMES,
    st.sampled_from(["id", "value", "a_b", "x1", "select", "key", "ID", "_x", "1x", "a-b", "a b",
                     "`x`", "x'", 'x"', "x;", "", "é", "a" * 70]),
    st.text(alphabet="abcxyz_019`'\";-# ", min_size=0, max_size=12),
)
types = st.one_of(
    VALID_TYPES, VALID_TYPES, VALID_TYPES,
    st.sampled_from(["int", "int unsigned", "smallint", "tinyint unsigned", "bigint", "float",
                     "double", "decimal(5,2)", "varchar(16)", "char(3)", "date", "datetime",
                     "timestamp", "bool", "enum('a','b')", "enum('it''s')", "uuid", "longblob",
                     "blob", "attach", "json", "blob@nostore", "varchar(0)", "varchar(-1)",
                     "decimal(70,2)", "enum()", "int(", "varchar(16", "set('a')", "serial", "x"]),
    st.text(alphabet="abintvrch(),'@0123456789 ", min_size=0, max_size=16),
)
defaults = st.one_of(st.just(""), st.just(""), st.just(""), st.sampled_from([
    "= 0", "= null", "= NULL", '= "x"', "= 'x'", "= CURRENT_TIMESTAMP", "= 1.5e3", "= ", "=",
    "= 'a'';DROP TABLE x;--'", '= "\\\\"', "= -", "= ()"]))
comments = st.one_of(st.just(""), st.just("# ok"), st.text(alphabet="ab'\"`\\;# -", max_size=10).map(lambda t: "# " + t))


@st.composite
def attribute_line(draw) -> str:
    return f"{draw(names)} {draw(defaults)} : {draw(types)} {draw(comments)}".strip()


@st.composite
def definition(draw) -> str:
    lines = []
    if draw(st.booleans()):
        lines.append("# " + draw(st.text(alphabet="abc'\"`\\; ", max_size=12)))
    lines += draw(st.lists(attribute_line(), min_size=0, max_size=3))
    if draw(st.booleans()):
        lines.append(draw(st.sampled_from(["---", "___", "----", "-- -", "-> Missing", "->", "-> Base",
                                           "-> [nullable] Base", "-> Base.proj(a='id')"])))
    lines += draw(st.lists(attribute_line(), min_size=0, max_size=3))
    if draw(st.booleans()):
        lines.append(draw(st.sampled_from(["index(value)", "unique index(id)", "index()",
                                           "index(missing)", "unique index (id, id)"])))
    return "\n".join(lines)


@pytest.fixture(scope="module")
def fuzz_schema(backend, make_schema):
    schema = make_schema("fz")

    class Base(dj.Manual):
        definition = """
        id : int
        ---
        value : varchar(16)
        """

    schema(Base)
    Base.insert([{"id": i, "value": f"v{i}"} for i in range(5)])
    return schema, Base


def test_definition_parser(fuzz_schema):
    schema, Base = fuzz_schema
    before = set(schema.list_tables())
    outcomes = {"declared": 0, "refused": 0}

    @FUZZ
    @given(definition())
    def run(text: str) -> None:
        cls = type(f"Fuzz{next(COUNTER)}", (dj.Manual,), {"definition": text})
        try:
            schema(cls, context={"Base": Base})
        except DataJointError:
            outcomes["refused"] += 1
            assert set(schema.list_tables()) == before, f"half-declared table after {text!r}"
            return
        outcomes["declared"] += 1
        cls.drop_quick() if hasattr(cls, "drop_quick") else cls.drop()
        assert set(schema.list_tables()) == before

    run()
    assert Base.fetch("value").tolist() == [f"v{i}" for i in range(5)]
    assert outcomes["refused"] > 0
    print(f"RELIABILITY fuzz-definition: {sum(outcomes.values())} cases, {outcomes}")


tokens = st.sampled_from([
    "id", "value", "missing", "=", "<", ">=", "<>", "!=", " ", "AND", "OR", "NOT", "IN", "(", ")",
    "'", '"', "`", ";", "--", "#", "1", "-1", "1e400", "'v1'", '"v2"', "NULL", "IS", "LIKE",
    "'%'", "\\", "DROP TABLE base", "SELECT", ",", "BETWEEN", "0x41", "/*", "*/", "é", "\x00",
])
restrictions = st.one_of(
    st.lists(tokens, min_size=0, max_size=8).map(" ".join),
    st.dictionaries(st.sampled_from(["id", "value", "missing", "id`", "value'"]),
                    st.one_of(st.integers(-2**70, 2**70), st.text(max_size=8), st.floats(),
                              st.none(), st.binary(max_size=4)), max_size=2),
    st.lists(st.dictionaries(st.sampled_from(["id", "value"]), st.integers(-3, 8), max_size=2),
             max_size=3),
)


def test_restriction_parser(fuzz_schema):
    schema, Base = fuzz_schema
    outcomes = {"answered": 0, "refused": 0}

    @FUZZ
    @given(restrictions)
    def run(restriction) -> None:
        try:
            rows = len(Base & restriction)
            (Base - restriction).fetch("id")
        except DataJointError:
            outcomes["refused"] += 1
            return
        assert 0 <= rows <= 5
        outcomes["answered"] += 1

    run()
    assert Base.fetch("value").tolist() == [f"v{i}" for i in range(5)]
    assert set(schema.list_tables()) == {"base"} or len(schema.list_tables()) == 1
    print(f"RELIABILITY fuzz-restriction: {sum(outcomes.values())} cases, {outcomes}")
