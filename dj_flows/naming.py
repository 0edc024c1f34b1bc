"""Class names <-> table names, by DataJoint 0.14's rules.

On MySQL a table's tier is encoded in its name (`#` lookup, `_` imported, `__` computed, none for
manual, `master__part` for parts, `~` for hidden bookkeeping tables), so the same rules are needed in
both directions: to name a new table from its class, and to recover the tier (and the class name)
of an existing table in `spawn_missing_classes`.
"""

from __future__ import annotations

import re

from .errors import DeclarationError

TIER_PREFIXES: dict[str, str] = {
    "manual": "",
    "lookup": "#",
    "imported": "_",
    "computed": "__",
}
HIDDEN_PREFIX = "~"
MAX_TABLE_NAME_LENGTH = 64

_CLASS_NAME = re.compile(r"[A-Z][A-Za-z0-9]*")
_BASE = r"[a-z][a-z0-9]*(?:_[a-z][a-z0-9]*)*"  # a snake_case name without a tier prefix
_MASTER = rf"(?:__|_|#)?{_BASE}"
_PART = re.compile(rf"(?P<master>{_MASTER})__(?P<part>{_BASE})")
# the most specific prefix first: '__x' must not be read as imported '_' + '_x'
_TIER_PATTERNS = [
    ("computed", re.compile(rf"__{_BASE}")),
    ("imported", re.compile(rf"_{_BASE}")),
    ("lookup", re.compile(rf"#{_BASE}")),
    ("manual", re.compile(_BASE)),
]


def is_camel_case(name: str) -> bool:
    """True for a valid table class name: a capital letter, then letters and digits."""
    return bool(_CLASS_NAME.fullmatch(name))


def to_snake_case(class_name: str) -> str:
    """'WebImage' -> 'web_image': an underscore before every capital that is not the first."""
    if not isinstance(class_name, str) or not is_camel_case(class_name):
        raise DeclarationError(
            f"invalid table class name {class_name!r}: it must be alphanumeric CamelCase "
            "and begin with a capital letter"
        )
    return class_name[0].lower() + re.sub(
        r"[A-Z]", lambda m: "_" + m.group(0).lower(), class_name[1:]
    )


def to_camel_case(snake_name: str) -> str:
    """'web_image' -> 'WebImage'; tier prefixes and other separators are dropped ('#web_image' too)."""
    return re.sub(r"(?:^|[_\W])+[a-zA-Z]", lambda m: m.group(0)[-1].upper(), snake_name)


def table_name(class_name: str, tier: str, master_table_name: str | None = None) -> str:
    """The table name DataJoint gives a class of `tier`; a part's is `<master table>__<snake name>`."""
    snake = to_snake_case(class_name)
    if tier == "part" or master_table_name is not None:
        if master_table_name is None:
            raise DeclarationError(f"part table {class_name!r} needs its master's table name")
        if tier_of(master_table_name) not in TIER_PREFIXES:
            raise DeclarationError(
                f"part table {class_name!r}: {master_table_name!r} is not a master table name"
            )
        name = f"{master_table_name}__{snake}"
    else:
        try:
            name = TIER_PREFIXES[tier] + snake
        except KeyError:
            raise DeclarationError(
                f"unknown table tier {tier!r} for {class_name!r} "
                f"(expected one of {', '.join(TIER_PREFIXES)} or part)"
            ) from None
    if len(name) > MAX_TABLE_NAME_LENGTH:
        raise DeclarationError(
            f"table name {name!r} of class {class_name!r} exceeds {MAX_TABLE_NAME_LENGTH} characters"
        )
    return name


def split_part(name: str) -> tuple[str, str] | None:
    """('__slide', 'detail') for '__slide__detail'; None when `name` is not a part table's."""
    match = _PART.fullmatch(name)
    return (match.group("master"), match.group("part")) if match else None


def tier_of(name: str) -> str:
    """The tier encoded in a table name: manual, lookup, imported, computed, part or hidden.

    Raises DeclarationError for a name DataJoint would not have produced (spawn_missing_classes
    skips those).
    """
    if name.startswith(HIDDEN_PREFIX):
        return "hidden"
    for tier, pattern in _TIER_PATTERNS:
        if pattern.fullmatch(name):
            return tier
    if split_part(name):
        return "part"
    raise DeclarationError(f"table name {name!r} does not follow DataJoint's naming of any tier")


def class_name_of(name: str) -> str:
    """The class name for a table name; for a part, the part's own name ('Detail')."""
    tier = tier_of(name)
    if tier == "hidden":
        raise DeclarationError(f"hidden table {name!r} has no class")
    if tier == "part":
        return to_camel_case(split_part(name)[1])  # type: ignore[index]
    return to_camel_case(name)
