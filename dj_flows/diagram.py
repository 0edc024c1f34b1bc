"""Diagrams of the dependency graph: Mermaid text always, SVG/PNG through Graphviz `dot` if present.

Mermaid renders in GitHub, the Prefect UI's markdown artifacts and most notebooks without any
binary dependency, so it is the default; Graphviz is used only when asked for an image.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

from .errors import DataJointError
from .naming import class_name_of, split_part, tier_of

Node = tuple[str, str]
TIER_STYLE = {
    "manual": ("#00FF0030", "rect"),
    "lookup": ("#77777730", "rect"),
    "imported": ("#00007F30", "ellipse"),
    "computed": ("#FF000030", "ellipse"),
    "part": ("#FFFFFF00", "plaintext"),
}


class Diagram:
    """The tables of a schema (or around a table) and the foreign keys between them."""

    def __init__(self, source: Any, context: Any = None) -> None:
        from .schema import Schema
        from .table import Table

        if isinstance(source, Diagram):
            self.connection, self.nodes = source.connection, set(source.nodes)
            return
        if isinstance(source, Schema):
            source._check()
            self.connection = source.connection
            tables = source.connection.backend.list_tables(source.connection._cursor(), source.database)
            self.nodes = {(source.database, t) for t in tables if not t.startswith("~")}
        else:
            if isinstance(source, type) and issubclass(source, Table):
                source = source()
            if not isinstance(source, Table):
                raise DataJointError(f"Diagram takes a schema or a table, got {type(source).__name__}")
            self.connection = source.connection
            self.nodes = {source.node}
        self.connection.invalidate()

    @property
    def _graph(self) -> Any:
        return self.connection.dependencies

    def __add__(self, other: Any) -> Diagram:
        result = Diagram(self)
        if isinstance(other, int):
            for _ in range(other):
                result.nodes |= {e.child for n in result.nodes for e in self._graph.children(n)}
        else:
            result.nodes |= Diagram(other).nodes
        return result

    def __sub__(self, other: Any) -> Diagram:
        result = Diagram(self)
        if isinstance(other, int):
            for _ in range(other):
                result.nodes |= {e.parent for n in result.nodes for e in self._graph.parents(n)}
        else:
            result.nodes -= Diagram(other).nodes
        return result

    def _edges(self) -> list[tuple[Node, Node, bool, dict[str, str]]]:
        edges = []
        for edge in self._graph.edges:
            if edge.child in self.nodes and edge.parent in self.nodes:
                info = self.connection.table_info(*edge.child)
                key = set(info.heading.primary_key) if info else set()
                edges.append((edge.parent, edge.child, set(edge.attr_map) <= key, edge.attr_map))
        return edges

    def _label(self, node: Node) -> str:
        schemas = {n[0] for n in self.nodes}
        name = class_name_of(node[1])
        parts = split_part(node[1])
        if parts:
            name = f"{class_name_of(parts[0])}.{name}"
        return name if len(schemas) == 1 else f"{node[0]}.{name}"

    @staticmethod
    def _id(node: Node) -> str:
        """A Mermaid/dot node id; other characters are spelled out so '#x' and '_x' stay apart."""
        def spell(text: str) -> str:
            return "".join(c if c.isalnum() else f"_{ord(c):x}" for c in text)

        return f"n_{spell(node[0])}__{spell(node[1])}"

    def make_mermaid(self) -> str:
        lines = ["flowchart TD"]
        for node in sorted(self.nodes):
            tier = tier_of(node[1])
            shape = ("([", "])") if tier in ("imported", "computed") else ("[", "]")
            lines.append(f"    {self._id(node)}{shape[0]}\"{self._label(node)}\"{shape[1]}:::{tier}")
        for parent, child, primary, attr_map in self._edges():
            renames = {c: p for c, p in attr_map.items() if c != p}
            arrow = "-->" if primary else "-.->"
            label = "|" + ", ".join(f"{c}={p}" for c, p in renames.items()) + "|" if renames else ""
            lines.append(f"    {self._id(parent)} {arrow}{label} {self._id(child)}")
        for tier, (color, _) in TIER_STYLE.items():
            lines.append(f"    classDef {tier} fill:{color[:7]},stroke:#333")
        return "\n".join(lines) + "\n"

    def make_dot(self) -> str:
        lines = ["digraph G {", "  rankdir=TB;", '  node [fontname="Helvetica", fontsize=10];']
        for node in sorted(self.nodes):
            color, shape = TIER_STYLE.get(tier_of(node[1]), ("#FFFFFF00", "rect"))
            lines.append(f'  {self._id(node)} [label="{self._label(node)}", shape={shape}, style=filled, fillcolor="{color}"];')
        for parent, child, primary, _ in self._edges():
            style = "solid" if primary else "dashed"
            lines.append(f"  {self._id(parent)} -> {self._id(child)} [style={style}];")
        lines.append("}")
        return "\n".join(lines) + "\n"

    def render(self, fmt: str = "svg") -> bytes:
        dot = shutil.which("dot")
        if dot is None:
            raise DataJointError(
                f"cannot render {fmt.upper()}: Graphviz 'dot' is not installed "
                "(apt-get install graphviz), or use make_mermaid() / save('diagram.mmd')"
            )
        return subprocess.run([dot, f"-T{fmt}"], input=self.make_dot().encode(), capture_output=True, check=True).stdout

    def _repr_svg_(self) -> str | None:
        return self.render("svg").decode() if shutil.which("dot") else None

    def _repr_markdown_(self) -> str:
        return "```mermaid\n" + self.make_mermaid() + "```"

    def __repr__(self) -> str:
        return self.make_mermaid()

    def save(self, filename: str, format: str | None = None) -> None:
        fmt = (format or Path(filename).suffix.lstrip(".")).lower()
        if fmt in ("mmd", "mermaid", "md"):
            Path(filename).write_text(self.make_mermaid() if fmt != "md" else self._repr_markdown_())
        elif fmt == "dot":
            Path(filename).write_text(self.make_dot())
        elif fmt in ("svg", "png", "pdf"):
            Path(filename).write_bytes(self.render(fmt))
        else:
            raise DataJointError(f"unsupported diagram format {fmt!r}: use mmd, md, dot, svg, png or pdf")
