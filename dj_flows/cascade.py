"""Delete cascades planned from the foreign-key graph.

Every table that depends on the rows being deleted is found in the dependency graph (never by
parsing database error messages). Walking the graph parents-first, each reached table is restricted
to the rows that reference doomed rows of its parents: a semijoin on the *restricted parent table*,
with the foreign key's attribute renames applied, so a grandchild is matched through the child rows
actually doomed (not through the root's restriction, which may not even share its attributes). A
table reached through several foreign keys gets the OR of those restrictions. Deleting then runs
children first, inside one transaction, so every restriction still sees the rows it refers to.

If the root's own restriction refers to a table the cascade deletes from (`(Session & (Trial &
'trial=1')).delete()`), that restriction would change as the cascade runs; the root's keys are then
read first and the delete works from them.
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
    roots: dict[Node, Table] = {table.node: _stable_root(table, graph)}

    while True:
        nodes: set[Node] = set()
        for root in roots:
            nodes.update(graph.descendants(root))
        order = graph.topological_order(nodes)
        incoming: dict[Node, list[QueryExpression]] = {node: [] for node in order}
        doomed: dict[Node, Table] = {}
        for node in order:
            if node in roots:
                rows = roots[node]
            elif incoming[node]:
                found = incoming[node]
                rows = FreeTable(connection, *node) & (found if len(found) > 1 else found[0])
            else:
                continue
            doomed[node] = rows
            for edge in graph.children(node):
                if edge.child in incoming and edge.child not in roots:
                    renames = {c: p for c, p in edge.attr_map.items() if c != p}
                    incoming[edge.child].append(rows.proj(**renames) if renames else rows.proj())
        if not force_masters:
            break
        added = False
        for node in order:
            parts = split_part(node[1])
            master = (node[0], parts[0]) if parts else None
            if master and master not in doomed and node in doomed:
                master_table = FreeTable(connection, *master)
                roots[master] = master_table & (master_table.proj() & doomed[node].proj()).fetch("KEY")
                added = True
        if not added:
            break
    return [(node, doomed[node]) for node in order if node in doomed]


def _stable_root(table: Table, graph) -> Table:
    """The root restricted by its own keys when its restriction reads a table the cascade empties."""
    from .table import FreeTable

    where, _params = table._where_sql()
    if not where:
        return table
    backend = table.connection.backend
    reached = [n for n in graph.descendants(table.node) if n != table.node]
    if not any(backend.table_ref(*node) in where for node in reached):
        return table
    keys = table.fetch("KEY")
    return FreeTable(table.connection, *table.node) & (keys if keys else False)
