"""MariaDB kills a worker's connection (KILL <id>) while it populates: the key in flight is rolled
back, the worker reconnects and goes on, and a later run leaves every key made exactly once."""

from __future__ import annotations

import contextlib
import os
import time

import pytest

import dj_flows as dj
from tests.populate.pipeline import declare, read_calls
from tests.populate.worker_control import finish, start_worker, wait_for

from .workers import call_counts

pytestmark = [pytest.mark.mysql, pytest.mark.timeout(300)]
KEYS = 30
KILLS = 3


@pytest.fixture(scope="module", params=["mysql"])
def backend(request, tmp_path_factory):
    """This scenario is MySQL's (SQLite has no server to kill connections)."""
    from tests.support import backends

    backends.require_mysql()
    saved = {key: dj.config[key] for key in ("database.backend", "database.host", "database.port",
                                             "database.user", "database.password",
                                             "database.use_tls", "safemode")}
    dj.config.update(backends.mysql_settings())
    dj.config["safemode"] = False
    yield "mysql"
    dj.config.update(saved)


def client_ports(pid: int, server_port: int) -> set[int]:
    """Local ports of the TCP connections process `pid` holds to `server_port` (from /proc)."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        with contextlib.suppress(OSError):
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    ports = set()
    for table in ("tcp", "tcp6"):
        with contextlib.suppress(OSError), open(f"/proc/{pid}/net/{table}") as lines:
            for line in list(lines)[1:]:
                fields = line.split()
                local, remote, inode = fields[1], fields[2], fields[9]
                if inode in inodes and int(remote.rsplit(":", 1)[1], 16) == server_port:
                    ports.add(int(local.rsplit(":", 1)[1], 16))
    return ports


def worker_connections(pid: int) -> list[int]:
    """Server session ids of the worker process `pid` (matched by its client ports, since other
    tests share the server)."""
    ports = client_ports(pid, int(dj.config["database.port"]))
    rows = dj.conn().query("SELECT id, host FROM information_schema.processlist").fetchall()
    return [session for session, host in rows if host and host.rsplit(":", 1)[-1].isdigit()
            and int(host.rsplit(":", 1)[-1]) in ports]


def test_killed_connections_roll_back_and_every_key_is_made_once(make_schema, calls_file, tmp_path):
    pipeline = declare(make_schema("kill"))
    pipeline.Source.insert([{"id": i, "delay": 0.15} for i in range(KEYS)])
    worker = start_worker(pipeline.schema, {"reserve_jobs": True, "suppress_errors": True})
    killed = 0
    for round_ in range(KILLS):
        target = 4 + 7 * round_
        wait_for(lambda n=target: len(read_calls(calls_file)) >= n, 90, "the worker to make keys")
        ids = worker_connections(worker.pid)
        assert ids, "the worker has no session on the server"
        for session in ids:
            try:
                dj.conn().query(f"KILL {int(session)}")
                killed += 1
            except dj.DataJointError:
                pass  # that session ended by itself
        time.sleep(0.2)
    result = finish(worker, timeout=180)
    assert killed >= KILLS
    lost = [key for key, message in result["error_list"]]
    assert all("LostConnection" in message or "lost" in message.lower()
               for _, message in result["error_list"]), result["error_list"]
    # the worker reconnected: it made keys after the last kill
    assert result["success_count"] + len(lost) <= KEYS
    assert result["success_count"] >= KEYS - len(lost) - 0
    # a later run completes the keys given back
    again = pipeline.Square.populate(reserve_jobs=True)
    assert again["error_list"] == []
    assert sorted(pipeline.Square.fetch("id").tolist()) == list(range(KEYS))
    assert sorted(pipeline.Square.Note.fetch("id").tolist()) == list(range(KEYS))
    assert len(pipeline.schema.jobs) == 0
    counts = call_counts(calls_file)
    assert sorted(counts) == list(range(KEYS))
    repeated = {k for k, n in counts.items() if n > 1}
    assert repeated <= {key["id"] for key in lost}  # only a key in flight at a kill ran again
    print(f"RELIABILITY mysql-kill: {killed} sessions killed, {KEYS} keys, {len(lost)} given back")
