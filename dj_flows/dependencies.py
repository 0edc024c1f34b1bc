"""The foreign-key graph across schemas, as the database itself reports it.

Delete cascades, drop order, populate order and the diagram all walk this graph; none of them ever
parses an error message to discover a dependency. Nodes are `(schema, table)` pairs.
"""

from __future__ import annotations

from collections.abc import Iterable

from .backends import ForeignKeyEdge

Node = tuple[str, str]


class Dependencies:
    """Parents and children of every table, with the attribute map of each foreign key."""

    def __init__(self, edges: Iterable[ForeignKeyEdge]) -> None:
        self.edges: list[ForeignKeyEdge] = list(edges)
        self._children: dict[Node, list[ForeignKeyEdge]] = {}
        self._parents: dict[Node, list[ForeignKeyEdge]] = {}
        for edge in self.edges:
            self._children.setdefault(edge.parent, []).append(edge)
            self._parents.setdefault(edge.child, []).append(edge)

    def children(self, node: Node) -> list[ForeignKeyEdge]:
        return list(self._children.get(node, ()))

    def parents(self, node: Node) -> list[ForeignKeyEdge]:
        return list(self._parents.get(node, ()))

    def descendants(self, node: Node) -> list[Node]:
        """`node` and everything that depends on it, parents before children."""
        return self.topological_order(self._reach(node, self._children, lambda e: e.child))

    def ancestors(self, node: Node) -> list[Node]:
        """`node` and everything it depends on, parents before children."""
        return self.topological_order(self._reach(node, self._parents, lambda e: e.parent))

    @staticmethod
    def _reach(node: Node, links: dict, step) -> set[Node]:
        seen, stack = {node}, [node]
        while stack:
            for edge in links.get(stack.pop(), ()):
                nxt = step(edge)
                if nxt not in seen:
                    seen.add(nxt)
                    stack.append(nxt)
        return seen

    def topological_order(self, nodes: Iterable[Node]) -> list[Node]:
        """Sort `nodes` so that every parent comes before its children (stable by name)."""
        nodes = set(nodes)
        indegree = {n: 0 for n in nodes}
        for edge in self.edges:
            if edge.child in nodes and edge.parent in nodes and edge.child != edge.parent:
                indegree[edge.child] += 1
        ready = sorted(n for n, d in indegree.items() if d == 0)
        order: list[Node] = []
        while ready:
            node = ready.pop(0)
            order.append(node)
            released = []
            for edge in self._children.get(node, ()):
                if edge.child in nodes and edge.child != node:
                    indegree[edge.child] -= 1
                    if indegree[edge.child] == 0:
                        released.append(edge.child)
            ready = sorted(ready + released)
        if len(order) != len(nodes):  # a cycle cannot be declared; keep going deterministically
            order += sorted(nodes - set(order))
        return order
