"""A lab's site for the deployment test, made in a subprocess that talks to the test's Prefect
server: an SQLite database with one schema whose external store 'shared' holds three blobs, one
of them no longer referenced (what the nightly GC should remove), and the blocks that
deployments/prefect.yaml names.

    python -m tests.deploy.site FOLDER SCHEMA [POOL]   prints {"orphan": path, "live": [paths]}
                                                  as JSON; creates the process work pool POOL
    python -m tests.deploy.site --check-blocks    uses the saved blocks (see check_blocks)
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np

import dj_flows as dj
from dj_flows.prefect.blocks import DataJointDatabase, DataJointStore

DATABASE_BLOCK = "dj-flows-db"
STORE_BLOCKS = {"shared": "dj-flows-shared", "local": "dj-flows-local"}


def objects(folder: Path) -> set[str]:
    """Every stored object's path under the store folder, relative to it."""
    return {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()}


def wait_for_api(seconds: float = 240) -> None:
    """Wait until the Prefect server at PREFECT_API_URL answers (this runs while it starts)."""
    import httpx

    url = os.environ["PREFECT_API_URL"] + "/health"
    deadline = time.monotonic() + seconds
    while True:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise SystemExit(f"the Prefect API at {url} did not answer in {seconds} s")
        time.sleep(0.5)


def create_pool(name: str) -> None:
    """A process work pool with the process worker's default job template (as the CLI makes)."""
    from prefect import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.workers.process import ProcessWorker

    with get_client(sync_client=True) as client:
        client.create_work_pool(WorkPoolCreate(
            name=name, type="process",
            base_job_template=ProcessWorker.get_default_base_job_template(),
        ))


def make_site(folder: Path, schema_name: str, pool: str | None = None) -> dict:
    database = DataJointDatabase(backend="sqlite", sqlite_path=str(folder / "pipeline.sqlite"))
    stores = {
        name: DataJointStore(name=name, location=str(folder / "stores" / name))
        for name in STORE_BLOCKS
    }
    database.apply()
    for store in stores.values():
        store.apply()
        Path(store.location).mkdir(parents=True, exist_ok=True)
    dj.config["safemode"] = False
    from tests.deploy import gc_pipeline

    recording = gc_pipeline.activate(schema_name)["Recording"]
    shared = folder / "stores" / "shared"
    before = objects(shared)
    recording.insert1({"recording": 1, "trace": np.arange(1000.0)})
    orphan = objects(shared) - before
    recording.insert([{"recording": r, "trace": np.full(100, float(r))} for r in (2, 3)])
    (recording & {"recording": 1}).delete()
    dj.conn().close()
    wait_for_api()
    if pool:
        create_pool(pool)
    database.save(DATABASE_BLOCK, overwrite=True)
    for name, block in stores.items():
        block.save(STORE_BLOCKS[name], overwrite=True)
    return {"orphan": sorted(orphan), "live": sorted(objects(shared) - orphan)}


def check_blocks() -> dict:
    """Load the saved blocks by name, connect to the database and round-trip an object through
    the 'shared' store: what a worker does with them."""
    from dj_flows.prefect.blocks import resolve_blocks
    from dj_flows.stores.store import Store

    database, stores = resolve_blocks(DATABASE_BLOCK, list(STORE_BLOCKS.values()))
    database.apply()
    for store in stores:
        store.apply()
    answer = dj.conn().query("SELECT 1").fetchone()[0]
    shared = Store.from_spec("shared", dj.config["stores"]["shared"])
    shared.put("probe/setup-check", b"dj-flows")
    return {
        "database": database.backend,
        "select": answer,
        "stores": {s.name: s.store_spec()["bucket"] for s in stores},
        "probe": shared.get("probe/setup-check").decode(),
    }


if __name__ == "__main__":
    if sys.argv[1] == "--check-blocks":
        print(json.dumps(check_blocks()))
    else:
        print(json.dumps(make_site(Path(sys.argv[1]), sys.argv[2], *sys.argv[3:4])))
