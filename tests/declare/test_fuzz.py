"""Grammar fuzz: random mutations of valid definitions only ever raise DeclarationError.

Whatever survives parsing must still be safe to put into DDL: valid names, a primary key, and
defaults that are plain SQL literals which the backends' literal reader understands.
"""

from __future__ import annotations

import re

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dj_flows.backends.base import parse_literal
from dj_flows.declare import ATTRIBUTE_NAME
from dj_flows.errors import DeclarationError

from .catalog import Catalog
from .test_seed_definitions import ORIGINAL_FILE, SLIDE, TEST, WEB_IMAGE

SEEDS = [
    TEST,
    WEB_IMAGE,
    ORIGINAL_FILE,
    SLIDE,
    """
    # every kind of default: 'quoted', "double", with : and #
    -> WebImage.proj(img='image_number')
    k = 0 : int unsigned   # key
    ---
    -> [nullable, unique] OriginalFile
    s = "a:b#c" : varchar(12)  # note: 'x'
    e = 'x#y' : enum('x#y', "a,b")
    d = '2024-01-01' : date
    t = CURRENT_TIMESTAMP : timestamp
    f = -1.5e3 : double
    m = 12.50 : decimal(6,2)
    b = true : bool
    n = null : longblob
    u : uuid
    p = null : filepath@data
    index(s, e)
    """,
]
SAFE_LITERAL = re.compile(r"null|CURRENT_TIMESTAMP|[+-]?[0-9.eE+-]+|'(?:[^'\\]|'')*'")
ALPHABET = list("abcxyz019 _-:#=,.'\"()[]<>@\\;\t") + ["->", "---", "null", "index(", "proj(", "\n"]


def catalog() -> Catalog:
    result = Catalog()
    result.declare("WebImage", "#web_image", WEB_IMAGE)
    result.declare("OriginalFile", "_original_file", ORIGINAL_FILE)
    return result


@st.composite
def mutated(draw) -> str:
    text = draw(st.sampled_from(SEEDS))
    for _ in range(draw(st.integers(1, 4))):
        lines = text.split("\n")
        operation = draw(
            st.sampled_from(["insert", "delete", "replace", "swap_lines", "drop_line", "dup_line"])
        )
        if operation in ("swap_lines", "drop_line", "dup_line"):
            i = draw(st.integers(0, len(lines) - 1))
            j = draw(st.integers(0, len(lines) - 1))
            if operation == "swap_lines":
                lines[i], lines[j] = lines[j], lines[i]
            elif operation == "drop_line":
                del lines[i]
            else:
                lines.insert(j, lines[i])
            text = "\n".join(lines)
            continue
        position = draw(st.integers(0, max(len(text) - 1, 0)))
        piece = draw(st.sampled_from(ALPHABET))
        if operation == "insert":
            text = text[:position] + piece + text[position:]
        elif operation == "delete":
            text = text[:position] + text[position + draw(st.integers(1, 5)) :]
        else:
            text = text[:position] + piece + text[position + 1 :]
    return text


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_mutations_only_raise_declaration_errors(definition: str) -> None:
    try:
        spec = catalog().parse(definition, "fuzzed")
    except DeclarationError as err:
        assert str(err).startswith("table 'fuzzed'")
        return
    assert spec.primary_key
    for attribute in spec.attributes:
        assert ATTRIBUTE_NAME.fullmatch(attribute.name)
        if attribute.default is not None:
            assert SAFE_LITERAL.fullmatch(attribute.default), attribute.default
            parse_literal(attribute.default)
        assert not (attribute.in_key and attribute.nullable)
    names = {a.name for a in spec.attributes}
    for foreign_key in spec.foreign_keys:
        assert set(foreign_key.attr_map) <= names
    for index in spec.indexes:
        assert set(index.attributes) <= names


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(ALPHABET + list("ABQ\x00é")), max_size=40))
def test_random_lines_only_raise_declaration_errors(pieces: list[str]) -> None:
    line = "".join(pieces)
    try:
        catalog().parse("id : int\n---\n" + line, "fuzzed")
    except DeclarationError as err:
        assert str(err).startswith("table 'fuzzed'")
