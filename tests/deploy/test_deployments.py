"""deployments/prefect.yaml on a real Prefect server: `prefect deploy --all`, the schedules the
scheduler plans from it, and a process worker that runs one scheduled nightly GC run to completion
against an SQLite database and a folder store.

The server runs in a subprocess on a free loopback port with its own PREFECT_HOME; every Prefect
command runs in a subprocess against it (see prefect_server.py). The nightly GC is due at 03:00 in
the lab's timezone, so the test takes the first run the scheduler created for it and moves its
start to now (what a user does with "start now" in the UI), then a worker polling only the
`maintenance` queue runs it with `--run-once` and exits when it is done.
"""

from __future__ import annotations

import datetime
import json
import subprocess
import sys
import time
import uuid
from zoneinfo import ZoneInfo

import pytest
import yaml

from tests.deploy.prefect_server import BIN, ROOT, PrefectServer, stop
from tests.deploy.site import DATABASE_BLOCK, STORE_BLOCKS, objects
from tests.support.backends import mysql_settings, require_mysql

pytestmark = pytest.mark.timeout(480)

PREFECT_YAML = ROOT / "deployments" / "prefect.yaml"
SCHEMA = "lab_images"
POOL = "dj-flows"
TIMEZONE = ZoneInfo("America/Chicago")
DEPLOYMENTS = {
    ("image-pipeline", "on-demand"),
    ("populate", "every-10-minutes"),
    ("populate", "on-dask"),
    ("external-gc", "nightly"),
    ("export-parquet", "hourly"),
}
WORKER_SECONDS = 240


