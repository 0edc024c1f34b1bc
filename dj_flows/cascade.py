"""Delete cascades planned from the foreign-key graph.

Every table that depends on the rows being deleted is found in the dependency graph (never by
parsing database error messages) and restricted by a semijoin on its parents' doomed rows, with the
foreign key's attribute renames applied. A child reached through several parents gets the OR of
those restrictions. Deleting then runs children first, inside one transaction.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .naming import split_part

if TYPE_CHECKING:
    from .expression import QueryExpression
    from .table import Table

Node = tuple[str, str]


def plan_delete(table: Table, force_masters: bool = False) -> list[tuple[Node, Table]]:
    """(node, restricted table) for every table the delete reaches, parents before children."""
    from .table import FreeTable

    connection = table.connection
    graph = connection.dependencies
    restrictions: dict[Node, list[QueryExpression]] = {table.node: [table]}
    roots: dict[Node, list[QueryExpression]] = {table.node: [table]}

    while True:
        nodes: set[Node] = set()
        for root in roots:
            nodes.update(graph.descendants(root))
        order = graph.topological_order(nodes)
        restrictions = {node: list(roots.get(node, [])) for node in order}
        for node in order:
            for edge in graph.children(node):
                child = edge.child
                if child not in restrictions or child in roots:
                    continue
                if not restrictions[node]:
                    continue
                renames = {c: p for c, p in edge.attr_map.items() if c != p}
                for parent_rows in restrictions[node]:
                    projected = parent_rows.proj(**renames) if renames else parent_rows.proj()
                    restrictions[child].append(projected)
        if not force_masters:
            break
        added = False
        for node in order:
            parts = split_part(node[1])
            master = (node[0], parts[0]) if parts else None
            if master and master not in restrictions and restrictions[node]:
                part_rows = FreeTable(connection, *node) & restrictions[node]
                roots[master] = [FreeTable(connection, *master) & part_rows.proj()]
                added = True
        if not added:
            break

    plan = []
    for node in order:
        if node in roots and node == table.node:
            plan.append((node, table))
            continue
        rows = restrictions[node]
        if not rows:
            continue
        restricted = FreeTable(connection, *node) & (rows if len(rows) > 1 else rows[0])
        plan.append((node, restricted))
    return plan
