"""Base tables: declare, insert, delete (graph-driven cascade), drop, describe.

A `Table` is a query expression over one base table, plus the operations that change it. User
classes get their names and tiers from `tiers.py`; hidden tables (`~external_*`, `~jobs`) use
`FreeTable`, which names a table directly.
"""

from __future__ import annotations

import logging
import sys
import types
from collections.abc import Mapping
from typing import Any

from .declare import ParentRef, TableSpec, parse_definition
from .errors import (
    DataJointError,
    DeclarationError,
    MissingTableError,
)
from .expression import QueryExpression, _alias
from .heading import Heading
from .insert import InsertMixin
from .naming import split_part, to_camel_case
from .settings import config

logger = logging.getLogger("dj_flows.table")


class Table(InsertMixin, QueryExpression):
    """A query over one base table, with the operations that modify it."""

    database: str | None = None
    _table_name: str | None = None
    definition: str = ""
    _allow_insert: bool = True  # auto-populated tiers turn this off outside populate()

    # -- identity -------------------------------------------------------------------------------
    @property
    def table_name(self) -> str:
        if self._table_name is None:
            raise DataJointError(f"{type(self).__name__} has no table name")
        return self._table_name

    @property
    def full_table_name(self) -> str:
        self._check_attached()
        return self.connection.backend.table_ref(self.database, self.table_name)

    @property
    def node(self) -> tuple[str, str]:
        return (self.database, self.table_name)

    def _check_attached(self) -> None:
        if self._connection is None or self.database is None:
            raise DataJointError(
                f"class {type(self).__name__} is not associated with a schema: decorate it with @schema"
            )

    @property
    def heading(self) -> Heading:
        if self._heading is not None:
            return self._heading
        # every query step asks for the heading: keep it on the instance until the next DDL
        cached = self.__dict__.get("_heading_cache")
        connection = self._connection
        if cached is not None and cached[0] is connection and cached[1] == connection.generation:
            return cached[2]
        self._check_attached()
        info = connection.table_info(self.database, self.table_name)
        if info is None:
            raise MissingTableError(f"table {self.database}.{self.table_name} is not declared")
        self.__dict__["_heading_cache"] = (connection, connection.generation, info.heading)
        return info.heading

    @property
    def is_declared(self) -> bool:
        self._check_attached()
        return self.connection.table_info(self.database, self.table_name) is not None

    def _from_clause(self) -> str:
        if self._from:
            return self._from
        return f"{self.full_table_name} AS {self.connection.backend.quote(_alias())}"

    def _source_columns_(self) -> frozenset[str]:
        if self._source_columns:
            return self._source_columns
        return frozenset(self.heading.names)

    # -- declaration ----------------------------------------------------------------------------
    def declare(self, context: Mapping[str, Any] | None = None) -> None:
        """Create the table from its definition (no-op if it exists)."""
        self._check_attached()
        if self.is_declared:
            return
        spec = self._spec(context or {})
        connection = self.connection
        with connection.transaction():
            connection.backend.create_table(connection._cursor(), self.database, spec)
        connection.invalidate()

    def _spec(self, context: Mapping[str, Any]) -> TableSpec:
        definition = self.definition
        if not isinstance(definition, str) or not definition.strip():
            raise DeclarationError(f"table {type(self).__name__} has no definition")

        def lookup(name: str) -> ParentRef:
            return self._lookup_parent(name, context)

        spec = parse_definition(definition, self.table_name, lookup)
        return self._extend_spec(spec)

    def _extend_spec(self, spec: TableSpec) -> TableSpec:
        """Hook for storage layers (external tracking tables) to add foreign keys."""
        from .stores.external import add_external_references

        return add_external_references(self, spec)

    def _lookup_parent(self, name: str, context: Mapping[str, Any]) -> ParentRef:
        head, *rest = name.split(".")
        if head not in context:
            raise DeclarationError(f"table {self.table_name!r}: {head!r} is not defined in the schema's context")
        target = context[head]
        for part in rest:
            try:
                target = getattr(target, part)
            except AttributeError:
                raise DeclarationError(f"table {self.table_name!r}: {name!r} cannot be resolved") from None
        if isinstance(target, type) and issubclass(target, Table):
            target = target()
        if not isinstance(target, Table):
            raise DeclarationError(f"table {self.table_name!r}: {name!r} is not a table")
        if not target.is_declared:
            raise DeclarationError(f"table {self.table_name!r}: referenced table {name!r} is not declared")
        return ParentRef(schema=target.database, table=target.table_name, heading=target.heading)

    # -- delete ---------------------------------------------------------------------------------
    def delete_quick(self, get_count: bool = False) -> int | None:
        """Delete the restricted rows without cascading (fails if other rows depend on them)."""
        count = self._delete_rows()
        return count if get_count else None

    def _delete_rows(self) -> int:
        if any(a.is_external for a in self.heading):
            from .stores.history import record_releases

            record_releases(self)
        where, params = self._where_sql()
        cursor = self.connection.query(f"DELETE FROM {self.full_table_name}{where}", params)
        return cursor.rowcount

    def delete(
        self,
        transaction: bool = True,
        safemode: bool | None = None,
        force_parts: bool = False,
        force_masters: bool = False,
    ) -> int:
        """Delete the restricted rows and everything that depends on them, in one transaction."""
        from .cascade import plan_delete

        safemode = config["safemode"] if safemode is None else safemode
        connection = self.connection
        connection.invalidate()
        if transaction and connection.in_transaction:
            if safemode:
                raise DataJointError("delete cannot run its own transaction inside an ongoing one: pass transaction=False or safemode=False")
            transaction = False
        plan = plan_delete(self, force_masters=force_masters)
        if transaction:
            connection.start_transaction()
        try:
            counts = {}
            for node, query in reversed(plan):
                counts[node] = query._delete_rows()
            if not force_parts:
                deleted = {node for node, count in counts.items() if count}
                for node in deleted:
                    parts = split_part(node[1])
                    if parts and (node[0], parts[0]) not in deleted and (node[0], parts[0]) not in dict(plan):
                        raise DataJointError(
                            f"attempt to delete part table {node[0]}.{node[1]} before deleting from its "
                            f"master {node[0]}.{parts[0]} (pass force_parts=True to do it anyway)"
                        )
        except BaseException:
            if transaction:
                connection.cancel_transaction()
            raise
        total = counts.get(self.node, 0)
        if not transaction:
            return total
        if not any(counts.values()):
            connection.cancel_transaction()
            if safemode:
                logger.warning("Nothing to delete.")
            return 0
        if safemode and _interactive():
            for node, count in counts.items():
                if count:
                    print(f"Deleting {count} rows from {node[0]}.{node[1]}")
            if _ask("Commit deletes?") != "yes":
                connection.cancel_transaction()
                logger.warning("Delete cancelled")
                return 0
        connection.commit_transaction()
        return total

    # -- drop -----------------------------------------------------------------------------------
    def drop_quick(self) -> None:
        """Drop this table alone (fails if other tables depend on it)."""
        if not self.is_declared:
            logger.info("table %s.%s is not declared; nothing to drop", self.database, self.table_name)
            return
        connection = self.connection
        with connection.transaction():
            connection.backend.drop_table(connection._cursor(), self.database, self.table_name)
        connection.invalidate()

    def drop(self, force: bool = False) -> None:
        """Drop this table and every table that depends on it (asks first in safemode)."""
        if self._where:
            raise DataJointError("a restricted table cannot be dropped")
        connection = self.connection
        connection.invalidate()
        nodes = connection.dependencies.descendants(self.node)
        if config["safemode"] and _interactive() and not force:
            for schema, table in nodes:
                print(f"{schema}.{table}")
            if _ask("Proceed?") != "yes":
                return
        for schema, table in reversed(nodes):
            with connection.transaction():
                connection.backend.drop_table(connection._cursor(), schema, table)
            connection.invalidate()

    # -- description ----------------------------------------------------------------------------
    def parents(self, primary: bool | None = None, as_objects: bool = False) -> list:
        edges = self.connection.dependencies.parents(self.node)
        if primary is not None:
            key = set(self.heading.primary_key)
            edges = [e for e in edges if set(e.attr_map) <= key] if primary else [e for e in edges if not set(e.attr_map) <= key]
        return [FreeTable(self.connection, *e.parent) if as_objects else _name(e.parent) for e in edges]

    def children(self, primary: bool | None = None, as_objects: bool = False) -> list:
        edges = self.connection.dependencies.children(self.node)
        return [FreeTable(self.connection, *e.child) if as_objects else _name(e.child) for e in edges]

    def descendants(self, as_objects: bool = False) -> list:
        nodes = self.connection.dependencies.descendants(self.node)
        return [FreeTable(self.connection, *n) if as_objects else _name(n) for n in nodes]

    def ancestors(self, as_objects: bool = False) -> list:
        nodes = self.connection.dependencies.ancestors(self.node)
        return [FreeTable(self.connection, *n) if as_objects else _name(n) for n in nodes]

    def describe(self, context: Mapping[str, Any] | None = None, printout: bool = False) -> str:
        """The definition text, reconstructed from the database.

        Parents are named as `context` (by default the caller's namespace) knows them, e.g.
        `upstream.Lab` for a class reached through a module; otherwise by class name within this
        schema and `schema.Class` outside it. Indexes follow the attributes, except those that only
        back a foreign key (a unique one makes it `-> [unique] Parent`)."""
        if context is None:
            frame = sys._getframe(1)
            context = {**frame.f_globals, **frame.f_locals}
            del frame
        heading = self.heading
        connection = self.connection
        edges = [e for e in connection.dependencies.parents(self.node) if not e.parent[1].startswith("~")]
        indexes = connection.backend.indexes(connection._cursor(), self.database, self.table_name)
        names = _class_names(context)
        lines = [f"# {heading.table_comment}"] if heading.table_comment else []
        seen: set[str] = set()
        pending = list(edges)
        in_fk = {name for edge in edges for name in edge.attr_map}
        separator_done = False
        for attribute in heading:
            if not attribute.in_key and not separator_done:
                lines.append("---")
                separator_done = True
            seen.add(attribute.name)
            for edge in [e for e in pending if set(e.attr_map) <= seen]:
                pending.remove(edge)
                options = ["nullable"] if any(heading[c].nullable for c in edge.attr_map) else []
                fk_columns = tuple(edge.attr_map)
                for index in indexes:
                    if index[0] == fk_columns:
                        indexes.remove(index)
                        if index[1]:
                            options.append("unique")
                        break
                renames = {c: p for c, p in edge.attr_map.items() if c != p}
                proj = "" if not renames else ".proj(" + ", ".join(f"{c}='{p}'" for c, p in renames.items()) + ")"
                props = f"[{', '.join(options)}] " if options else ""
                lines.append(f"-> {props}{self._parent_name(edge.parent, names)}{proj}")
            if attribute.name in in_fk:
                continue
            default = ""
            if attribute.nullable:
                default = " = null"
            elif attribute.default is not None:
                default = f" = {attribute.default}"
            declared = attribute.type.declared + (" auto_increment" if attribute.autoincrement else "")
            comment = f"  # {attribute.comment}" if attribute.comment else ""
            lines.append(f"{attribute.name}{default} : {declared}{comment}")
        if not separator_done:
            lines.append("---")
        for columns, unique in indexes:
            lines.append(f"{'unique ' if unique else ''}index ({', '.join(columns)})")
        text = "\n".join(lines) + "\n"
        if printout:
            print(text)
        return text

    def _parent_name(self, parent: tuple[str, str], names: dict[tuple[str, str], str]) -> str:
        if parent in names:
            return names[parent]
        parent_schema, parent_table = parent
        parts = split_part(parent_table)
        name = to_camel_case(parts[0]) + "." + to_camel_case(parts[1]) if parts else to_camel_case(parent_table)
        return name if parent_schema == self.database else f"{parent_schema}.{name}"


