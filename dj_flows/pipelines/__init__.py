"""Reusable pipelines, and the one rule by which tasks find a pipeline's table classes.

A Prefect task receives only names: a pipeline (an importable module path) and a schema name. It
resolves them to table classes inside itself, on its own thread's connection, with `tables()`:

- a module with `activate(schema_name) -> Mapping[str, type]` (the pipelines in this package) is
  asked for its classes bound to that schema; a module can so serve many schemas;
- any other module is scanned for table classes whose schema is `schema_name` (the DataJoint style
  of one module-level `schema = dj.schema(...)` and decorated classes).
"""

from __future__ import annotations

import importlib
import threading
import weakref
from collections.abc import Callable, Mapping
from typing import Any

from ..connection import Connection, conn
from ..errors import DataJointError
from ..schema import Schema
from ..tiers import Computed, Imported, Part, UserTable


def activator(
    define: Callable[[Schema], Mapping[str, type]],
) -> Callable[..., dict[str, type]]:
    """Make a pipeline's `activate(schema_name, connection=None)` from `define(schema)`, which
    declares the pipeline's classes on a schema and returns them by name.

    Classes are bound to one connection, and each thread has its own, so `activate` defines them
    once per connection and schema and returns the same classes on later calls.
    """
    lock = threading.Lock()
    bound: weakref.WeakKeyDictionary[Connection, dict[str, dict[str, type]]] = (
        weakref.WeakKeyDictionary()
    )

    def activate(schema_name: str, connection: Connection | None = None) -> dict[str, type]:
        connection = connection or conn()
        with lock:
            per_connection = bound.setdefault(connection, {})
            classes = per_connection.get(schema_name)
        if classes is None:
            classes = dict(define(Schema(schema_name, connection=connection)))
            with lock:
                classes = per_connection.setdefault(schema_name, classes)
        return dict(classes)

    activate.__doc__ = (
        "The pipeline's classes bound to `schema_name` (declared on first use) on `connection` "
        "(default: the calling thread's connection for the current config)."
    )
    return activate


def tables(pipeline: str, schema_name: str) -> dict[str, type]:
    """Class name -> table class of `pipeline` for `schema_name` (masters only, no parts)."""
    try:
        module = importlib.import_module(pipeline)
    except ImportError as error:
        raise DataJointError(f"cannot import pipeline module {pipeline!r}: {error}") from None
    activate = getattr(module, "activate", None)
    if callable(activate):
        found: Mapping[str, Any] = activate(schema_name)
    else:
        found = {
            name: value
            for name, value in vars(module).items()
            if isinstance(value, type)
            and issubclass(value, UserTable)
            and getattr(value, "database", None) == schema_name
        }
    classes = {
        name: cls
        for name, cls in found.items()
        if isinstance(cls, type) and issubclass(cls, UserTable) and not issubclass(cls, Part)
    }
    if not classes:
        raise DataJointError(f"pipeline {pipeline!r} has no tables in schema {schema_name!r}")
    return classes


def table(pipeline: str, schema_name: str, name: str) -> type:
    """One table class, named by class name (`Slide`) or table name (`__slide`)."""
    classes = tables(pipeline, schema_name)
    if name in classes:
        return classes[name]
    for cls in classes.values():
        if cls.table_name == name:
            return cls
    raise DataJointError(
        f"pipeline {pipeline!r} has no table {name!r} in schema {schema_name!r} "
        f"(it has {', '.join(sorted(classes))})"
    )


def auto_populated(classes: Mapping[str, type]) -> dict[str, type]:
    """The Imported and Computed tables among `classes`."""
    return {n: c for n, c in classes.items() if issubclass(c, Imported | Computed)}


def populate_plan(
    pipeline: str, schema_name: str, names: list[str] | None = None
) -> list[dict[str, Any]]:
    """The auto-populated tables to run, parents first: [{'table', 'table_name', 'after'}], where
    'after' names the planned tables it depends on (directly or through other tables). Tables
    whose 'after' lists are disjoint may run at the same time."""
    classes = auto_populated(tables(pipeline, schema_name))
    if names:
        wanted = {table(pipeline, schema_name, n).__name__ for n in names}
        unknown = wanted - set(classes)
        if unknown:
            raise DataJointError(f"not auto-populated in {pipeline!r}: {', '.join(sorted(unknown))}")
        classes = {n: c for n, c in classes.items() if n in wanted}
    if not classes:
        return []
    connection = next(iter(classes.values()))().connection
    by_node = {(schema_name, c.table_name): n for n, c in classes.items()}
    graph = connection.dependencies
    plan = []
    for node in graph.topological_order(by_node):
        ancestors = set(graph.ancestors(node)) - {node}
        plan.append(
            {
                "table": by_node[node],
                "table_name": node[1],
                "after": [by_node[a] for a in graph.topological_order(ancestors) if a in by_node],
            }
        )
    return plan
