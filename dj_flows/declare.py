"""Definition text -> table spec: DataJoint 0.14's declaration grammar, parsed without a database.

A definition is a list of lines: an optional `# table comment` first, primary-key lines, a `---`
separator, then secondary lines. Each line is an attribute (`name [= default] : type [# comment]`),
a foreign key (`-> [nullable, unique] Parent[.proj(new='old')]`), an index (`[unique] index(a, b)`)
or a comment. The result, `TableSpec`, is what a backend turns into DDL, so everything in it is
validated here: names, types (via `heading.parse_type`), and defaults, which are normalised to safe
SQL literals. Foreign-key references are read with `ast` (never evaluated) and resolved through the
caller's `lookup`, which keeps this module free of the schema and table layers.

Deliberate differences from DataJoint 0.14 (which passes some mistakes on to MySQL or ignores them):
a repeated attribute name is an error (DataJoint silently keeps the first), an inherited attribute
that clashes in type with an existing one is an error, defaults are checked against the type, an
attribute named `index...` is not mistaken for an index line, and a second separator is an error.
"""

from __future__ import annotations

import ast
import dataclasses
import datetime
import decimal
import math
import re
from collections.abc import Callable

from .errors import DeclarationError
from .heading import Attribute, Heading, TypeInfo, parse_type

MAX_NAME_LENGTH = 64
MAX_TABLE_COMMENT = 2048
MAX_COLUMN_COMMENT = 1024
MAX_REFERENCE_LENGTH = 1000

ATTRIBUTE_NAME = re.compile(r"[a-z][a-z0-9_]*")
SEPARATOR = re.compile(r"(?:-{3,}|_{3,})\s*(?:#.*)?")
INDEX_LINE = re.compile(r"(?P<unique>unique\s+)?index\s*\((?P<args>[^)]*)\)\s*(?:#.*)?", re.I)
FOREIGN_KEY_LINE = re.compile(r"->\s*(?:\[(?P<options>[^\]]*)\])?\s*(?P<ref>.*)", re.S)
FOREIGN_KEY_OPTIONS = ("nullable", "unique")

_QUOTED = re.compile(r"""'((?:[^']|'')*)'|"((?:[^"]|"")*)\"""", re.S)
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_INTEGER = re.compile(r"[+-]?\d+")
_BARE_WORD = re.compile(r"[A-Za-z0-9_.+\-]+")
_CURRENT_TIMESTAMP = re.compile(r"current_timestamp(?:\s*\(\s*(?P<fsp>\d)\s*\))?", re.I)
_DATE = r"\d{4}-\d{2}-\d{2}"
_TEMPORAL_VALUE = {
    "date": re.compile(_DATE),
    "datetime": re.compile(rf"{_DATE}(?:[ T]\d{{2}}:\d{{2}}(?::\d{{2}}(?:\.\d{{1,6}})?)?)?"),
    "timestamp": re.compile(rf"{_DATE}(?:[ T]\d{{2}}:\d{{2}}(?::\d{{2}}(?:\.\d{{1,6}})?)?)?"),
    "time": re.compile(r"-?\d{1,3}:\d{2}(?::\d{2}(?:\.\d{1,6})?)?"),
}
_NO_KEY_KINDS = ("blob", "attach", "json", "filepath")
_NULL_ONLY_KINDS = ("blob", "attach", "json", "filepath", "uuid")


@dataclasses.dataclass(frozen=True)
class ParentRef:
    """What the schema layer's lookup returns for a name used after '->'."""

    schema: str  # database name of the parent
    table: str  # table name inside it, e.g. '#web_image', 'original_file', '__slide'
    heading: Heading  # the parent's heading (primary key attributes in order)


@dataclasses.dataclass(frozen=True)
class ForeignKeySpec:
    parent_schema: str
    parent_table: str
    attr_map: dict[str, str]  # child attribute -> parent attribute, in the parent's key order
    in_key: bool  # declared above '---'
    nullable: bool  # '-> [nullable] Parent'
    unique: bool  # '-> [unique] Parent'; its unique index is also listed in TableSpec.indexes


