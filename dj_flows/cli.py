"""The `dj-flows` command: the main job (demo) and the pipeline operations as Prefect flows.

    dj-flows demo      run the image pipeline offline on the embedded default; print where it went
    dj-flows populate  populate a schema's auto-populated tables (flow: independent tables at once)
    dj-flows gc        garbage-collect a schema's external stores (dry run unless --delete)
    dj-flows export    export a join of tables to Parquet
    dj-flows diagram   the schema's dependency diagram (Mermaid text, or a file)
    dj-flows status    per table: total, remaining, reserved, error counts

Database and stores come from the same sources as the engine (defaults < dj_local_conf.json or
--config/DJ_CONFIG < DJ_* variables < the options here). The password is read only from DJ_PASS
or the config file, never from the command line, where other users could see it.

Prefect is imported only after its environment is prepared: analytics off (the machine may be
offline), a generous start-up timeout for the ephemeral API, and, for the demo when no Prefect
home or API is configured, a Prefect home inside the output folder, so a first run on a fresh
machine touches nothing outside it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

PREFECT_DEFAULTS = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "300",
}


# -- environment --------------------------------------------------------------------------------
def prepare_prefect(home: Path | None = None, quiet: bool = False) -> None:
    """Set Prefect's environment before it is imported (it reads it once, at import)."""
    for name, value in PREFECT_DEFAULTS.items():
        os.environ.setdefault(name, value)
    if quiet:
        os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    if "prefect" in sys.modules:  # already configured by whoever imported it (e.g. tests)
        return
    if home is not None and not (os.environ.get("PREFECT_HOME") or os.environ.get("PREFECT_API_URL")):
        home.mkdir(parents=True, exist_ok=True)
        os.environ["PREFECT_HOME"] = str(home)


def configure_engine(args: argparse.Namespace) -> None:
    """Apply --config and the database options to dj.config (env still beats the file)."""
    from .settings import config

    if getattr(args, "config", None):
        config.load(args.config)
        config.load_environment()
    for option, key in (
        ("backend", "database.backend"),
        ("sqlite_path", "database.sqlite_path"),
        ("host", "database.host"),
        ("port", "database.port"),
        ("user", "database.user"),
    ):
        value = getattr(args, option, None)
        if value is not None:
            config[key] = value


def _json(text: str | None, option: str) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        if text.lstrip().startswith(("{", "[")):
            raise SystemExit(f"{option}: not valid JSON: {text}") from None
        return text  # an SQL restriction such as "image_number > 1"


# -- commands -----------------------------------------------------------------------------------
def cmd_demo(args: argparse.Namespace) -> int:
    output = Path(args.output).expanduser().resolve()
    prepare_prefect(output / ".prefect", quiet=not args.verbose)
    configure_engine(args)
    if not args.verbose:
        import logging

        logging.getLogger("dj_flows").setLevel(logging.WARNING)
    from .flows.demo import run_demo

    run_demo(
        output,
        catalog=args.catalog,
        schema_name=args.schema,
        use_config=args.use_config,
        config_database=any(
            getattr(args, o) is not None
            for o in ("config", "backend", "sqlite_path", "host", "port", "user")
        ),
        allow_errors=args.allow_errors,
    )
    return 0


def cmd_populate(args: argparse.Namespace) -> int:
    prepare_prefect(quiet=not args.verbose)
    configure_engine(args)
    from .flows.populate import populate_flow

    reports = populate_flow(
        pipeline=args.pipeline,
        schema_name=args.schema,
        tables=args.table or None,
        restriction=_json(args.restriction, "--restriction"),
        chunk_size=args.chunk_size,
        reserve_jobs=args.reserve_jobs,
        allow_errors=args.allow_errors,
    )
    for report in reports:
        if "made" in report:
            print(
                f"{report['class_name']}: made {report['made']}, already made {report['existing']}, "
                f"failed {len(report['errors'])}, remaining {report['remaining']}"
            )
        else:
            print(f"{report['class_name']}: {report['state']} {report['message']}")
    return 0


