"""The backend contract: everything dialect-specific lives behind this class.

In the ibis spirit, a backend is a small set of abstract methods (connect, DDL from a `TableSpec`,
introspection, insert statements, error translation) plus capabilities declared as data. The layers
above it build SQL only from `quote`, `table_ref`, `PH` placeholders and the statement builders here,
so no dialect-specific SQL leaks upwards. Values always travel as bound parameters.
"""

from __future__ import annotations

import abc
import dataclasses
import functools
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..errors import DataJointError
from ..heading import Attribute, Heading

if TYPE_CHECKING:
    from ..declare import TableSpec

# The engine writes this marker wherever a bound parameter goes; `finalize` turns it into the
# driver's paramstyle. A NUL byte can never occur in user SQL (restriction text is checked for it).
PH = "\x00?\x00"


@dataclasses.dataclass(frozen=True)
class ForeignKeyEdge:
    """A foreign key as introspected: child (schema, table) references parent (schema, table)."""

    child: tuple[str, str]
    parent: tuple[str, str]
    attr_map: dict[str, str]  # child attribute -> parent attribute


@dataclasses.dataclass(frozen=True)
class TableInfo:
    """What introspection knows of a declared table."""

    heading: Heading
    comment: str


class Backend(abc.ABC):
    """One SQL dialect and driver."""

    name: str = ""
    #: operations the dialect lacks, as data (checked by callers that need them)
    lacks: frozenset[str] = frozenset()

    def __init__(self, settings: Mapping[str, Any]) -> None:
        self.settings = dict(settings)
        # every query quotes the same few names again: remember them (per backend instance)
        self.quote = functools.lru_cache(maxsize=4096)(self.quote)  # type: ignore[method-assign]

    def __repr__(self) -> str:  # never the settings: they hold the password
        return f"<{type(self).__name__} {self.describe_target()}>"

    # -- connecting ---------------------------------------------------------------------------
    @abc.abstractmethod
    def connect(self) -> Any:
        """Open a new DB-API connection in autocommit mode (transactions are explicit)."""

    @abc.abstractmethod
    def describe_target(self) -> str:
        """Where this backend connects, for messages (host and user; never the password)."""

    @abc.abstractmethod
    def is_connected(self, raw: Any) -> bool:
        """Whether the raw connection is still usable."""

    # -- SQL text -------------------------------------------------------------------------------
    @abc.abstractmethod
    def quote(self, identifier: str) -> str: ...

    @abc.abstractmethod
    def table_ref(self, schema: str, table: str) -> str:
        """The quoted name of a table in a schema."""

    @abc.abstractmethod
    def finalize(self, sql: str) -> str:
        """Turn the engine's SQL (with `PH` markers) into the driver's paramstyle."""

    #: integers below this bind as they are (to_db leaves them alone)
    native_ints: int = 2**64
    begin_statement = "START TRANSACTION"
    lock_suffix = ""  # appended to SELECTs that must lock rows inside a transaction
    read_committed_statement: str | None = None  # run before BEGIN where each read must see the latest commits
    now_sql = "CURRENT_TIMESTAMP"  # the server's clock, as a timestamp column records it
    session_id_sql = "0"  # an id of this session the server can report (MySQL: CONNECTION_ID())
    current_user_sql: str | None = None  # the database user, when the server knows one
    update_counts_matched_rows = True  # False where UPDATE reports only rows it actually changed

    def older_than(self, column: str, seconds: int) -> str:
        """SQL condition: the timestamp `column` is at least `seconds` old (by the server's clock)."""
        raise NotImplementedError

    def limit_clause(self, limit: int | None, offset: int | None) -> str:
        if limit is None and not offset:
            return ""
        text = f" LIMIT {int(limit) if limit is not None else 2**62}"
        return text + f" OFFSET {int(offset)}" if offset else text

    @abc.abstractmethod
    def insert_statement(
        self, table: str, columns: Sequence[str], mode: str, primary_key: Sequence[str], source: str | None = None
    ) -> str:
        """INSERT of `columns`, one row of placeholders or the rows of the SELECT `source`; mode is
        'error', 'skip' (ignore duplicate keys only) or 'replace' (update the existing row in place)."""

    # -- schemas ------------------------------------------------------------------------------
    @abc.abstractmethod
    def create_schema(self, cursor: Any, schema: str) -> None: ...

    @abc.abstractmethod
    def drop_schema(self, cursor: Any, schema: str) -> None: ...

    @abc.abstractmethod
    def list_schemas(self, cursor: Any) -> list[str]: ...

    @abc.abstractmethod
    def list_tables(self, cursor: Any, schema: str) -> list[str]: ...

    # -- tables -------------------------------------------------------------------------------
    @abc.abstractmethod
    def create_table(self, cursor: Any, schema: str, spec: TableSpec) -> None:
        """Declare a table (one atomic statement, or several inside the caller's transaction)."""

    @abc.abstractmethod
    def drop_table(self, cursor: Any, schema: str, table: str) -> None: ...

    @abc.abstractmethod
    def table_info(self, cursor: Any, schema: str, table: str) -> TableInfo | None:
        """Introspect a table's heading and comment; None when it does not exist."""

    @abc.abstractmethod
    def indexes(self, cursor: Any, schema: str, table: str) -> list[tuple[tuple[str, ...], bool]]:
        """The secondary indexes of a table as (attributes, unique), in declaration order; indexes
        the backend made by itself for foreign keys are left out where it can tell them apart."""

    @abc.abstractmethod
    def foreign_keys(self, cursor: Any) -> list[ForeignKeyEdge]:
        """Every foreign key the server knows of (across schemas)."""

    # -- values -------------------------------------------------------------------------------
    def to_db(self, attribute: Attribute, value: Any) -> Any:
        """Adapt an already-encoded Python value to what the driver binds (dialect part only)."""
        return value

    def from_db(self, attribute: Attribute, value: Any) -> Any:
        """Adapt a value as the driver returns it to the engine's Python type (dialect part only)."""
        return value

    # -- errors -------------------------------------------------------------------------------
    @abc.abstractmethod
    def translate_error(self, error: Exception, sql: str) -> DataJointError | None:
        """Map a driver exception to the engine's error family (None: not a driver error)."""

    @abc.abstractmethod
    def is_lost_connection(self, error: Exception) -> bool: ...