@dataclasses.dataclass(frozen=True)
class IndexSpec:
    attributes: tuple[str, ...]
    unique: bool


@dataclasses.dataclass(frozen=True)
class TableSpec:
    """A parsed definition; backends create the table from `attributes`, `foreign_keys`, `indexes`.

    `indexes` already contains the unique index of every `-> [unique]` foreign key, so a backend
    creates exactly the indexes listed here (plus the primary key).
    """

    table: str  # the table name given by the caller (for messages)
    comment: str
    attributes: tuple[Attribute, ...]  # primary key first, each section in declaration order
    foreign_keys: tuple[ForeignKeySpec, ...]
    indexes: tuple[IndexSpec, ...]

    @property
    def heading(self) -> Heading:
        return Heading(self.attributes, table_comment=self.comment)

    @property
    def primary_key(self) -> list[str]:
        return [a.name for a in self.attributes if a.in_key]


Lookup = Callable[[str], ParentRef]


def parse_definition(definition: str, table: str, lookup: Lookup) -> TableSpec:
    """Parse a DataJoint 0.14 definition; every problem raises DeclarationError naming the line."""
    if not isinstance(definition, str):
        raise DeclarationError(
            f"table {table!r}: the definition must be a string, not {type(definition).__name__}"
        )
    parser = _Parser(table, lookup)
    lines = definition.splitlines()
    first = next((i for i, line in enumerate(lines) if line.strip()), None)
    if first is None:
        raise DeclarationError(f"table {table!r}: the definition is empty")
    for number, raw in enumerate(lines, start=1):
        line = raw.strip()
        if not line:
            continue
        try:
            if number == first + 1 and line.startswith("#"):
                parser.table_comment(line)
            else:
                parser.line(line, number)
        except DeclarationError as err:
            raise DeclarationError(f'table {table!r} line {number} "{line}": {err}') from err
    return parser.finish()


