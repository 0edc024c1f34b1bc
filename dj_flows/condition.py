"""Restrictions -> SQL conditions with bound parameters.

DataJoint's restriction forms: a dict (attribute = value, unknown keys ignored), an SQL string, a
list/tuple/set (OR), `AndList` (AND), `Not`, another query (semijoin on shared attributes), a numpy
record, a pandas DataFrame (OR of its rows), True/False. Values never enter the SQL text.
"""

from __future__ import annotations

import collections.abc
import dataclasses
from typing import TYPE_CHECKING, Any

import numpy as np

from .backends import PH
from .errors import DataValueError, QueryError
from .values import encode_value

if TYPE_CHECKING:
    from .expression import QueryExpression


@dataclasses.dataclass(frozen=True)
class Condition:
    """A compiled condition: SQL text with `PH` markers and the values that fill them."""

    sql: str
    params: tuple = ()


TRUE = Condition("1=1")
FALSE = Condition("1=0")


class AndList(list):
    """Restrictions that must all hold: `query & dj.AndList([a, b])`."""


class Not:
    """The negation of a restriction: `query & dj.Not(r)` equals `query - r`."""

    def __init__(self, restriction: Any) -> None:
        self.restriction = restriction

    def __repr__(self) -> str:
        return f"Not({self.restriction!r})"


class Permissive:
    """A restriction by a query that skips the join-compatibility check (`query ^ other`)."""

    def __init__(self, operand: Any) -> None:
        self.operand = operand


def check_join_compatibility(left: QueryExpression, right: QueryExpression) -> None:
    """DataJoint's rule: two queries may be matched only on attributes that are in the primary key
    of at least one of them; sharing a secondary attribute is usually an accident of naming."""
    shared = set(left.heading.secondary_attributes) & set(right.heading.secondary_attributes)
    if shared:
        raise QueryError(
            f"Cannot join query expressions on dependent attribute `{sorted(shared)[0]}` "
            "(rename it with proj, or use @ / ^ to match on it anyway)"
        )


def _join(conditions: list[Condition], operator: str, empty: Condition) -> Condition:
    conditions = [c for c in conditions if c is not (TRUE if operator == "AND" else FALSE)]
    if not conditions:
        return empty
    if any(c is (FALSE if operator == "AND" else TRUE) for c in conditions):
        return FALSE if operator == "AND" else TRUE
    if len(conditions) == 1:
        return conditions[0]
    sql = f" {operator} ".join(f"({c.sql})" for c in conditions)
    return Condition(sql, tuple(p for c in conditions for p in c.params))


def negate(condition: Condition) -> Condition:
    if condition is TRUE:
        return FALSE
    if condition is FALSE:
        return TRUE
    return Condition(f"NOT ({condition.sql})", condition.params)


def make_condition(query: QueryExpression, restriction: Any) -> Condition:
    """Compile `restriction` against the attributes of `query`."""
    from .expression import QueryExpression

    if type(restriction) is dict:  # the common case first: a key
        return _dict_condition(query, restriction)
    if isinstance(restriction, Condition):
        return restriction
    if isinstance(restriction, bool | np.bool_):
        return TRUE if restriction else FALSE
    if isinstance(restriction, str):
        if "\x00" in restriction:
            raise QueryError("a restriction string cannot contain a NUL character")
        if not restriction.strip():
            raise QueryError("empty restriction string")
        return Condition(restriction)
    if isinstance(restriction, Not):
        return negate(make_condition(query, restriction.restriction))
    if isinstance(restriction, Permissive):
        operand = restriction.operand
        if isinstance(operand, type) and issubclass(operand, QueryExpression):
            operand = operand()
        if isinstance(operand, QueryExpression):
            return semijoin(query, operand)
        return make_condition(query, operand)
    if isinstance(restriction, AndList):
        return _join([make_condition(query, r) for r in restriction], "AND", TRUE)
    if isinstance(restriction, type) and issubclass(restriction, QueryExpression):
        restriction = restriction()
    if isinstance(restriction, QueryExpression):
        check_join_compatibility(query, restriction)
        return semijoin(query, restriction)
    if isinstance(restriction, np.void) and restriction.dtype.names:
        restriction = {name: restriction[name] for name in restriction.dtype.names}
    if isinstance(restriction, collections.abc.Mapping):
        return _dict_condition(query, restriction)
    if _is_dataframe(restriction):
        return make_condition(query, restriction.reset_index().to_dict("records"))
    if isinstance(restriction, np.ndarray) and restriction.dtype.names:
        return _join([make_condition(query, row) for row in restriction], "OR", FALSE)
    if isinstance(restriction, list | tuple | set | frozenset | np.ndarray):
        return _join([make_condition(query, r) for r in restriction], "OR", FALSE)
    if restriction is None:
        raise QueryError("None is not a restriction (use a dict, string, query or list)")
    raise QueryError(f"unsupported restriction type {type(restriction).__name__}")


def _is_dataframe(value: Any) -> bool:
    return type(value).__name__ == "DataFrame" and hasattr(value, "to_dict")


def _dict_condition(query: QueryExpression, restriction: collections.abc.Mapping) -> Condition:
    backend = query.connection.backend
    attributes = query.heading.attributes
    parts = []
    for name, value in restriction.items():
        attribute = attributes.get(name)
        if attribute is None:
            continue  # DataJoint ignores keys that are not attributes of the query
        if attribute.is_blob or attribute.is_attachment or attribute.is_filepath:
            raise QueryError(f"cannot restrict by the value of blob/attachment attribute {name!r}")
        column = backend.quote(name)
        if value is None:
            parts.append(Condition(f"{column} IS NULL"))
            continue
        try:
            encoded = backend.to_db(attribute, encode_value(attribute, value))
        except DataValueError as error:
            raise QueryError(f"restriction on {name!r}: {error}") from None
        parts.append(Condition(f"{column} = {PH}", (encoded,)))
    return _join(parts, "AND", TRUE)


def semijoin(query: QueryExpression, other: QueryExpression) -> Condition:
    """`query & other`: rows of `query` whose shared attributes match some row of `other`."""
    shared = [n for n in query.heading.names if n in other.heading]
    if not shared:
        sql, params = other.make_sql(attributes=[], limit=1)
        return Condition(f"EXISTS ({sql})", params)
    nullable = [n for n in shared if other.heading[n].nullable]
    if nullable:  # NULL in a subquery would make NOT IN unknown for every row
        quote = query.connection.backend.quote
        other = other.restrict(AndList([f"{quote(n)} IS NOT NULL" for n in nullable]))
    sql, params = other.make_sql(attributes=shared, distinct=True)
    quote = query.connection.backend.quote
    columns = ", ".join(quote(n) for n in shared)
    left = columns if len(shared) == 1 else f"({columns})"
    return Condition(f"{left} IN ({sql})", params)
