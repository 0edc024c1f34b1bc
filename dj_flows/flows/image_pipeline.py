"""Flow: the seed notebook's image pipeline, end to end, then a contact sheet and a Parquet file.

    catalog -> WebImage -> OriginalFile (download, attach@shared) -> Slide (decode, blob@local)
            -> contact sheet PNG of the slides, Parquet export of WebImage * Slide
            -> markdown artifact: what was made and where it went

Populate skips what exists, so a second run downloads and decodes nothing; it then leaves the PNG
and Parquet file alone too when they exist and nothing new was made, and says so.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from prefect import flow, tags

from ..connection import conn
from ..errors import PopulateError
from ..pipelines import images
from ..prefect.blocks import DataJointDatabase, DataJointStore, resolve_blocks
from ..prefect.runtime import configured, in_prefect_run
from ..prefect.tasks import (
    contact_sheet_task,
    declare_task,
    export_task,
    load_catalog_task,
    populate_task,
)
from ..settings import config

PIPELINE = images.__name__
SHEET_NAME = "contact_sheet.png"
PARQUET_NAME = "slides.parquet"
EXPORT_TABLES = ["WebImage", "Slide"]


@flow(name="image-pipeline", flow_run_name="image-pipeline-{schema_name}")
def image_pipeline(
    schema_name: str = "images_demo",
    catalog: list[dict[str, Any]] | None = None,
    output: str = "demo-output",
    parquet_url: str | None = None,
    chunk_size: int = 25,
    reserve_jobs: bool = False,
    allow_errors: bool = False,
    database: DataJointDatabase | str | None = None,
    stores: list[DataJointStore | str] | None = None,
) -> dict[str, Any]:
    """Run the image pipeline in `schema_name`; `catalog` entries (image_number, image_name,
    image_description, image_url) are loaded into WebImage first. Writes the PNG and the Parquet
    file into `output` (the Parquet file to `parquet_url` if given: a path or fsspec URL).
    Returns a JSON summary; fails after writing it if a make() failed, unless `allow_errors`.
    `database` and `stores` are blocks or the names of saved blocks."""
    database, stores = resolve_blocks(database, stores)
    blocks = {"database": database, "stores": stores}
    folder = Path(output).expanduser().resolve()
    folder.mkdir(parents=True, exist_ok=True)
    sheet_path = str(folder / SHEET_NAME)
    parquet = parquet_url or str(folder / PARQUET_NAME)
    with configured(database, stores), tags(f"schema:{schema_name}"):
        summary: dict[str, Any] = {"schema": schema_name, "where": _where(parquet, sheet_path)}
        summary["tables"] = declare_task(PIPELINE, schema_name, **blocks)
        summary["catalog"] = load_catalog_task(schema_name, catalog, **blocks) if catalog else None
        populate = {"chunk_size": chunk_size, "reserve_jobs": reserve_jobs, **blocks}
        with tags("table:OriginalFile"):
            files = populate_task(PIPELINE, schema_name, "OriginalFile", **populate)
        with tags("table:Slide"):
            slides = populate_task(PIPELINE, schema_name, "Slide", **populate)
        summary["populate"] = [files, slides]
        fresh = files["made"] == 0 and slides["made"] == 0
        if fresh and os.path.exists(sheet_path):
            summary["contact_sheet"] = {"path": sheet_path, "unchanged": True}
        elif slides["total"]:
            summary["contact_sheet"] = contact_sheet_task(schema_name, sheet_path, **blocks)
        else:
            summary["contact_sheet"] = None
        if fresh and "://" not in parquet and os.path.exists(parquet):
            summary["parquet"] = {"url": parquet, "unchanged": True}
        else:
            summary["parquet"] = export_task(schema_name, EXPORT_TABLES, parquet, **blocks)
        errors = files["errors"] + slides["errors"]
        summary["errors"] = errors
        summary["message"] = describe(summary)
        _publish(summary)
    if errors and not allow_errors:
        lines = [f"{e['key']}: {e['error']}" for e in errors[:20]]
        raise PopulateError(
            f"image pipeline in schema {schema_name!r}: {len(errors)} make() calls failed:\n  "
            + "\n  ".join(lines)
        )
    return summary


def _where(parquet: str, sheet: str) -> dict[str, Any]:
    """Where everything lives, without secrets: database target, stores, output files."""
    stores = {}
    for name in ("shared", "local"):
        spec = config["stores"].get(name, {})
        location = spec.get("location", "")
        if spec.get("protocol") == "s3":
            location = f"s3://{spec.get('bucket')}/{location}".rstrip("/") + f" at {spec.get('endpoint')}"
        stores[name] = location
    return {
        "database": conn().backend.describe_target(),
        "stores": stores,
        "parquet": parquet,
        "contact_sheet": sheet,
    }


def describe(summary: dict[str, Any]) -> str:
    """A few plain lines about what this run made or skipped."""
    lines = []
    catalog = summary.get("catalog")
    if catalog:
        lines.append(
            f"WebImage: {catalog['inserted']} entries added, {catalog['updated']} refreshed, "
            f"{catalog['kept']} already there"
        )
    for report in summary["populate"]:
        lines.append(_populate_line(report))
    sheet = summary.get("contact_sheet")
    if sheet and sheet.get("unchanged"):
        lines.append("contact sheet: up to date, not redrawn")
    elif sheet:
        lines.append(f"contact sheet: drew {sheet['slides']} slides")
    parquet = summary.get("parquet") or {}
    if parquet.get("unchanged"):
        lines.append("Parquet export: up to date, not rewritten")
    elif parquet:
        lines.append(f"Parquet export: wrote {parquet.get('rows', '?')} rows")
    return "\n".join(lines)


def _populate_line(report: dict[str, Any]) -> str:
    name = report["class_name"]
    if report["total"] == 0:
        return f"{name}: nothing to do (its key source is empty)"
    if report["todo"] == 0:
        return f"{name}: nothing to do, all {report['existing']} already made (skipped)"
    text = f"{name}: made {report['made']} of {report['todo']}"
    if report["existing"]:
        text += f", skipped {report['existing']} already made"
    if report["errors"]:
        text += f", {len(report['errors'])} FAILED"
    return text + f" ({report['seconds']:.1f} s)"


def _publish(summary: dict[str, Any]) -> None:
    if not in_prefect_run():
        return
    from prefect.artifacts import create_markdown_artifact

    from ..prefect.runtime import artifact_key

    where = summary["where"]
    rows = "\n".join(
        f"| {r['class_name']} | {r['made']} | {r['existing']} | {len(r['errors'])} | {r['remaining']} |"
        for r in summary["populate"]
    )
    errors = "\n".join(f"- `{e['key']}`: {e['error']}" for e in summary["errors"][:20])
    markdown = f"""# Image pipeline: schema `{summary['schema']}`

{summary['message']}

| table | made | already there | failed | remaining |
|---|---|---|---|---|
{rows}

## Where it went
- database: {where['database']}
- store `shared` (attachments): {where['stores']['shared']}
- store `local` (slide arrays): {where['stores']['local']}
- Parquet: {where['parquet']}
- contact sheet: {where['contact_sheet']}
{"## Failures" + chr(10) + errors if errors else ""}
"""
    create_markdown_artifact(
        markdown,
        key=artifact_key("image-pipeline", summary["schema"]),
        description=f"image pipeline summary for {summary['schema']}",
    )