def cmd_gc(args: argparse.Namespace) -> int:
    prepare_prefect(quiet=not args.verbose)
    configure_engine(args)
    from .flows.external_gc import external_gc_flow

    reports = external_gc_flow(
        schema_name=args.schema,
        store_names=args.store or None,
        grace_seconds=args.grace_seconds,
        dry_run=not args.delete,
        delete_orphans=args.orphans,
        delete_files=not args.keep_files,
        limit=args.limit,
    )
    print(json.dumps(reports, indent=2) if args.json else _gc_text(reports, args.delete))
    return 0


def _gc_text(reports: list[dict], deleted: bool) -> str:
    if not reports:
        return "no external stores in use"
    text = "\n".join(r["text"] for r in reports)
    if not deleted and any(r["unused"]["count"] for r in reports):
        text += "\n(a dry run: nothing was removed; run with --delete to remove them)"
    return text


def cmd_export(args: argparse.Namespace) -> int:
    prepare_prefect(quiet=not args.verbose)
    configure_engine(args)
    from .flows.export import export_flow

    report = export_flow(
        schema_name=args.schema,
        tables=args.table,
        url=args.url,
        restriction=_json(args.restriction, "--restriction"),
        attributes=args.attribute or None,
    )
    print(f"wrote {report.get('rows')} rows to {report.get('url')}")
    return 0


def cmd_diagram(args: argparse.Namespace) -> int:
    configure_engine(args)
    from .diagram import Diagram
    from .schema import Schema
    from .settings import config

    config["loglevel"] = "WARNING"
    schema = Schema(args.schema, create_schema=False, create_tables=False)
    diagram = Diagram(schema)
    if args.output:
        diagram.save(args.output, format=args.format)
        print(f"wrote {args.output}")
    else:
        print(diagram.make_mermaid(), end="")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    configure_engine(args)
    from .pipelines.status import schema_status

    rows = schema_status(args.schema)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print(f"schema {args.schema!r} has no auto-populated tables")
        return 0
    columns = ("table", "tier", "total", "done", "remaining", "reserved", "expired", "error", "ignore")
    widths = {c: max(len(c), *(len(str(r[c])) for r in rows)) for c in columns}
    print("  ".join(c.ljust(widths[c]) for c in columns))
    for row in rows:
        print("  ".join(str(row[c]).ljust(widths[c]) for c in columns))
    return 0


# -- parser -------------------------------------------------------------------------------------
def _database_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("database (default: dj.config from file and DJ_* variables)")
    group.add_argument("--config", help="a dj_local_conf.json-style file (like DJ_CONFIG)")
    group.add_argument("--backend", choices=("sqlite", "mysql"), help="database backend")
    group.add_argument("--sqlite-path", help="SQLite database file")
    group.add_argument("--host", help="MySQL host")
    group.add_argument("--port", type=int, help="MySQL port")
    group.add_argument("--user", help="MySQL user (the password comes from DJ_PASS or --config)")


