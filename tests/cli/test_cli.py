"""The `dj-flows` command: help for every command, status/diagram on a real schema, the Prefect
commands in-process under the test harness, and the demo as a user runs it (a fresh process, a
fresh Prefect home, twice)."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from PIL import Image

import dj_flows as dj
from dj_flows.cli import main
from dj_flows.connection import CONNECTION_KEYS
from tests.flows import diamond_pipeline

COMMANDS = {
    "demo": "--output",
    "populate": "--chunk-size",
    "gc": "--grace-seconds",
    "export": "--url",
    "diagram": "--schema",
    "status": "--json",
}


@pytest.fixture
def restore_config(monkeypatch):
    """The CLI writes dj.config, the dj_flows log level and Prefect's environment: undo it."""
    for name in ("PREFECT_LOGGING_LEVEL", "PREFECT_SERVER_ANALYTICS_ENABLED",
                 "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"):
        monkeypatch.setenv(name, os.environ.get(name, "WARNING" if "LOGGING" in name else "x"))
    saved = {key: dj.config[key] for key in (*CONNECTION_KEYS, "stores", "loglevel", "safemode")}
    level = logging.getLogger("dj_flows").level
    yield
    for key, value in saved.items():
        dj.config[key] = value
    logging.getLogger("dj_flows").setLevel(level)


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([command, "--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    assert text.startswith(f"usage: dj-flows {command}") and COMMANDS[command] in text


def test_top_level_help_lists_the_commands(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    assert all(command in text for command in COMMANDS)


@pytest.fixture
def diamond(tmp_path, restore_config):
    """A SQLite schema of the diamond pipeline with Broken populated under job reservation."""
    path = str(tmp_path / "cli.sqlite")
    dj.config["database.sqlite_path"] = path
    dj.config["database.backend"] = "sqlite"
    tables = diamond_pipeline.activate("cli_diamond")
    diamond_pipeline.CALLS.clear()
    tables["Broken"].populate(reserve_jobs=True, suppress_errors=True)
    return path


def test_status_counts_remaining_and_errors(diamond, capsys):
    assert main(["status", "--schema", "cli_diamond", "--sqlite-path", diamond, "--json"]) == 0
    rows = {row["table"]: row for row in json.loads(capsys.readouterr().out)}
    assert set(rows) == {"Left", "Right", "Both", "Flaky", "Broken"}
    assert (rows["Broken"]["total"], rows["Broken"]["done"], rows["Broken"]["error"]) == (2, 1, 1)
    assert (rows["Left"]["remaining"], rows["Left"]["reserved"]) == (2, 0)
    assert rows["Both"]["total"] == 0  # its parents are empty
    assert main(["status", "--schema", "cli_diamond", "--sqlite-path", diamond]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["table", "tier", "total", "done", "remaining", "reserved",
                                "expired", "error", "ignore"]
    assert lines[-1].split()[0] == "Both"  # after its parents
    assert "Broken computed 2 1 1 0 0 1 0" in [" ".join(line.split()) for line in lines]


def test_status_of_a_missing_schema_is_a_clear_error(diamond, capsys):
    assert main(["status", "--schema", "no_such_schema", "--sqlite-path", diamond]) == 1
    assert "schema 'no_such_schema' does not exist" in capsys.readouterr().err


def test_diagram_prints_mermaid_or_writes_a_file(diamond, tmp_path, capsys):
    assert main(["diagram", "--schema", "cli_diamond", "--sqlite-path", diamond]) == 0
    text = capsys.readouterr().out
    assert text.startswith("flowchart TD") and '"Both"' in text and "-->" in text
    target = tmp_path / "d.mmd"
    assert main(["diagram", "--schema", "cli_diamond", "--sqlite-path", diamond, "--output", str(target)]) == 0
    assert target.read_text() == text


@pytest.mark.usefixtures("prefect_harness")
def test_populate_command_runs_the_flow(diamond, capsys):
    args = ["populate", diamond_pipeline.__name__, "--schema", "cli_diamond", "--sqlite-path", diamond]
    assert main([*args, "--table", "Flaky"]) == 0
    assert "Flaky: made 2, already made 0, failed 0, remaining 0" in capsys.readouterr().out
    assert main([*args, "--table", "Flaky", "--table", "Broken", "--restriction", '{"source_id": 2}']) == 1
    captured = capsys.readouterr()
    assert "PopulateError" in captured.err and "source 2 is corrupt" in captured.err


@pytest.mark.usefixtures("prefect_harness")
def test_demo_then_export_and_gc_commands(tmp_path, restore_config, capsys):
    output = tmp_path / "out"
    assert main(["demo", "--output", str(output), "--catalog", "file", "--schema", "cli_demo"]) == 0
    text = capsys.readouterr().out
    assert "4 bundled sample images as file:// URLs" in text
    assert "OriginalFile: made 4 of 4" in text and "Slide: made 4 of 4" in text
    assert f"Parquet         {output / 'slides.parquet'}" in text
    assert (output / "contact_sheet.png").is_file() and (output / "stores" / "shared").is_dir()

    conf = tmp_path / "conf.json"
    conf.write_text(json.dumps({
        "database.backend": "sqlite",
        "database.sqlite_path": str(output / "pipeline.sqlite"),
        "stores": {n: {"protocol": "file", "location": str(output / "stores" / n)} for n in ("shared", "local")},
    }))
    url = tmp_path / "names.parquet"
    assert main(["export", "--config", str(conf), "--schema", "cli_demo", "--table", "WebImage",
                 "--attribute", "image_name", "--url", str(url)]) == 0
    assert f"wrote 4 rows to {url}" in capsys.readouterr().out
    assert sorted(pq.read_table(url).column("image_name").to_pylist()) == [
        "granule", "purkinje", "pyramidal", "striatal"]

    assert main(["gc", "--config", str(conf), "--schema", "cli_demo", "--grace-seconds", "0"]) == 0
    text = capsys.readouterr().out
    for store in ("shared", "local"):  # every object the demo stored is in use
        assert f"store {store!r} of schema 'cli_demo' (grace 0 s): would remove 0 objects" in text


@pytest.mark.slow
def test_demo_from_a_fresh_process_twice(tmp_path):
    """What README's first command does after set-up: a new process, no Prefect home yet."""
    executable = Path(sys.executable).with_name("dj-flows")
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "DJ_"))}
    environment["HOME"] = str(tmp_path / "home")  # nothing from the user's ~/.prefect either

    def demo() -> str:
        done = subprocess.run([str(executable), "demo"], cwd=tmp_path, env=environment,
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    first = demo()
    output = tmp_path / "demo-output"
    assert "OriginalFile: made 4 of 4" in first and "Slide: made 4 of 4" in first
    assert f"Prefect's ephemeral API (home {output / '.prefect'})" in first
    for name in ("pipeline.sqlite", "slides.parquet", "contact_sheet.png"):
        assert f"{output / name}" in first
    with Image.open(output / "contact_sheet.png") as sheet:
        assert sheet.format == "PNG"
    assert pq.read_table(output / "slides.parquet").num_rows == 4
    assert not (tmp_path / "home").exists()

    second = demo()
    assert "OriginalFile: nothing to do, all 4 already made (skipped)" in second
    assert "nothing was made twice" in second


@pytest.mark.usefixtures("prefect_harness")
def test_demo_reports_failures_with_everything_else_and_exits_1(tmp_path, restore_config, monkeypatch, capsys):
    import contextlib

    from dj_flows.flows import demo
    from dj_flows.samples import bundled, path

    @contextlib.contextmanager
    def one_missing(kind):
        entries = [dict(e, image_url=path(e["filename"]).as_uri()) for e in bundled()[:2]]
        entries[1]["image_url"] = (tmp_path / "gone.jpg").as_uri()
        yield entries, "two images, one of them missing"

    monkeypatch.setattr(demo, "catalog_entries", one_missing)
    assert main(["demo", "--output", str(tmp_path / "out"), "--schema", "cli_fail"]) == 1
    captured = capsys.readouterr()
    assert "OriginalFile: made 1 of 2, 1 FAILED" in captured.out
    assert "Failures (1, nothing inserted for them):" in captured.out
    assert "{'image_number': 1}: DownloadError: download of file://" in captured.out
    assert "contact sheet   " in captured.out and "1 slides" in captured.out
    assert "1 images could not be processed" in captured.err