class FreeTable(Table):
    """A table named directly by schema and table name (no class needed)."""

    def __init__(self, connection: Any, database: str, table_name: str) -> None:
        self._connection = connection
        self.database = database
        self._table_name = table_name

    def __repr__(self) -> str:
        return f"FreeTable({self.database}.{self.table_name})\n" + super().__repr__()


def _class_names(context: Mapping[str, Any]) -> dict[tuple[str, str], str]:
    """(schema, table) -> the name under which `context` reaches a table class: `Name`, or
    `module.Name` one level down (DataJoint's lookup), and `Master.Part` for parts."""
    found: dict[tuple[str, str], str] = {}

    def visit(value: Any, name: str) -> None:
        if isinstance(value, type) and issubclass(value, Table) and value.__dict__.get("_table_name") is not None:
            node = (value.database, value._table_name)
            found.setdefault(node, name)
            for part in getattr(value, "parts_of", lambda: [])():
                if part.__dict__.get("_table_name") is not None:
                    found.setdefault((part.database, part._table_name), f"{name}.{part.__name__}")

    for name, value in context.items():
        if name.startswith("_") or not name.isidentifier():
            continue
        if isinstance(value, type):
            visit(value, name)
        elif isinstance(value, types.ModuleType):
            for member, inner in vars(value).items():
                if isinstance(inner, type) and not member.startswith("_"):
                    visit(inner, f"{name}.{member}")
    return found


def _name(node: tuple[str, str]) -> str:
    return f"{node[0]}.{node[1]}"


def _interactive() -> bool:
    return sys.stdin is not None and sys.stdin.isatty()


def _ask(question: str) -> str:
    answer = ""
    while answer not in ("yes", "no"):
        answer = input(f"{question} [yes, No]: ").strip().lower() or "no"
    return answer
