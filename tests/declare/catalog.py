"""A tiny in-memory schema for the declaration tests: tables declared with the real parser.

`Catalog.declare` parses a definition with `parse_definition`, using the catalog itself as the
foreign-key lookup, and records the result so later definitions can reference it by class name
(or by a dotted name such as 'other.Subject' or 'Master.Part').
"""

from __future__ import annotations

from dj_flows.declare import ParentRef, TableSpec, parse_definition
from dj_flows.errors import DeclarationError


class Catalog:
    def __init__(self, schema: str = "test_schema") -> None:
        self.schema = schema
        self.refs: dict[str, ParentRef] = {}
        self.lookups: list[str] = []

    def lookup(self, name: str) -> ParentRef:
        self.lookups.append(name)
        try:
            return self.refs[name]
        except KeyError:
            raise DeclarationError(f"no table named {name!r} in the context") from None

    def parse(self, definition: str, table: str = "test") -> TableSpec:
        return parse_definition(definition, table, self.lookup)

    def declare(
        self, name: str, table: str, definition: str, schema: str | None = None
    ) -> TableSpec:
        spec = self.parse(definition, table)
        self.refs[name] = ParentRef(schema or self.schema, table, spec.heading)
        return spec
