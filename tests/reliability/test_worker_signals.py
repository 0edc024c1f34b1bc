"""Two populate worker processes die at once: one SIGKILLed (its lease lapses and the key is taken
over), one SIGTERMed (rolled back, recorded as an error). A later run completes every key, each
made exactly once."""

from __future__ import annotations

import signal

import pytest

from tests.populate.pipeline import declare, read_calls
from tests.populate.worker_control import start_worker, wait_for

from .workers import call_counts

pytestmark = pytest.mark.timeout(300)
KEYS = 12


def test_sigkill_and_sigterm_keys_are_reclaimed_or_recorded(make_schema, calls_file, short_lease):
    pipeline = declare(make_schema("sig"))
    hang = {3, 8}  # each worker hangs on the first of these it reserves
    pipeline.Source.insert([{"id": i, "delay": 0.05, "action": "hang" if i in hang else "ok"}
                            for i in range(KEYS)])
    workers = [start_worker(pipeline.schema, {"reserve_jobs": True, "order": order})
               for order in ("original", "reverse")]
    killed, terminated = workers
    try:
        # SIGKILL the first to hang (on SQLite the other waits for its write lock meanwhile),
        # then SIGTERM the other once it hangs on its own key
        wait_for(lambda: {c[0] for c in read_calls(calls_file)} & hang, 90, "a worker to hang")
        first = next(c for c in read_calls(calls_file) if c[0] in hang)
        if first[1] != killed.pid:
            killed, terminated = terminated, killed
        killed.send_signal(signal.SIGKILL)
        killed.wait(30)
        wait_for(lambda: {c[0] for c in read_calls(calls_file)} >= hang, 90, "the other to hang")
        terminated.send_signal(signal.SIGTERM)
        terminated.communicate(timeout=60)
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait(10)
    hung = {c[1]: c[0] for c in read_calls(calls_file) if c[0] in hang}
    assert killed.returncode == -signal.SIGKILL and terminated.returncode != 0
    jobs = pipeline.schema.jobs
    rows = {row["key"]["id"]: row for row in jobs.fetch(as_dict=True)}
    assert rows[hung[killed.pid]]["status"] == "reserved"  # until its lease lapses
    assert rows[hung[terminated.pid]]["status"] == "error"
    assert "SIGTERM" in rows[hung[terminated.pid]]["error_message"]
    made = set(pipeline.Square.fetch("id").tolist())
    assert not made & hang and set(pipeline.Square.Note.fetch("id").tolist()) == made
    # the later run: fix the inputs, clear the recorded error, wait out the lease
    pipeline.Source.update1({"id": 3, "action": "ok"})
    pipeline.Source.update1({"id": 8, "action": "ok"})
    (jobs & 'status="error"').delete()
    table = pipeline.Square.table_name
    wait_for(lambda: jobs.status(table).get(table, {}).get("expired") == 1, short_lease + 10,
             "the killed worker's lease to lapse")
    result = pipeline.Square.populate(reserve_jobs=True)
    assert result["error_list"] == []
    assert sorted(pipeline.Square.fetch("id").tolist()) == list(range(KEYS))
    assert sorted(pipeline.Square.Note.fetch("id").tolist()) == list(range(KEYS))
    assert len(jobs) == 0
    counts = call_counts(calls_file)
    assert {k for k, n in counts.items() if n != 1} == hang  # only the two dead keys ran twice
    assert all(counts[k] == 2 for k in hang)
    print(f"RELIABILITY signals: {KEYS} keys, 1 SIGKILL + 1 SIGTERM, all made once")