class _Parser:
    """The state of one definition being read line by line."""

    def __init__(self, table: str, lookup: Lookup) -> None:
        self.table = table
        self.lookup = lookup
        self.comment = ""
        self.in_key = True
        self.separator_line: tuple[int, str] | None = None
        self.attributes: dict[str, Attribute] = {}
        self.foreign_keys: list[ForeignKeySpec] = []
        self.indexes: list[tuple[IndexSpec, int, str]] = []  # with the line that declared each

    # -- one line -------------------------------------------------------------------------------

    def table_comment(self, line: str) -> None:
        comment = line[1:].strip()
        if comment.startswith(":"):
            raise DeclarationError('the table comment must not start with ":"')
        if len(comment) > MAX_TABLE_COMMENT:
            raise DeclarationError(
                f"the table comment is longer than {MAX_TABLE_COMMENT} characters"
            )
        self.comment = comment

    def line(self, line: str, number: int) -> None:
        if line.startswith("#"):
            return
        if line.startswith(("---", "___")):
            if not SEPARATOR.fullmatch(line):
                raise DeclarationError(
                    "a separator line holds only dashes and an optional # comment"
                )
            if not self.in_key:
                raise DeclarationError("a second '---' separator")
            self.in_key = False
            self.separator_line = (number, line)
        elif INDEX_LINE.fullmatch(line):
            self.index(line, number)
        elif re.match(r"(unique\s+)?index\s*\(", line, re.I):
            raise DeclarationError("malformed index: expected [unique] index(attribute, ...)")
        elif _looks_like_foreign_key(line):
            self.foreign_key(line)
        else:
            self.add(parse_attribute_line(line, self.in_key))

    def add(self, attribute: Attribute) -> None:
        if attribute.name in self.attributes:
            raise DeclarationError(f"attribute {attribute.name!r} is declared twice")
        if attribute.autoincrement:
            if not attribute.in_key:
                raise DeclarationError(
                    f"auto_increment attribute {attribute.name!r} must be in the primary key"
                )
            other = next((a.name for a in self.attributes.values() if a.autoincrement), None)
            if other:
                raise DeclarationError(
                    f"attribute {attribute.name!r}: only one auto_increment attribute is allowed "
                    f"({other!r} already is)"
                )
        self.attributes[attribute.name] = attribute

    def foreign_key(self, line: str) -> None:
        match = FOREIGN_KEY_LINE.fullmatch(line)
        if not match:
            raise DeclarationError("a foreign key line starts with '->'")
        nullable, unique = _foreign_key_options(match.group("options"))
        if nullable and self.in_key:
            raise DeclarationError(
                "a primary-key foreign key cannot be [nullable]; move it below '---'"
            )
        name, renames = parse_reference(match.group("ref"))
        try:
            parent = self.lookup(name)
        except DeclarationError as err:
            raise DeclarationError(f"cannot resolve foreign key reference {name!r}: {err}") from err
        except Exception as err:  # the lookup is the caller's: any failure means "unknown name"
            raise DeclarationError(
                f"cannot resolve foreign key reference {name!r}: {type(err).__name__}: {err}"
            ) from err
        if not isinstance(parent, ParentRef):
            raise DeclarationError(
                f"lookup of {name!r} returned {type(parent).__name__}, not a ParentRef"
            )
        attr_map = _apply_renames(name, parent.heading, renames)
        for child_name, parent_name in attr_map.items():
            self._inherit(name, child_name, parent.heading[parent_name], nullable)
        self.foreign_keys.append(
            ForeignKeySpec(parent.schema, parent.table, attr_map, self.in_key, nullable, unique)
        )
        if unique:
            self.indexes.append((IndexSpec(tuple(attr_map), True), 0, line))

    def _inherit(self, parent_name: str, name: str, source: Attribute, nullable: bool) -> None:
        """Copy a parent's key attribute, or merge it with an existing one of the same type."""
        type_ = dataclasses.replace(source.type, autoincrement=False)
        existing = self.attributes.get(name)
        if existing is not None:
            if dataclasses.replace(existing.type, autoincrement=False) != type_:
                raise DeclarationError(
                    f"attribute {name!r} from {parent_name} has type {type_.declared!r} but is "
                    f"already declared as {existing.type.declared!r}"
                )
            return
        self.attributes[name] = Attribute(
            name=name,
            type=type_,
            in_key=self.in_key,
            nullable=nullable,
            default="null" if nullable else None,
            comment=source.comment,
        )

    def index(self, line: str, number: int) -> None:
        match = INDEX_LINE.fullmatch(line)
        assert match is not None
        names = [n.strip() for n in match.group("args").split(",")]
        if names == [""]:
            raise DeclarationError("an index needs at least one attribute")
        for name in names:
            if not ATTRIBUTE_NAME.fullmatch(name):
                raise DeclarationError(f"invalid attribute name {name!r} in index")
        if len(set(names)) != len(names):
            raise DeclarationError("an attribute appears twice in the index")
        spec = IndexSpec(tuple(names), bool(match.group("unique")))
        self.indexes.append((spec, number, line))

    # -- the whole definition -------------------------------------------------------------------

    def finish(self) -> TableSpec:
        if not any(a.in_key for a in self.attributes.values()):
            where = (
                f' line {self.separator_line[0]} "{self.separator_line[1]}"'
                if self.separator_line
                else ""
            )
            raise DeclarationError(
                f"table {self.table!r}{where}: the table needs at least one primary key attribute"
            )
        indexes: list[IndexSpec] = []
        for spec, number, line in self.indexes:
            missing = [n for n in spec.attributes if n not in self.attributes]
            if missing:
                raise DeclarationError(
                    f'table {self.table!r} line {number} "{line}": index attribute '
                    f"{missing[0]!r} is not declared"
                )
            if spec not in indexes:
                indexes.append(spec)
        return TableSpec(
            table=self.table,
            comment=self.comment,
            attributes=tuple(self.attributes.values()),
            foreign_keys=tuple(self.foreign_keys),
            indexes=tuple(indexes),
        )