def build_parser() -> argparse.ArgumentParser:
    from .version import __version__

    parser = argparse.ArgumentParser(
        prog="dj-flows",
        description="DataJoint pipelines run as Prefect flows (SQLite or MySQL; folder or S3 stores).",
    )
    parser.add_argument("--version", action="version", version=f"dj-flows {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = commands.add_parser(
        "demo", help="run the image pipeline offline and print where everything went",
        description="The main job: WebImage -> OriginalFile (download, attach@shared) -> Slide "
        "(decode, blob@local), then a contact-sheet PNG and a Parquet export. By default on the "
        "embedded default in the output folder: SQLite file, folder stores, Prefect's ephemeral "
        "API. A second run makes nothing twice.",
    )
    demo.add_argument("--output", default="demo-output", help="output folder (default: ./demo-output)")
    demo.add_argument("--catalog", default="bundled", choices=("bundled", "file", "web"),
                      help="bundled samples over loopback HTTP (default), as file:// URLs, or the "
                      "seed's Wikimedia URLs (online only)")
    demo.add_argument("--schema", default="images_demo", help="schema name (default: images_demo)")
    demo.add_argument("--use-config", action="store_true",
                      help="use dj.config's database and stores 'shared'/'local' instead of the "
                      "embedded default (database options below imply it for the database)")
    demo.add_argument("--allow-errors", action="store_true", help="do not fail on make() errors")
    demo.add_argument("--verbose", action="store_true", help="show Prefect's and the engine's logs")
    _database_options(demo)
    demo.set_defaults(run=cmd_demo)

    populate = commands.add_parser(
        "populate", help="populate the auto-populated tables of a schema (as a Prefect flow)",
        description="Populate every Imported/Computed table of PIPELINE in SCHEMA in dependency "
        "order; tables that do not depend on each other run at the same time.",
    )
    populate.add_argument("pipeline", help="module with the table classes, e.g. dj_flows.pipelines.images")
    populate.add_argument("--schema", required=True, help="schema name")
    populate.add_argument("--table", action="append", help="only this table (repeatable)")
    populate.add_argument("--restriction", help="JSON dict/list of keys, or an SQL condition")
    populate.add_argument("--chunk-size", type=int, default=25, help="keys per chunk (default 25)")
    populate.add_argument("--reserve-jobs", action="store_true", help="reserve keys in ~jobs")
    populate.add_argument("--allow-errors", action="store_true", help="do not fail on make() errors")
    populate.add_argument("--verbose", action="store_true", help="show Prefect's logs")
    _database_options(populate)
    populate.set_defaults(run=cmd_populate)

    gc = commands.add_parser(
        "gc", help="garbage-collect external stores (dry run unless --delete)",
        description="Report (or with --delete remove) objects of a schema's external stores "
        "that no row uses and that are older than the grace period.",
    )
    gc.add_argument("--schema", required=True, help="schema name")
    gc.add_argument("--store", action="append", help="only this store (repeatable)")
    gc.add_argument("--grace-seconds", type=int, help="minimum age of an unused object")
    gc.add_argument("--delete", action="store_true", help="remove (default: report only)")
    gc.add_argument("--orphans", action="store_true",
                    help="also objects no tracking row knows (scanned; removed with --delete)")
    gc.add_argument("--keep-files", action="store_true", help="remove tracking rows only")
    gc.add_argument("--limit", type=int, help="at most this many objects")
    gc.add_argument("--json", action="store_true", help="print the JSON reports")
    gc.add_argument("--verbose", action="store_true", help="show Prefect's logs")
    _database_options(gc)
    gc.set_defaults(run=cmd_gc)

    export = commands.add_parser(
        "export", help="export a join of tables to Parquet",
        description="Write the join of the --table tables (restricted, projected) to a Parquet "
        "file at URL (a path or any fsspec URL such as s3://bucket/key.parquet).",
    )
    export.add_argument("--schema", required=True, help="schema name")
    export.add_argument("--table", action="append", required=True, help="table (repeatable: joined)")
    export.add_argument("--url", required=True, help="output path or fsspec URL")
    export.add_argument("--restriction", help="JSON dict/list of keys, or an SQL condition")
    export.add_argument("--attribute", action="append", help="keep only these attributes")
    export.add_argument("--verbose", action="store_true", help="show Prefect's logs")
    _database_options(export)
    export.set_defaults(run=cmd_export)

    diagram = commands.add_parser(
        "diagram", help="print or save the schema's dependency diagram",
        description="Print the diagram as Mermaid text, or save it (.mmd, .md, .dot; .svg/.png "
        "need Graphviz).",
    )
    diagram.add_argument("--schema", required=True, help="schema name")
    diagram.add_argument("--output", help="file to write (format from its suffix)")
    diagram.add_argument("--format", help="override the format (mmd, md, dot, svg, png, pdf)")
    _database_options(diagram)
    diagram.set_defaults(run=cmd_diagram)

    status = commands.add_parser(
        "status", help="per table: total, remaining, reserved and error counts",
        description="For every Imported/Computed table of the schema: keys in its key source, "
        "made, remaining, and its ~jobs rows by status.",
    )
    status.add_argument("--schema", required=True, help="schema name")
    status.add_argument("--json", action="store_true", help="print JSON")
    _database_options(status)
    status.set_defaults(run=cmd_status)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from .errors import DataJointError

    try:
        return args.run(args)
    except DataJointError as error:
        print(f"dj-flows {args.command}: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