def parse_literal(text: str | None) -> Any:
    """Turn a declared default (an SQL literal) into a Python value, so each dialect can render it
    its own way. CURRENT_TIMESTAMP comes back as the `CURRENT_TIMESTAMP` marker."""
    if text is None:
        return NO_DEFAULT
    stripped = text.strip()
    lowered = stripped.lower()
    if lowered == "null":
        return None
    if lowered in ("current_timestamp", "current_timestamp()", "now()"):
        return CURRENT_TIMESTAMP
    if lowered in ("true", "false"):
        return 1 if lowered == "true" else 0
    if len(stripped) >= 2 and stripped[0] == stripped[-1] and stripped[0] in "'\"":
        quote, body, out, i = stripped[0], stripped[1:-1], [], 0
        while i < len(body):
            char = body[i]
            if char == "\\" and i + 1 < len(body):
                out.append(body[i + 1])
                i += 2
            elif char == quote and i + 1 < len(body) and body[i + 1] == quote:
                out.append(quote)
                i += 2
            else:
                out.append(char)
                i += 1
        return "".join(out)
    try:
        return int(stripped)
    except ValueError:
        pass
    try:
        return float(stripped)
    except ValueError:
        raise DataJointError(f"cannot interpret default value {text!r}") from None


class _Marker:
    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


NO_DEFAULT = _Marker("NO_DEFAULT")
CURRENT_TIMESTAMP = _Marker("CURRENT_TIMESTAMP")


def string_literal(value: str, backslash_escapes: bool) -> str:
    """Quote a string for DDL (where parameters cannot be bound)."""
    if "\x00" in value:
        raise DataJointError("a NUL character cannot appear in a comment or default value")
    if backslash_escapes:
        value = value.replace("\\", "\\\\")
    return "'" + value.replace("'", "''") + "'"