def _looks_like_foreign_key(line: str) -> bool:
    """DataJoint's rule: an arrow with no quote or '#' before it."""
    arrow = line.find("->")
    return arrow >= 0 and not any(c in line[:arrow] for c in "\"'#")


def _foreign_key_options(text: str | None) -> tuple[bool, bool]:
    if text is None:
        return False, False
    options = [o.strip().lower() for o in text.split(",")]
    for option in options:
        if option not in FOREIGN_KEY_OPTIONS:
            raise DeclarationError(
                f"invalid foreign key option {option!r} (allowed: {', '.join(FOREIGN_KEY_OPTIONS)})"
            )
    return "nullable" in options, "unique" in options


# -- foreign key references ----------------------------------------------------------------------


def parse_reference(text: str) -> tuple[str, list[dict[str, str]]]:
    """'Parent.proj(new="old")' -> ('Parent', [{'new': 'old'}]); read with ast, never evaluated."""
    source = text.strip()
    if not source:
        raise DeclarationError("the foreign key names no parent table")
    if len(source) > MAX_REFERENCE_LENGTH:
        raise DeclarationError(
            f"the foreign key reference is longer than {MAX_REFERENCE_LENGTH} characters"
        )
    try:
        tree = ast.parse(source, mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError) as err:
        raise DeclarationError(f"cannot parse foreign key reference {source!r}") from err
    renames: list[dict[str, str]] = []
    node = tree.body
    while isinstance(node, ast.Call):
        renames.insert(0, _proj_renames(node, source))
        node = node.func.value  # type: ignore[attr-defined]
    return _dotted_name(node, source), renames


def _proj_renames(call: ast.Call, source: str) -> dict[str, str]:
    if not (isinstance(call.func, ast.Attribute) and call.func.attr == "proj"):
        raise DeclarationError(
            f"unsupported foreign key reference {source!r}: use a table, optionally with .proj(new='old')"
        )
    if call.args:
        raise DeclarationError(
            f"unsupported foreign key reference {source!r}: proj() in a foreign key only renames "
            "key attributes, as new='old'"
        )
    renames: dict[str, str] = {}
    for keyword in call.keywords:
        value = keyword.value
        if keyword.arg is None or not (
            isinstance(value, ast.Constant) and isinstance(value.value, str)
        ):
            raise DeclarationError(
                f"unsupported foreign key reference {source!r}: proj() arguments must be new='old'"
            )
        renames[keyword.arg] = value.value.strip()
    return renames