def utc(text: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """The server, the lab's site (database, store, blocks) and the output of `prefect deploy`."""
    folder = tmp_path_factory.mktemp("lab")
    server = PrefectServer(folder / "prefect-home").launch()
    # the site (database, store, then pool and blocks once the API answers) is made meanwhile
    making = server.popen("-m", "tests.deploy.site", str(folder), SCHEMA, POOL)
    try:
        server.wait_healthy()
        out, err = making.communicate(timeout=240)
        assert making.returncode == 0, f"making the site failed:\n{out}{err}"
        site = json.loads(out.splitlines()[-1])
        deploy_env = {
            "DJ_FLOWS_SCHEMA": SCHEMA,
            "DJ_FLOWS_EXPORT_URL": str(folder / "export" / "slides.parquet"),
            "DJ_FLOWS_OUTPUT": str(folder / "output"),
        }
        deployed = server.cli(
            "--no-prompt", "deploy", "--all", "--prefect-file", str(PREFECT_YAML), env=deploy_env
        )
        print(f"\n$ prefect deploy --all --prefect-file deployments/prefect.yaml\n{deployed}")
        yield {"server": server, "folder": folder, "site": site, "deploy_output": deployed}
    finally:
        stop(making)
        server.stop()


def deployment(server: PrefectServer, flow: str, name: str) -> dict:
    return server.api("GET", f"/deployments/name/{flow}/{name}")


def runs_of(server: PrefectServer, deployment_id: str, states: list[str] | None = None) -> list:
    body: dict = {"deployments": {"id": {"any_": [deployment_id]}},
                  "sort": "EXPECTED_START_TIME_ASC", "limit": 50}
    if states:
        body["flow_runs"] = {"state": {"type": {"any_": states}}}
    return server.api("POST", "/flow_runs/filter", body)


def scheduled_runs(server: PrefectServer, deployment_id: str, at_least: int) -> list:
    """The runs the scheduler service planned for a deployment (it runs every 2 s here)."""
    deadline = time.monotonic() + 90
    while True:
        runs = runs_of(server, deployment_id, ["SCHEDULED"])
        if len(runs) >= at_least or time.monotonic() > deadline:
            return runs
        time.sleep(1)


def test_the_file_declares_every_flow_with_blocks_by_name():
    config = yaml.safe_load(PREFECT_YAML.read_text())
    (pull,) = config["pull"]
    assert pull["prefect.deployments.steps.set_working_directory"]["directory"] == "{{ $DJ_FLOWS_HOME }}"
    entrypoints = {d["entrypoint"] for d in config["deployments"]}
    for entrypoint in entrypoints:
        path, name = entrypoint.split(":")
        assert (ROOT / path).is_file(), entrypoint
        assert f"{name} =" in (ROOT / path).read_text() or f"import {name}" in (ROOT / path).read_text()
    for spec in config["deployments"]:
        assert spec["parameters"]["database"] == DATABASE_BLOCK
        assert spec["parameters"]["stores"] == list(STORE_BLOCKS.values())
        assert spec["work_pool"]["name"] == POOL
        for schedule in spec.get("schedules", []):
            assert schedule["timezone"] == "America/Chicago"


def test_deploy_all_creates_the_deployments(lab):
    server, output = lab["server"], lab["deploy_output"]
    for flow, name in DEPLOYMENTS:
        assert f"Deployment '{flow}/{name}' successfully created" in output
        found = deployment(server, flow, name)
        assert found["work_pool_name"] == POOL
        assert found["parameters"]["database"] == DATABASE_BLOCK
        assert found["parameters"]["stores"] == ["dj-flows-shared", "dj-flows-local"]
        assert "{{" not in json.dumps(found["parameters"])  # placeholders resolved at deploy
        assert found["pull_steps"] == [{"prefect.deployments.steps.set_working_directory": {
            "directory": "{{ $DJ_FLOWS_HOME }}"}}]  # resolved by the worker, at run time
        assert "dj-flows" in found["tags"]
    gc = deployment(server, "external-gc", "nightly")
    assert gc["work_queue_name"] == "maintenance"
    assert gc["global_concurrency_limit"]["limit"] == 1
    assert gc["concurrency_options"]["collision_strategy"] == "ENQUEUE"
    assert gc["parameters"] == {
        "schema_name": SCHEMA, "dry_run": False, "delete_files": True,
        "database": DATABASE_BLOCK, "stores": ["dj-flows-shared", "dj-flows-local"],
    }
    populate = deployment(server, "populate", "every-10-minutes")
    assert populate["global_concurrency_limit"]["limit"] == 1
    assert populate["concurrency_options"]["collision_strategy"] == "CANCEL_NEW"
    assert populate["parameters"]["pipeline"] == "dj_flows.pipelines.images"
    assert populate["parameters"]["reserve_jobs"] is True
    dask = deployment(server, "populate", "on-dask")
    assert dask["job_variables"] == {"env": {"DJ_FLOWS_TASK_RUNNER": "dask"}}
    assert dask["parameters"]["workers"] == 4
    pipeline = deployment(server, "image-pipeline", "on-demand")
    assert pipeline["parameters"]["output"] == str(lab["folder"] / "output" / "image-pipeline")
    export = deployment(server, "export-parquet", "hourly")
    assert export["parameters"]["url"] == str(lab["folder"] / "export" / "slides.parquet")
    assert export["parameters"]["tables"] == ["WebImage", "Slide"]
    # the populate -> export chain: an automation on the populate flow's event
    automations = server.api("POST", "/automations/filter", {})
    (chain,) = [a for a in automations if a["name"] == "export-after-new-slides"]
    assert chain["trigger"]["match"] == {
        "prefect.resource.id": f"dj-flows.table.{SCHEMA}.Slide", "dj-flows.changed": "true"}
    assert chain["trigger"]["expect"] == ["dj-flows.populate.completed"]
    assert chain["actions"][0]["deployment_id"] == export["id"]


def test_scheduler_plans_runs_from_the_schedules(lab):
    server = lab["server"]
    gc = scheduled_runs(server, deployment(server, "external-gc", "nightly")["id"], 2)
    starts = [utc(r["expected_start_time"]).astimezone(TIMEZONE) for r in gc]
    assert len(starts) >= 2
    assert all((s.hour, s.minute) == (3, 0) for s in starts), starts  # 03:00 lab time
    assert all(r["auto_scheduled"] and r["work_queue_name"] == "maintenance" for r in gc)
    assert all(r["parameters"]["database"] == DATABASE_BLOCK for r in gc)

    populate = scheduled_runs(server, deployment(server, "populate", "every-10-minutes")["id"], 3)
    times = [utc(r["expected_start_time"]) for r in populate]
    assert len(times) >= 3
    assert {(b - a).total_seconds() for a, b in zip(times, times[1:])} == {600.0}
    assert all(t.minute % 10 == 0 and t.second == 0 for t in times)

    export = scheduled_runs(server, deployment(server, "export-parquet", "hourly")["id"], 3)
    times = [utc(r["expected_start_time"]) for r in export]
    assert {(b - a).total_seconds() for a, b in zip(times, times[1:])} == {3600.0}
    assert all(t.minute == 0 for t in times)
    # nothing is scheduled for the on-demand deployments
    for flow, name in (("image-pipeline", "on-demand"), ("populate", "on-dask")):
        assert runs_of(server, deployment(server, flow, name)["id"]) == []


def test_worker_runs_one_scheduled_gc_run(lab):
    server, folder, site = lab["server"], lab["folder"], lab["site"]
    store = folder / "stores" / "shared"
    assert set(site["orphan"]) | set(site["live"]) <= objects(store)
    gc_id = deployment(server, "external-gc", "nightly")["id"]
    planned = scheduled_runs(server, gc_id, 2)
    first, later = planned[0], planned[1:]
    now = datetime.datetime.now(datetime.timezone.utc).isoformat()
    server.api("POST", f"/flow_runs/{first['id']}/set_state", {
        "state": {"type": "SCHEDULED", "name": "Scheduled", "state_details": {"scheduled_time": now}},
        "force": True,
    })
    # the worker's own dj-flows config: a short grace period, so the object unused since the
    # site was made counts as old enough (the lab default is an hour)
    config = folder / "worker_dj_conf.json"
    config.write_text(json.dumps({"gc.grace_seconds": 1}))
    time.sleep(1.5)
    log = folder / "worker.log"
    with open(log, "wb") as out:
        worker = subprocess.Popen(
            [str(BIN / "prefect"), "worker", "start", "--pool", POOL, "--type", "process",
             "--work-queue", "maintenance", "--run-once", "--prefetch-seconds", "5"],
            cwd=folder, env={**server.env, "DJ_FLOWS_HOME": str(ROOT), "DJ_CONFIG": str(config)},
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )
    try:
        worker.wait(timeout=WORKER_SECONDS)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the worker did not finish in {WORKER_SECONDS} s:\n{log.read_text()[-4000:]}")
    finally:
        stop(worker)
    output = log.read_text()
    print(f"\n$ prefect worker start --pool {POOL} --type process --work-queue maintenance "
          f"--run-once\n{output}")
    assert worker.returncode == 0, output

    run = server.api("GET", f"/flow_runs/{first['id']}")
    assert run["state_type"] == "COMPLETED", run["state"]
    assert run["name"] == f"gc-{SCHEMA}"
    assert run["auto_scheduled"] is True
    # exactly that run: the later nightly runs are still waiting for their night
    assert [r["id"] for r in runs_of(server, gc_id, ["COMPLETED"])] == [first["id"]]
    still = {r["id"] for r in runs_of(server, gc_id, ["SCHEDULED"])}
    assert {r["id"] for r in later} <= still

    # the GC itself: the unused object is gone, the referenced ones are kept
    left = objects(store)
    assert not set(site["orphan"]) & left
    assert set(site["live"]) <= left

    # what the Prefect UI shows: task run with tags, markdown artifact, completion event
    tasks = server.api("POST", "/task_runs/filter",
                       {"flow_runs": {"id": {"any_": [first["id"]]}}})
    assert [(t["name"], sorted(t["tags"]), t["state_type"]) for t in tasks] == [
        (f"gc-{SCHEMA}-shared", [f"schema:{SCHEMA}", "store:shared"], "COMPLETED")]
    artifacts = server.api("POST", "/artifacts/filter",
                           {"artifacts": {"flow_run_id": {"any_": [first["id"]]}}})
    assert [(a["key"], a["type"]) for a in artifacts] == [(f"gc-{SCHEMA.replace('_', '-')}-shared", "markdown")]
    assert "removed 1 of 1 unused objects" in artifacts[0]["data"]
    event = wait_for_event(server, "dj-flows.gc.completed")
    assert event["resource"]["prefect.resource.id"] == f"dj-flows.store.{SCHEMA}.shared"
    assert event["payload"]["deleted_rows"] == 1 and event["payload"]["dry_run"] is False
    related = {r["prefect.resource.role"]: r["prefect.resource.id"] for r in event["related"]}
    assert related["flow-run"] == f"prefect.flow-run.{first['id']}"
    assert related["deployment"] == f"prefect.deployment.{gc_id}"


def wait_for_event(server: PrefectServer, name: str, timeout: float = 30) -> dict:
    """The first stored event called `name` (the server persists events in batches)."""
    deadline = time.monotonic() + timeout
    while True:
        found = server.api("POST", "/events/filter",
                           {"filter": {"event": {"name": [name]}}, "limit": 10})["events"]
        if found:
            return found[0]
        if time.monotonic() > deadline:
            raise AssertionError(f"no {name} event within {timeout} s")
        time.sleep(1)


def test_compose_setup_script_saves_blocks_that_work(lab, s3_server):
    """docker/setup_site.py (the compose stack's `setup` service) against this server, MariaDB and
    the S3 test server: it creates the bucket and the work pool if missing and saves the blocks
    the deployments name; a worker's process can then use them. Runs last: it replaces the GC
    test's blocks."""
    require_mysql()
    server = lab["server"]
    settings = mysql_settings()
    bucket = f"setup-{uuid.uuid4().hex[:10]}"
    environment = {
        "DJ_HOST": settings["database.host"], "DJ_PORT": str(settings["database.port"]),
        "DJ_USER": settings["database.user"], "DJ_PASS": settings["database.password"],
        "DJ_FLOWS_S3_ENDPOINT": s3_server.endpoint, "DJ_FLOWS_S3_BUCKET": bucket,
        "DJ_FLOWS_S3_ACCESS_KEY": s3_server.access_key,
        "DJ_FLOWS_S3_SECRET_KEY": s3_server.secret_key,
    }
    missing = server.env | {"DJ_FLOWS_S3_BUCKET": bucket}
    done = subprocess.run([sys.executable, "docker/setup_site.py"], cwd=ROOT, env=missing,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and "set DJ_HOST, DJ_USER, DJ_PASS" in done.stderr
    assert not s3_server.filesystem().exists(bucket)

    output = server.cli("docker/setup_site.py", "--no-deploy", env=environment)
    assert f"created bucket {bucket!r}" in output
    assert "saved blocks dj-flows-db, dj-flows-shared, dj-flows-local" in output
    assert s3_server.filesystem().exists(bucket)
    assert server.api("GET", f"/work_pools/{POOL}")["type"] == "process"

    checked = json.loads(server.run("-m", "tests.deploy.site", "--check-blocks").stdout.splitlines()[-1])
    assert checked == {"database": "mysql", "select": 1, "probe": "dj-flows",
                       "stores": {"shared": bucket, "local": bucket}}
    assert s3_server.filesystem().cat(f"{bucket}/shared/probe/setup-check") == b"dj-flows"
    # the password is stored as a secret: the API shows it obfuscated
    documents = server.api("POST", "/block_documents/filter", {"include_secrets": False})
    (saved,) = [d for d in documents if d["name"] == "dj-flows-db"]
    assert saved["data"]["host"] == settings["database.host"]
    assert saved["data"]["password"] in (None, "********")
