"""A small pipeline for the populate tests, importable by worker processes and subprocesses.

`declare(schema)` binds fresh classes to a schema and returns them. Each `Source` row tells make()
how to behave (sleep, fail, hang, lose its connection), and make() appends one line per call to the
file named by the DJF_CALLS environment variable, outside any transaction, so a test can count the
calls a key saw even when the process making it was killed.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
import types
from pathlib import Path

import dj_flows as dj

CALLS = "DJF_CALLS"


def record_call(key_id: int, label: str = "") -> None:
    """Append `id pid thread label` to the calls file (one write with O_APPEND: atomic)."""
    path = os.environ.get(CALLS)
    if not path:
        return
    line = f"{key_id} {os.getpid()} {threading.get_ident()} {label}\n".encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


def read_calls(path: str | Path) -> list[tuple[int, int, str]]:
    """(id, pid, label) for every recorded call."""
    path = Path(path)
    if not path.exists():
        return []
    calls = []
    for line in path.read_text().splitlines():
        key_id, pid, _thread, *label = line.split(" ")
        calls.append((int(key_id), int(pid), " ".join(label)))
    return calls


def wait_at_barrier(folder: str | None, timeout: float = 120) -> None:
    """Say this process is ready (a `ready-<pid>` file in `folder`), then wait for `go`, so the
    worker processes of a test start populating together."""
    if not folder:
        return
    barrier = Path(folder)
    (barrier / f"ready-{os.getpid()}").touch()
    deadline = time.monotonic() + timeout
    while not (barrier / "go").exists() and time.monotonic() < deadline:
        time.sleep(0.01)


def lose_connection(connection: dj.Connection) -> None:
    """Make the connection's link fail the way a dropped network link does."""
    if connection.backend.name == "mysql":
        own_id = connection.query("SELECT CONNECTION_ID()").fetchone()[0]
        killer = dj.Connection(connection.backend.settings)
        killer.query(f"KILL CONNECTION {int(own_id)}")
        killer.close()
    else:
        connection._raw.close()


def declare(schema: dj.Schema) -> types.SimpleNamespace:
    """Declare (or bind to) the test pipeline in `schema`."""

    class Source(dj.Manual):
        definition = """
        id : int
        ---
        delay = 0 : float                                     # seconds make() sleeps
        action = "ok" : enum('ok', 'fail', 'hang', 'lose', 'die')    # how make() behaves
        """

    class Square(dj.Computed):
        definition = """
        -> Source
        ---
        value : bigint
        worker : int unsigned       # pid of the process that made the row
        """

        class Note(dj.Part):
            definition = """
            -> master
            ---
            note : varchar(64)
            """

        def make(self, key):
            delay, action = (Source & key).fetch1("delay", "action")
            record_call(key["id"], action)
            self.insert1(dict(key, value=key["id"] ** 2, worker=os.getpid()))
            self.Note.insert1(dict(key, note=f"square of {key['id']}"))
            if delay:
                time.sleep(delay)
            if action == "fail":
                raise ValueError(f"cannot square {key['id']}")
            if action == "hang":
                time.sleep(600)  # until a test kills or terminates the process
            if action == "die":  # as if killed by the OOM killer, in a populate(processes=N) child only
                if multiprocessing.parent_process() is None:
                    raise RuntimeError("action 'die' is only for worker processes")
                os.kill(os.getpid(), signal.SIGKILL)
            if action == "lose":
                lose_connection(self.connection)
                self.Note.insert1(dict(key, id=-key["id"], note="after the link was lost"))

    context = {"Source": Source}
    schema(Source, context=context)
    schema(Square, context=context)
    return types.SimpleNamespace(Source=Source, Square=Square, schema=schema)
