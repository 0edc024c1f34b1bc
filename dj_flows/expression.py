"""The query algebra: restriction (&, -), join (*), projection, aggregation, union, and fetching.

An expression is a SELECT in parts: a FROM clause (a table, a join of sources, or subqueries), the
WHERE conditions, the output heading (plain, renamed or computed attributes) and an optional GROUP
BY. Operators return new expressions; an operand is wrapped as a subquery only when its parts could
not be merged correctly (computed or hidden columns, grouping). Joins use `JOIN ... USING`, so
conditions may name any attribute unqualified. Nothing runs until the expression is fetched.
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
import re
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from .backends import PH
from .condition import (
    FALSE,
    TRUE,
    AndList,
    Condition,
    Not,
    Permissive,
    check_join_compatibility,
    make_condition,
)
from .errors import DataJointError, MissingAttributeError, QueryError
from .heading import Attribute, Heading, TypeInfo

if TYPE_CHECKING:
    from .connection import Connection

_aliases = itertools.count(1)
IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]*$", re.I)
ORDER_ITEM = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(ASC|DESC)?\s*$", re.I)
COMPUTED = TypeInfo("computed", "expression", "")
TABLE_REF = re.compile(r'`([^`]+)`\.`([^`]+)`|"([^"]+\.[^"]+)"')  # MySQL `db`.`t`, SQLite "db.t"


def _alias() -> str:
    return f"$q{next(_aliases)}"


class QueryExpression:
    """A lazily evaluated query."""

    _connection: Connection | None = None
    _heading: Heading | None = None
    _from: str = ""
    _from_params: tuple = ()
    _sources: int = 1  # number of joined sources in _from
    _source_columns: frozenset[str] = frozenset()
    _where: tuple[Condition, ...] = ()
    _group_by: tuple[str, ...] = ()

    # -- construction -------------------------------------------------------------------------
    @classmethod
    def _make(
        cls,
        connection: Connection,
        heading: Heading,
        from_clause: str,
        from_params: tuple = (),
        *,
        sources: int = 1,
        source_columns: frozenset[str] | None = None,
        where: tuple[Condition, ...] = (),
        group_by: tuple[str, ...] = (),
    ) -> QueryExpression:
        expression = QueryExpression.__new__(QueryExpression)
        expression._connection = connection
        expression._heading = heading
        expression._from = from_clause
        expression._from_params = from_params
        expression._sources = sources
        expression._source_columns = source_columns if source_columns is not None else frozenset(heading.names)
        expression._where = where
        expression._group_by = group_by
        return expression

    def _copy(self, **changes: Any) -> QueryExpression:
        if set(changes) <= {"_where"}:  # a restriction keeps the class: restricted tables stay tables
            clone = copy.copy(self)
            clone.__dict__.update(changes)
            return clone
        clone = QueryExpression._make(
            self.connection,
            self.heading,
            self._from_clause(),
            self._from_parameters(),
            sources=self._sources,
            source_columns=self._source_columns_(),
            where=self._where,
            group_by=self._group_by,
        )
        for key, value in changes.items():
            setattr(clone, key, value)
        return clone

    # Tables compute these lazily; plain expressions store them.
    def _from_clause(self) -> str:
        return self._from

    def _from_parameters(self) -> tuple:
        return self._from_params

    def _source_columns_(self) -> frozenset[str]:
        return self._source_columns

    @property
    def connection(self) -> Connection:
        if self._connection is None:
            raise DataJointError(f"{type(self).__name__} is not attached to a schema/connection")
        return self._connection

    @property
    def heading(self) -> Heading:
        if self._heading is None:
            raise DataJointError(f"{type(self).__name__} has no heading")
        return self._heading

    @property
    def primary_key(self) -> list[str]:
        return self.heading.primary_key

    @property
    def restriction(self) -> AndList:
        return AndList(self._where)

    # -- SQL ----------------------------------------------------------------------------------
    def _quote(self, name: str) -> str:
        return self.connection.backend.quote(name)

    def _select_item(self, attribute: Attribute) -> str:
        if attribute.sql_expression is None:
            return self._quote(attribute.name)
        return f"{attribute.sql_expression} AS {self._quote(attribute.name)}"

    def _where_sql(self) -> tuple[str, tuple]:
        conditions = [c for c in self._where if c is not TRUE]
        if not conditions:
            return "", ()
        if any(c is FALSE for c in conditions):
            return " WHERE 1=0", ()
        return " WHERE " + " AND ".join(f"({c.sql})" for c in conditions), tuple(
            p for c in conditions for p in c.params
        )

    def make_sql(
        self,
        attributes: Sequence[str] | None = None,
        *,
        order_by: Sequence[str] | None = None,
        limit: int | None = None,
        offset: int | None = None,
        distinct: bool = False,
        for_update: bool = False,
    ) -> tuple[str, tuple]:
        """The SELECT for this expression (optionally only some attributes), with its parameters."""
        if attributes is None:
            items = [self._select_item(a) for a in self.heading]
        elif not attributes:
            items = ["1"]
        else:
            items = [self._select_item(self.heading[name]) for name in attributes]
        where, where_params = self._where_sql()
        sql = f"SELECT {'DISTINCT ' if distinct and not self._group_by else ''}{', '.join(items)} FROM {self._from_clause()}{where}"
        if self._group_by:
            sql += " GROUP BY " + ", ".join(self._quote(n) for n in self._group_by)
        if order_by:
            sql += " ORDER BY " + ", ".join(self._order_items(order_by))
        sql += self.connection.backend.limit_clause(limit, offset)
        if for_update:
            sql += self.connection.backend.lock_suffix
        return sql, self._from_parameters() + where_params

    def _order_items(self, order_by: Sequence[str]) -> list[str]:
        items = []
        for item in order_by:
            if item == "KEY":
                items.extend(self._quote(k) for k in self.primary_key)
                continue
            if item in ("KEY DESC", "KEY ASC"):
                direction = item.split()[1]
                items.extend(f"{self._quote(k)} {direction}" for k in self.primary_key)
                continue
            match = ORDER_ITEM.match(item)
            if match and match.group(1) in self.heading:
                items.append(self._quote(match.group(1)) + (f" {match.group(2).upper()}" if match.group(2) else ""))
            else:
                if "\x00" in item or ";" in item:
                    raise QueryError(f"invalid order_by item {item!r}")
                items.append(item)  # SQL, as DataJoint allows (e.g. 'rand()')
        return items

    def _execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        """Run a statement of this query; a refused query names the tables it reads."""
        try:
            return self.connection.query(sql, params)
        except QueryError as error:
            raise QueryError(f"query on {self._source_names()}: {error}") from None

    def _source_names(self) -> str:
        names = dict.fromkeys(
            f"{m[0]}.{m[1]}" if m[0] else m[2] for m in TABLE_REF.findall(self._from_clause())
        )
        return ", ".join(names) or "a derived table"

    @property
    def sql(self) -> str:
        return self.make_sql()[0].replace(PH, "?")

    def _needs_wrap(self) -> bool:
        return bool(self._group_by) or self.heading.has_computed

    def _is_hiding(self) -> bool:
        return self._source_columns_() != frozenset(self.heading.names)

    def _as_subquery(self) -> QueryExpression:
        """This expression as a single derived-table source with plain columns."""
        sql, params = self.make_sql()
        heading = Heading([_plain(a) for a in self.heading], self.heading.table_comment)
        return QueryExpression._make(self.connection, heading, f"({sql}) AS {self._quote(_alias())}", params)

    # -- restriction ----------------------------------------------------------------------------
    def restrict(self, restriction: Any) -> QueryExpression:
        base = self._as_subquery() if self._needs_wrap() else self
        condition = make_condition(base, restriction)
        if condition is TRUE:
            return base if base is not self else self._copy()
        return base._copy(_where=base._where + (condition,))

    def __and__(self, restriction: Any) -> QueryExpression:
        return self.restrict(restriction)

    def __sub__(self, restriction: Any) -> QueryExpression:
        return self.restrict(Not(restriction))

    def __xor__(self, restriction: Any) -> QueryExpression:
        """DataJoint's permissive restriction: like `&`, without the join-compatibility check."""
        if isinstance(restriction, Not):
            return self.restrict(Not(Permissive(restriction.restriction)))
        return self.restrict(Permissive(restriction))

    def __neg__(self) -> Not:
        """`-query` is the negated restriction: `a & -b` equals `a - b`."""
        return Not(self)

    # -- projection -----------------------------------------------------------------------------
    def proj(self, *attributes: str, **named: str) -> QueryExpression:
        """Keep the primary key plus the named attributes; rename (new='old') or compute (new='expr')."""
        heading = self.heading
        attributes = tuple("..." if a is Ellipsis else a for a in attributes)
        for name in attributes:
            if not isinstance(name, str):
                raise QueryError(f"proj takes attribute names (strings or ...), got {name!r}")
        excluded = {a[1:].strip() for a in attributes if a.startswith("-")}
        wanted = [a for a in attributes if not a.startswith("-")]
        for name in excluded:
            if name not in heading:
                raise MissingAttributeError(f"cannot exclude {name!r}: not an attribute ({', '.join(heading.names)})")
            if heading[name].in_key:
                raise QueryError(f"cannot exclude primary-key attribute {name!r}")
        if "..." in wanted or excluded:
            keep = [n for n in heading.names if n not in excluded]
        else:
            for name in wanted:
                if name not in heading:
                    raise MissingAttributeError(f"cannot project {name!r}: not an attribute ({', '.join(heading.names)})")
            keep = heading.primary_key + [n for n in heading.secondary_attributes if n in wanted]
        renamed_sources = {old for old in named.values() if isinstance(old, str) and old in heading}
        base = self._as_subquery() if (self._needs_wrap() and named) else self
        # a renamed attribute appears only under its new name, unless also asked for by name
        new_attributes = [base.heading[n] for n in keep if n not in renamed_sources or n in wanted]
        for new, old in named.items():
            if not isinstance(new, str) or not IDENTIFIER.match(new):
                raise QueryError(f"invalid attribute name {new!r} in proj")
            if not isinstance(old, str):
                raise QueryError(f"proj({new}=...) needs a string: an attribute name or an SQL expression")
            if "\x00" in old:
                raise QueryError(f"proj({new}=...) contains a NUL character")
            if old in heading:
                source = base.heading[old]
                expression = source.sql_expression or self._quote(old)
                new_attributes = [a for a in new_attributes if a.name != new]
                new_attributes.append(dataclasses.replace(source, name=new, sql_expression=expression))
            else:
                new_attributes = [a for a in new_attributes if a.name != new]
                new_attributes.append(Attribute(new, COMPUTED, False, True, None, "", f"({old})"))
        names = [a.name for a in new_attributes]
        if len(set(names)) != len(names):
            raise QueryError(f"proj produces duplicate attribute names: {names}")
        ordered = [a for a in new_attributes if a.in_key] + [a for a in new_attributes if not a.in_key]
        return base._copy(_heading=Heading(ordered, heading.table_comment))

    # -- join -----------------------------------------------------------------------------------
    def _joinable(self, force_single: bool = False) -> QueryExpression:
        if self._needs_wrap() or self._is_hiding() or (force_single and (self._sources > 1 or self._where)):
            return self._as_subquery()
        return self

    def join(self, other: Any, left: bool = False, semantic_check: bool = True) -> QueryExpression:
        other = _as_expression(other)
        if semantic_check:
            check_join_compatibility(self, other)
        a = self._joinable()
        b = other._joinable(force_single=True)
        if a._sources > 1 and left and a._where:
            a = a._as_subquery()
        shared = [n for n in a.heading.names if n in b.heading]
        keyword = "LEFT JOIN" if left else "JOIN"
        if shared:
            using = ", ".join(self._quote(n) for n in shared)
            clause = f"{a._from_clause()} {keyword} {b._from_clause()} USING ({using})"
        elif left:
            clause = f"{a._from_clause()} LEFT JOIN {b._from_clause()} ON 1=1"
        else:
            clause = f"{a._from_clause()} CROSS JOIN {b._from_clause()}"
        primary = set(a.heading.primary_key) | set(b.heading.primary_key)
        merged: list[Attribute] = []
        for attribute in list(a.heading) + [x for x in b.heading if x.name not in a.heading]:
            in_key = attribute.name in primary
            nullable = attribute.nullable or (left and attribute.name not in a.heading)
            merged.append(dataclasses.replace(attribute, in_key=in_key, nullable=nullable, sql_expression=None))
        ordered = [x for x in merged if x.in_key] + [x for x in merged if not x.in_key]
        return QueryExpression._make(
            self.connection,
            Heading(ordered),
            clause,
            a._from_parameters() + b._from_parameters(),
            sources=a._sources + b._sources,
            source_columns=frozenset(x.name for x in ordered),
            where=a._where + b._where,
        )

    def __mul__(self, other: Any) -> QueryExpression:
        return self.join(other)

    def __matmul__(self, other: Any) -> QueryExpression:
        return self.join(other, semantic_check=False)

    # -- aggregation ----------------------------------------------------------------------------
    def aggr(self, group: Any, *attributes: str, keep_all_rows: bool = False, **named: str) -> QueryExpression:
        """For each row of self, aggregate the matching rows of `group` into computed attributes."""
        group = _as_expression(group)
        base = self.proj(*attributes) if attributes else self.proj()
        check_join_compatibility(base, group)
        base = base._joinable()
        grouped = group._joinable(force_single=True)
        shared = [n for n in base.heading.names if n in grouped.heading]
        if not shared:
            raise QueryError("aggr needs attributes shared between the query and the group")
        using = ", ".join(self._quote(n) for n in shared)
        keyword = "LEFT JOIN" if keep_all_rows else "JOIN"
        clause = f"{base._from_clause()} {keyword} {grouped._from_clause()} USING ({using})"
        computed = []
        for new, expression in named.items():
            if not isinstance(new, str) or not IDENTIFIER.match(new) or new in base.heading:
                raise QueryError(f"invalid or duplicate aggregate attribute name {new!r}")
            if not isinstance(expression, str) or "\x00" in expression:
                raise QueryError(f"aggr({new}=...) needs an SQL expression string")
            computed.append(Attribute(new, COMPUTED, False, True, None, "", f"({expression})"))
        heading = Heading(list(base.heading) + computed, self.heading.table_comment)
        where = base._where + (grouped._where if not keep_all_rows else ())
        return QueryExpression._make(
            self.connection,
            heading,
            clause,
            base._from_parameters() + grouped._from_parameters(),
            sources=2,
            source_columns=frozenset(heading.names),
            where=where,
            group_by=tuple(base.primary_key),
        )

    # -- union ----------------------------------------------------------------------------------
    def __add__(self, other: Any) -> QueryExpression:
        other = _as_expression(other)
        if set(self.primary_key) != set(other.primary_key):
            raise QueryError("union requires both operands to have the same primary key")
        if set(self.heading.names) != set(other.heading.names):
            raise QueryError("union requires both operands to have the same attributes")
        names = self.heading.names
        left_sql, left_params = self.make_sql(names)
        right_sql, right_params = other.make_sql(names)
        heading = Heading([_plain(a) for a in self.heading])
        clause = f"(SELECT * FROM ({left_sql}) AS {self._quote(_alias())} UNION SELECT * FROM ({right_sql}) AS {self._quote(_alias())}) AS {self._quote(_alias())}"
        return QueryExpression._make(self.connection, heading, clause, left_params + right_params)

    # -- counting and membership ----------------------------------------------------------------
    def __len__(self) -> int:
        if self._group_by:
            sql, params = self.make_sql(self.primary_key)
            sql = f"SELECT count(*) FROM ({sql}) AS {self._quote(_alias())}"
        else:
            where, where_params = self._where_sql()
            sql, params = f"SELECT count(*) FROM {self._from_clause()}{where}", self._from_parameters() + where_params
        return int(self._execute(sql, params).fetchone()[0])

    def __bool__(self) -> bool:
        sql, params = self.make_sql([], limit=1)
        return self._execute(sql, params).fetchone() is not None

    def __contains__(self, item: Any) -> bool:
        return bool(self & item)

    def __iter__(self) -> Iterator[dict]:
        return iter(self.fetch(as_dict=True))

    # -- fetching -------------------------------------------------------------------------------
    def fetch(self, *attrs: str, **kwargs: Any) -> Any:
        from .fetch import fetch

        return fetch(self, *attrs, **kwargs)

    def fetch1(self, *attrs: str, **kwargs: Any) -> Any:
        from .fetch import fetch1

        return fetch1(self, *attrs, **kwargs)

    def head(self, limit: int = 25, **kwargs: Any) -> Any:
        return self.fetch(order_by="KEY", limit=limit, **kwargs)

    def tail(self, limit: int = 25, **kwargs: Any) -> Any:
        rows = self.fetch(order_by="KEY DESC", limit=limit, **kwargs)
        return rows[::-1]

    def to_dicts(self) -> list[dict]:
        return self.fetch(as_dict=True)

    def keys(self, **kwargs: Any) -> list[dict]:
        return self.fetch("KEY", **kwargs)

    # -- export (dj_flows/export.py) ------------------------------------------------------------
    def to_arrow(self, **kwargs: Any) -> Any:
        """The rows as a pyarrow Table, read in bounded record batches (see dj_flows.export)."""
        from .export import to_arrow

        return to_arrow(self, **kwargs)

    def to_pandas(self, **kwargs: Any) -> Any:
        """The rows as a DataFrame; arrays keep their dtype and shape (see dj_flows.export)."""
        from .export import to_pandas

        return to_pandas(self, **kwargs)

    def to_batches(self, **kwargs: Any) -> Any:
        """An iterator of pyarrow RecordBatches in primary-key order (see dj_flows.export)."""
        from .export import to_batches

        return to_batches(self, **kwargs)

    # -- display --------------------------------------------------------------------------------
    def __repr__(self) -> str:
        from .preview import preview

        try:
            return preview(self)
        except DataJointError as error:
            return f"<{type(self).__name__}: {error}>"

    def _repr_html_(self) -> str:
        from .preview import preview_html

        return preview_html(self)

    def preview(self, limit: int | None = None, width: int | None = None) -> str:
        from .preview import preview

        return preview(self, limit, width)



def _plain(attribute: Attribute) -> Attribute:
    if attribute.sql_expression is None:
        return attribute
    return dataclasses.replace(attribute, sql_expression=None)


def _as_expression(value: Any) -> QueryExpression:
    if isinstance(value, type) and issubclass(value, QueryExpression):
        value = value()
    if not isinstance(value, QueryExpression):
        raise QueryError(f"expected a query expression or table, got {type(value).__name__}")
    return value


__all__ = ["QueryExpression", "AndList", "Not"]
