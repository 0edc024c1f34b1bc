"""Text and HTML previews of a query, the way DataJoint shows them (blobs as =BLOB=)."""

from __future__ import annotations

import html
from typing import TYPE_CHECKING

from .settings import config

if TYPE_CHECKING:
    from .expression import QueryExpression

HIDDEN = {"blob": "=BLOB=", "attach": "=BLOB=", "filepath": "=FILE="}


def _rows(query: QueryExpression, limit: int) -> tuple[list[str], list[list[str]], bool, list[str]]:
    heading = query.heading
    names = heading.names
    shown = [n for n in names if heading[n].kind not in HIDDEN]
    rows = query.proj(*[n for n in shown if n not in heading.primary_key]).fetch(
        *shown, as_dict=True, limit=limit + 1
    ) if shown else []
    has_more = len(rows) > limit
    table = []
    for row in rows[:limit]:
        table.append([str(row[n]) if n in row else HIDDEN[heading[n].kind] for n in names])
    return names, table, has_more, heading.primary_key


def preview(query: QueryExpression, limit: int | None = None, width: int | None = None) -> str:
    limit = config["display.limit"] if limit is None else limit
    width = config["display.width"] if width is None else width
    names, table, has_more, primary_key = _rows(query, limit)
    widths = [
        min(max([len(name) + 1] + [len(row[i]) for row in table]) + 2, max(width, 4))
        for i, name in enumerate(names)
    ]

    def cell(text: str, size: int) -> str:
        return text[:size].ljust(size)

    comment = query.heading.table_comment
    lines = [f"# {comment}"] if comment else []
    lines.append(" ".join(cell(("*" if n in primary_key else "") + n, w) for n, w in zip(names, widths)))
    lines.append(" ".join("+" + "-" * (w - 2) + "+" for w in widths))
    lines.extend(" ".join(cell(value, w) for value, w in zip(row, widths)) for row in table)
    if has_more:
        lines.append("   ...")
    if config["display.show_tuple_count"]:
        lines.append(f" (Total: {len(query)})")
    return "\n".join(lines) + "\n"


def preview_html(query: QueryExpression, limit: int | None = None) -> str:
    limit = config["display.limit"] if limit is None else limit
    names, table, has_more, primary_key = _rows(query, limit)
    head = "".join(
        f"<th>{'<u>' if n in primary_key else ''}{html.escape(n)}{'</u>' if n in primary_key else ''}</th>"
        for n in names
    )
    body = "".join("<tr>" + "".join(f"<td>{html.escape(v)}</td>" for v in row) + "</tr>" for row in table)
    more = "<p>...</p>" if has_more else ""
    total = f"<p>Total: {len(query)}</p>" if config["display.show_tuple_count"] else ""
    return f"<table border='1'><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{more}{total}"