def _dotted_name(node: ast.expr, source: str) -> str:
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.insert(0, node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        raise DeclarationError(
            f"unsupported foreign key reference {source!r}: use a table, optionally with .proj(new='old')"
        )
    parts.insert(0, node.id)
    return ".".join(parts)


def _apply_renames(name: str, heading: Heading, renames: list[dict[str, str]]) -> dict[str, str]:
    """child attribute -> parent attribute, in the parent's key order, after each proj's renames."""
    if not heading.primary_key:
        raise DeclarationError(f"the referenced table {name!r} has no primary key")
    current = {k: k for k in heading.primary_key}  # name after the projections -> parent attribute
    for rename in renames:
        reverse: dict[str, str] = {}
        for new, old in rename.items():
            if old not in current:
                where = (
                    "is not in its primary key"
                    if old in heading
                    else "is not one of its attributes"
                )
                raise DeclarationError(f"proj of {name!r} renames {old!r}, which {where}")
            if old in reverse:
                raise DeclarationError(f"proj of {name!r} renames {old!r} twice")
            if not ATTRIBUTE_NAME.fullmatch(new) or len(new) > MAX_NAME_LENGTH:
                raise DeclarationError(f"invalid attribute name {new!r} in proj of {name!r}")
            reverse[old] = new
        renamed: dict[str, str] = {}
        for old, parent_attribute in current.items():
            new = reverse.get(old, old)
            if new in renamed:
                raise DeclarationError(
                    f"proj of {name!r} gives two key attributes the name {new!r}"
                )
            renamed[new] = parent_attribute
        current = renamed
    return current


# -- attribute lines ------------------------------------------------------------------------------


def parse_attribute_line(line: str, in_key: bool) -> Attribute:
    """'name [= default] : type [# comment]' -> Attribute (errors name no table; the caller adds it)."""
    colon = _find_unquoted(line, ":")
    if colon < 0:
        raise DeclarationError(
            "expected 'name : type', 'name = default : type', '-> Parent' or an index"
        )
    head, rest = line[:colon], line[colon + 1 :]
    hash_at = _find_unquoted(rest, "#")
    type_text, comment = (rest[:hash_at], rest[hash_at + 1 :]) if hash_at >= 0 else (rest, "")
    name, equals, default_text = head.partition("=")
    name = name.strip()
    if not ATTRIBUTE_NAME.fullmatch(name):
        raise DeclarationError(
            f"invalid attribute name {name!r}: use lowercase letters, digits and '_', starting with a letter"
        )
    if len(name) > MAX_NAME_LENGTH:
        raise DeclarationError(
            f"attribute name {name!r} is longer than {MAX_NAME_LENGTH} characters"
        )
    type_text = type_text.strip()
    if not type_text:
        raise DeclarationError(f"attribute {name!r} has no type")
    try:
        type_ = parse_type(type_text)
    except (ValueError, OverflowError) as err:  # e.g. a length too long to be an int
        raise DeclarationError(f"unsupported attribute type {type_text!r}") from err
    comment = comment.strip()
    if comment.startswith(":"):
        raise DeclarationError(f'the comment of attribute {name!r} must not start with ":"')
    if in_key and type_.kind in _NO_KEY_KINDS:
        raise DeclarationError(
            f"attribute {name!r} of type {type_.declared!r} cannot be in the primary key"
        )
    nullable, default = False, None
    if equals:
        nullable, default = normalise_default(default_text.strip(), type_, name)
        if nullable and in_key:
            raise DeclarationError(f"primary key attribute {name!r} cannot be nullable (= null)")
    attribute = Attribute(
        name=name, type=type_, in_key=in_key, nullable=nullable, default=default, comment=comment
    )
    if len(attribute.mysql_comment) > MAX_COLUMN_COMMENT:
        raise DeclarationError(
            f"the comment of attribute {name!r} is longer than {MAX_COLUMN_COMMENT} characters"
        )
    return attribute


def _find_unquoted(text: str, char: str) -> int:
    """Index of the first `char` outside '...' and "..." (doubled quotes escape), or -1."""
    quote = None
    position = 0
    while position < len(text):
        c = text[position]
        if quote:
            if c == quote:
                if text[position + 1 : position + 2] == quote:
                    position += 1
                else:
                    quote = None
        elif c in "'\"":
            quote = c
        elif c == char:
            return position
        position += 1
    if quote:
        raise DeclarationError(f"unterminated {quote} quote")
    return -1


# -- defaults -------------------------------------------------------------------------------------


def normalise_default(text: str, type_: TypeInfo, name: str) -> tuple[bool, str]:
    """Validate a declared default against its type; return (nullable, safe SQL literal)."""
    if not text:
        raise DeclarationError(f"attribute {name!r} has '=' but no default value")
    if text.lower() == "null":
        return True, "null"
    quoted = _QUOTED.fullmatch(text)
    if quoted:
        value: str | None = (
            quoted.group(1).replace("''", "'")
            if quoted.group(1) is not None
            else quoted.group(2).replace('""', '"')
        )
    elif _BARE_WORD.fullmatch(text) or _CURRENT_TIMESTAMP.fullmatch(text):
        value = None  # a bare token: a number, true/false, CURRENT_TIMESTAMP or an unquoted word
    else:
        raise DeclarationError(f"invalid default {text!r} for attribute {name!r}")
    kind = type_.kind
    bad = f"invalid default {text!r} for attribute {name!r} of type {type_.declared!r}"
    if kind in _NULL_ONLY_KINDS:
        raise DeclarationError(
            f"attribute {name!r} of type {type_.declared!r} can only default to null"
        )
    if kind in ("int", "bool"):
        return False, _integer_default(text if value is None else value, type_, bad)
    if kind in ("float", "decimal"):
        return False, _number_default(text if value is None else value, type_, bad)
    if value is None:
        match = _CURRENT_TIMESTAMP.fullmatch(text)
        if match:
            if kind not in ("datetime", "timestamp"):
                raise DeclarationError(
                    f"CURRENT_TIMESTAMP is only a default for datetime and timestamp, not {type_.declared!r}"
                )
            # stored without '(n)': a backend renders the column's own precision
            return False, "CURRENT_TIMESTAMP"
        value = text  # DataJoint quotes an unquoted word
    if "\\" in value:
        raise DeclarationError(f"{bad}: backslashes are not supported in defaults")
    if kind == "string" and type_.length is not None and len(value) > type_.length:
        raise DeclarationError(f"{bad}: longer than {type_.length} characters")
    if kind == "enum" and value not in type_.enum_values:
        raise DeclarationError(f"{bad}: not one of the enum's values")
    if kind in _TEMPORAL_VALUE and not _valid_temporal(kind, value):
        raise DeclarationError(f"{bad}: not a {kind} value")
    return False, "'" + value.replace("'", "''") + "'"


def _valid_temporal(kind: str, value: str) -> bool:
    if not _TEMPORAL_VALUE[kind].fullmatch(value):
        return False
    if kind == "time":
        return all(int(part) < 60 for part in re.split(r"[:.]", value)[1:3])
    date, _, clock = value.replace("T", " ").partition(" ")
    if date != "0000-00-00":  # MySQL's zero date is a legal default
        try:
            datetime.date.fromisoformat(date)
        except ValueError:
            return False
    if not clock:
        return True
    hour, minute, second = ([int(float(p)) for p in clock.split(":")] + [0, 0, 0])[:3]
    return hour < 24 and minute < 60 and second < 60


def _integer_default(text: str, type_: TypeInfo, bad: str) -> str:
    lowered = text.strip().lower()
    if lowered in ("true", "false"):
        return "1" if lowered == "true" else "0"
    if not _INTEGER.fullmatch(lowered) or len(lowered) > 25:
        raise DeclarationError(f"{bad}: not an integer")
    number = int(lowered)
    low, high = type_.int_range or (None, None)
    if low is not None and high is not None and not low <= number <= high:
        raise DeclarationError(f"{bad}: out of range {low}..{high}")
    return str(number)


def _number_default(text: str, type_: TypeInfo, bad: str) -> str:
    literal = text.strip()
    if not _NUMBER.fullmatch(literal) or len(literal) > 100:
        raise DeclarationError(f"{bad}: not a number")
    number = decimal.Decimal(literal)
    if not math.isfinite(float(number)):
        raise DeclarationError(f"{bad}: out of range")
    if type_.unsigned and number < 0:
        raise DeclarationError(f"{bad}: negative for an unsigned type")
    if type_.kind == "decimal" and type_.precision is not None and number != 0:
        whole_digits = max(number.adjusted() + 1, 0)
        if whole_digits > type_.precision - (type_.scale or 0):
            raise DeclarationError(f"{bad}: too many digits for {type_.declared}")
    return literal.lstrip("+")
