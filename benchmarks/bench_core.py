"""Engine core vs DataJoint 0.14.10 on MariaDB/MySQL, side by side in one process.

Three workloads on the same small-row table (`id : int` / `a : int, b : double, c : varchar(16)`):
  insert    insert N rows given as dicts, in one insert() call
  fetch     fetch all N rows (numpy records), and as dicts
  restrict  restrict by a primary-key dict and fetch1(), K times

Each library gets its own freshly created database (dropped afterwards). Times are the best of
`--repeat` runs, the two libraries taking turns so that both see the same load on a shared machine;
the ratio is dj-flows / DataJoint, so below 1.00 means dj-flows is faster.

    /work/main/.venv/bin/python benchmarks/bench_core.py [--rows 100000] [--lookups 1000] [--repeat 5]

MySQL comes from DJ_HOST / DJ_USER / DJ_PASS (default 127.0.0.1, root, empty password).
"""

from __future__ import annotations

import argparse
import time
import uuid
import warnings
from collections.abc import Callable

import mysql_login

DEFINITION = """
# a small row
id : int
---
a : int
b : double
c : varchar(16)
"""


def _rows(count: int) -> list[dict]:
    return [{"id": i, "a": i % 1000, "b": i * 0.5, "c": f"name{i}"} for i in range(count)]


def _timed(action: Callable[[], object], reset: Callable[[], object] | None = None) -> tuple[float, float]:
    """(wall seconds, this process's CPU seconds) of one run."""
    if reset is not None:
        reset()
    wall, cpu = time.perf_counter(), time.process_time()
    action()
    return time.perf_counter() - wall, time.process_time() - cpu


def setup_ours(database: str):
    import dj_flows

    dj_flows.config.update(mysql_login.ours())
    schema = dj_flows.Schema(database, {})

    class Small(dj_flows.Manual):
        definition = DEFINITION

    schema(Small, context={})
    return schema, Small


def setup_theirs(database: str):
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    import datajoint

    datajoint.config.update(mysql_login.datajoint())
    datajoint.conn(reset=True)
    schema = datajoint.Schema(database, {})

    class Small(datajoint.Manual):
        definition = DEFINITION

    schema(Small, context={})
    return schema, Small


def run(rows: int, lookups: int, repeat: int) -> list[tuple[str, float, float, float, float]]:
    """(workload, our wall, our CPU, their wall, their CPU) in seconds, best of `repeat`."""
    tag = uuid.uuid4().hex[:8]
    ours_schema, Ours = setup_ours(f"djbench_{tag}_ours")
    theirs_schema, Theirs = setup_theirs(f"djbench_{tag}_dj")
    data = _rows(rows)
    keys = [{"id": (i * 7919) % rows} for i in range(lookups)]
    results = []
    try:
        for label, ours, theirs, reset_ours, reset_theirs in [
            (
                f"insert {rows:,} rows",
                lambda: Ours.insert(data),
                lambda: Theirs.insert(data),
                lambda: Ours.delete_quick(),
                lambda: Theirs.delete_quick(),
            ),
            (f"fetch {rows:,} rows (array)", lambda: Ours.fetch(), lambda: Theirs.fetch(), None, None),
            (
                f"fetch {rows:,} rows (dicts)",
                lambda: Ours.fetch(as_dict=True),
                lambda: Theirs.fetch(as_dict=True),
                None,
                None,
            ),
            (
                f"restrict+fetch1 x{lookups:,}",
                lambda: [(Ours & key).fetch1() for key in keys],
                lambda: [(Theirs & key).fetch1() for key in keys],
                None,
                None,
            ),
            (
                f"restrict+fetch attr x{lookups:,}",
                lambda: [(Ours & key).fetch("c") for key in keys],
                lambda: [(Theirs & key).fetch("c") for key in keys],
                None,
                None,
            ),
        ]:
            best = {"ours": (float("inf"),) * 2, "theirs": (float("inf"),) * 2}
            for _ in range(repeat):  # alternate, so both see the same load on a shared machine
                for side, action, reset in (("theirs", theirs, reset_theirs), ("ours", ours, reset_ours)):
                    wall, cpu = _timed(action, reset)
                    best[side] = (min(best[side][0], wall), min(best[side][1], cpu))
            results.append((label, *best["ours"], *best["theirs"]))
        assert len(Ours()) == len(Theirs()) == rows
        assert Ours.fetch(order_by="id", limit=3).tolist() == Theirs.fetch(order_by="id", limit=3).tolist()
    finally:
        ours_schema.drop(force=True)
        theirs_schema.drop(force=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--lookups", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    results = run(args.rows, args.lookups, args.repeat)
    print(f"{'workload':<32} {'dj-flows':>10} {'datajoint':>10} {'ratio':>7}   {'client CPU ratio':>16}")
    for label, ours, ours_cpu, theirs, theirs_cpu in results:
        print(f"{label:<32} {ours:>9.3f}s {theirs:>9.3f}s {ours / theirs:>7.2f}   {ours_cpu / theirs_cpu:>16.2f}")
    print("ratio = dj-flows wall time / DataJoint 0.14.10 wall time (below 1.00: dj-flows is faster);")
    print("client CPU ratio = the same for this process's CPU time (the server's work excluded)")


if __name__ == "__main__":
    main()
