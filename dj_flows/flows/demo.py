"""The main job: the image pipeline, offline, on the embedded default; prints where it all went.

Everything lives in one output folder (default ./demo-output):

    pipeline.sqlite         the database (SQLite: no server)
    stores/shared/          the 'shared' store (attachments: the downloaded files)
    stores/local/           the 'local' store (blobs: the decoded slide arrays)
    slides.parquet          WebImage * Slide, arrays included
    contact_sheet.png       the slides side by side
    .prefect/               Prefect's home (its ephemeral API database), unless one is configured

The machine needs no internet: the catalog 'bundled' serves the sample images shipped in
dj_flows/samples over a real HTTP server on 127.0.0.1 (the download task fetches them as it would
any web image); 'file' uses file:// URLs; 'web' is the seed notebook's two Wikimedia images.
With `use_config` the database and the stores come from dj.config instead (e.g. MySQL and S3).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .. import samples
from ..errors import ConfigError, PopulateError
from ..prefect.blocks import DataJointDatabase, DataJointStore
from ..settings import config

CATALOGS = ("bundled", "file", "web")
DEFAULT_SCHEMA = "images_demo"


@contextlib.contextmanager
def catalog_entries(kind: str) -> Iterator[tuple[list[dict[str, Any]], str]]:
    """The catalog entries for `kind` and a line saying where the images come from."""
    if kind == "web":
        yield samples.web(), "the seed notebook's Wikimedia images (needs internet)"
        return
    entries = samples.bundled()
    if kind == "file":
        yield (
            [dict(e, image_url=samples.path(e["filename"]).as_uri()) for e in entries],
            f"{len(entries)} bundled sample images as file:// URLs",
        )
        return
    if kind != "bundled":
        raise ValueError(f"unknown catalog {kind!r}: use one of {', '.join(CATALOGS)}")
    from ..testing.http_server import LoopbackHTTPServer

    with LoopbackHTTPServer(samples.FOLDER) as server:
        yield (
            [dict(e, image_url=server.url_for(e["filename"])) for e in entries],
            f"{len(entries)} bundled sample images served over HTTP at {server.url}",
        )


def blocks(
    output: Path, use_config: bool, config_database: bool = False
) -> tuple[DataJointDatabase | None, list[DataJointStore]]:
    """The embedded default in `output`; None/[] where dj.config is used as it is instead (the
    database with `config_database` or `use_config`, the stores with `use_config`)."""
    database = None
    if not (use_config or config_database):
        database = DataJointDatabase(backend="sqlite", sqlite_path=str(output / "pipeline.sqlite"))
    if use_config:
        missing = [name for name in ("shared", "local") if name not in config["stores"]]
        if missing:
            raise ConfigError(f"dj.config['stores'] lacks {' and '.join(missing)} (needed by the demo)")
        return database, []
    stores = [
        DataJointStore(name=name, protocol="file", location=str(output / "stores" / name))
        for name in ("shared", "local")
    ]
    return database, stores


def start_prefect_api() -> tuple[str, float]:
    """Connect to the Prefect API, starting the ephemeral one if none is configured; returns
    (description, seconds). Done up front so that its start-up time is reported on its own."""
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, PREFECT_HOME

    started = time.perf_counter()
    configured = PREFECT_API_URL.value()
    with get_client(sync_client=True) as client:
        client.hello().raise_for_status()
        url = client.api_url
    seconds = time.perf_counter() - started
    if configured:
        return f"Prefect API at {url}", seconds
    return f"Prefect's ephemeral API (home {PREFECT_HOME.value()})", seconds


def run_demo(
    output: str | Path = "demo-output",
    *,
    catalog: str = "bundled",
    schema_name: str = DEFAULT_SCHEMA,
    use_config: bool = False,
    config_database: bool = False,
    allow_errors: bool = False,
    echo: Any = print,
) -> dict[str, Any]:
    """Run the main job and print what it did and where everything is; returns the summary."""
    from .image_pipeline import image_pipeline

    began = time.perf_counter()
    folder = Path(output).expanduser().resolve()
    folder.mkdir(parents=True, exist_ok=True)
    database, stores = blocks(folder, use_config, config_database)
    echo(f"dj-flows demo: the image pipeline in schema {schema_name!r}, outputs in {folder}")
    echo("Starting Prefect (the first run creates its database: 15-60 s) ...")
    api, api_seconds = start_prefect_api()
    echo(f"  {api}, ready in {api_seconds:.1f} s")
    with catalog_entries(catalog) as (entries, source):
        echo(f"Images: {source}")
        flow_began = time.perf_counter()
        summary = image_pipeline(
            schema_name=schema_name,
            catalog=entries,
            output=str(folder),
            allow_errors=True,  # report failures below with everything else, then fail

            database=database,
            stores=stores,
        )
        flow_seconds = time.perf_counter() - flow_began
    summary["timings"] = {
        "prefect_api_seconds": round(api_seconds, 2),
        "flow_seconds": round(flow_seconds, 2),
        "total_seconds": round(time.perf_counter() - began, 2),
    }
    for line in report_lines(summary):
        echo(line)
    if summary["errors"] and not allow_errors:
        raise PopulateError(
            f"{len(summary['errors'])} images could not be processed (listed above); the rest "
            "is in place, and a new run retries only what is missing"
        )
    return summary


def report_lines(summary: dict[str, Any]) -> list[str]:
    """What was made, where everything is, how long it took."""
    where = summary["where"]
    made = sum(r["made"] for r in summary["populate"])
    lines = ["", "What this run did:"]
    lines += [f"  {line}" for line in summary["message"].splitlines()]
    if made == 0 and not summary["errors"]:
        lines.append("  -> nothing was made twice: every table was already populated")
    if summary["errors"]:
        lines += ["", f"Failures ({len(summary['errors'])}, nothing inserted for them):"]
        lines += [f"  {e['key']}: {e['error']}" for e in summary["errors"]]
    lines += ["", "Where everything is:"]
    lines.append(f"  database        {where['database']}")
    lines.append(f"  store 'shared'  {where['stores']['shared']}  (attached original files)")
    lines.append(f"  store 'local'   {where['stores']['local']}  (decoded slide arrays)")
    parquet = summary.get("parquet") or {}
    rows = f", {parquet['rows']} rows" if parquet.get("rows") is not None else ""
    lines.append(f"  Parquet         {where['parquet']}{_size(where['parquet'], rows)}")
    sheet = summary.get("contact_sheet") or {}
    drawn = f", {sheet['slides']} slides" if sheet.get("slides") else ""
    lines.append(f"  contact sheet   {where['contact_sheet']}{_size(where['contact_sheet'], drawn)}")
    timings = summary["timings"]
    lines += [
        "",
        f"Timings: Prefect API {timings['prefect_api_seconds']:.1f} s, "
        f"flow {timings['flow_seconds']:.1f} s, total {timings['total_seconds']:.1f} s",
    ]
    return lines


def _size(path: str, extra: str = "") -> str:
    file = Path(path)
    if "://" in path or not file.is_file():
        return f"  (not written{extra})" if "://" not in path else ""
    size = file.stat().st_size
    return f"  ({size / 1024:.1f} KB{extra})" if size >= 1024 else f"  ({size} B{extra})"
