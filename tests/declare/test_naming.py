"""Class names <-> table names and tiers, checked against datajoint 0.14's own functions."""

from __future__ import annotations

import pytest

from dj_flows.errors import DeclarationError
from dj_flows.naming import (
    TIER_PREFIXES,
    class_name_of,
    split_part,
    table_name,
    tier_of,
    to_camel_case,
    to_snake_case,
)

CLASS_NAMES = [
    "WebImage",
    "OriginalFile",
    "Slide",
    "A",
    "ABC",
    "Table2",
    "Session2Trial",
    "HTTPRequest",
    "X9y",
]


@pytest.mark.parametrize(
    ("camel", "snake"),
    [
        ("WebImage", "web_image"),
        ("OriginalFile", "original_file"),
        ("Slide", "slide"),
        ("ABC", "a_b_c"),
        ("Table2", "table2"),
        ("Session2Trial", "session2_trial"),
    ],
)
def test_snake_case(camel: str, snake: str) -> None:
    assert to_snake_case(camel) == snake
    assert to_camel_case(snake) == camel


@pytest.mark.interop
@pytest.mark.parametrize("name", CLASS_NAMES)
def test_snake_case_agrees_with_datajoint(name: str) -> None:
    from datajoint.utils import from_camel_case

    assert to_snake_case(name) == from_camel_case(name)


@pytest.mark.interop
@pytest.mark.parametrize(
    "name", ["web_image", "#web_image", "__slide", "_original_file", "a_b_c", "x__y"]
)
def test_camel_case_agrees_with_datajoint(name: str) -> None:
    from datajoint.utils import to_camel_case as dj_to_camel_case

    assert to_camel_case(name) == dj_to_camel_case(name)


@pytest.mark.parametrize("bad", ["webImage", "Web_Image", "", "Web Image", "2Web", "Wéb", None])
def test_invalid_class_names(bad) -> None:
    with pytest.raises(DeclarationError, match="invalid table class name"):
        to_snake_case(bad)


def test_tier_prefixes() -> None:
    assert TIER_PREFIXES == {"manual": "", "lookup": "#", "imported": "_", "computed": "__"}


@pytest.mark.parametrize(
    ("class_name", "tier", "master", "expected"),
    [
        ("WebImage", "lookup", None, "#web_image"),
        ("OriginalFile", "imported", None, "_original_file"),
        ("Slide", "computed", None, "__slide"),
        ("Test", "manual", None, "test"),
        ("Detail", "part", "__slide", "__slide__detail"),
        ("Trial", "part", "session", "session__trial"),
        ("ImageTag", "part", "#web_image", "#web_image__image_tag"),
    ],
)
def test_table_name_and_inverse(
    class_name: str, tier: str, master: str | None, expected: str
) -> None:
    name = table_name(class_name, tier, master)
    assert name == expected
    assert tier_of(name) == tier
    assert class_name_of(name) == class_name
    if tier == "part":
        assert split_part(name) == (master, to_snake_case(class_name))
    else:
        assert split_part(name) is None


def test_table_name_errors() -> None:
    with pytest.raises(DeclarationError, match="unknown table tier 'hidden'"):
        table_name("Log", "hidden")
    with pytest.raises(DeclarationError, match="needs its master"):
        table_name("Detail", "part")
    with pytest.raises(DeclarationError, match="not a master table name"):
        table_name("Detail", "part", "__slide__other")
    with pytest.raises(DeclarationError, match="exceeds 64"):
        table_name("A" * 40, "manual")


@pytest.mark.parametrize(
    ("name", "tier"),
    [
        ("~log", "hidden"),
        ("~jobs", "hidden"),
        ("~external_shared", "hidden"),
        ("subject", "manual"),
        ("#lookup_x", "lookup"),
        ("_imp", "imported"),
        ("__comp9", "computed"),
        ("_imp__part", "part"),
    ],
)
def test_tier_of(name: str, tier: str) -> None:
    assert tier_of(name) == tier


@pytest.mark.parametrize("name", ["Subject", "___x", "a__b__c", "#", "x_", "_1abc", "a-b", ""])
def test_tier_of_rejects_names_datajoint_would_not_make(name: str) -> None:
    with pytest.raises(DeclarationError, match="does not follow"):
        tier_of(name)


@pytest.mark.interop
@pytest.mark.parametrize(
    "name",
    [
        "subject",
        "#lookup_x",
        "_imp",
        "__comp9",
        "_imp__part",
        "__a__b",
        "a__b__c",
        "___x",
        "x_",
        "#a__b_c",
    ],
)
def test_tier_of_agrees_with_datajoint(name: str) -> None:
    import re

    from datajoint import Computed, Imported, Lookup, Manual, Part

    expected = next(
        (
            tier
            for tier, cls in [
                ("manual", Manual),
                ("lookup", Lookup),
                ("imported", Imported),
                ("computed", Computed),
                ("part", Part),
            ]
            if re.fullmatch(cls.tier_regexp, name)
        ),
        None,
    )
    if expected is None:
        with pytest.raises(DeclarationError):
            tier_of(name)
    else:
        assert tier_of(name) == expected
