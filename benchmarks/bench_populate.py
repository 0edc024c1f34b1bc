"""populate() vs DataJoint 0.14.10 on MariaDB/MySQL, side by side in one process.

Two workloads on a `Source` (Manual, N keys) -> `Target` (Computed) pipeline:
  overhead   make() inserts one row: the per-key cost of populate itself, without and with
             reserve_jobs=True (each key reserved in ~jobs, then completed)
  parallel   make() sleeps 50 ms then inserts one row: processes=2 vs processes=1 (speed-up), with
             reserve_jobs=True as a cluster would run it

Each library gets its own freshly created database (dropped afterwards). Times are the best of
`--repeat` runs; the runs alternate, so a burst of load on the machine hits them alike. For overhead the ratio is dj-flows / DataJoint (below 1.00: dj-flows is faster);
for parallel it is the speed-up t(processes=1) / t(processes=2) of each library.

    /work/main/.venv/bin/python benchmarks/bench_populate.py [--keys 500] [--sleepy 100] [--repeat 3]

MySQL comes from DJ_HOST / DJ_USER / DJ_PASS (default 127.0.0.1, root, empty password).
"""

from __future__ import annotations

import argparse
import time
import uuid
import warnings
from collections.abc import Callable

import mysql_login

SOURCE = """
source : int
"""
TARGET = """
-> Source
---
value : bigint
"""


def _classes(lib, sleep: float) -> tuple[type, type]:
    class Source(lib.Manual):
        definition = SOURCE

    class Target(lib.Computed):
        definition = TARGET

        def make(self, key):
            if sleep:
                time.sleep(sleep)
            self.insert1(dict(key, value=key["source"] * 2))

    return Source, Target


def setup_ours(database: str, sleep: float):
    import dj_flows

    dj_flows.config.update(mysql_login.ours())
    schema = dj_flows.Schema(database, {})
    Source, Target = _classes(dj_flows, sleep)
    schema(Source, context={})
    schema(Target, context={"Source": Source})
    return schema, Source, Target


def setup_datajoint(database: str, sleep: float):
    import datajoint

    datajoint.config.update(mysql_login.datajoint())
    schema = datajoint.Schema(database, {})
    Source, Target = _classes(datajoint, sleep)
    schema(Source, context={})
    schema(Target, context={"Source": Source})
    return schema, Source, Target


def _measure(setup: Callable, keys: int, sleep: float, runs: dict[str, dict], repeat: int) -> dict[str, float]:
    """Time populate() under each named set of keyword arguments on a fresh database."""
    database = f"bench_populate_{uuid.uuid4().hex[:8]}"
    schema, Source, Target = setup(database, sleep)
    try:
        Source.insert([{"source": i} for i in range(keys)])

        def reset() -> None:
            Target.delete_quick()
            schema.jobs.delete_quick()

        times = dict.fromkeys(runs, float("inf"))
        for _ in range(repeat):  # the runs alternate, so a burst of load hits them alike
            for name, kwargs in runs.items():
                reset()
                start = time.perf_counter()
                result = Target.populate(**kwargs)
                times[name] = min(times[name], time.perf_counter() - start)
                assert result["success_count"] == keys, result
        return times
    finally:
        schema.drop(force=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keys", type=int, default=500, help="keys for the overhead workload")
    parser.add_argument("--sleepy", type=int, default=100, help="keys for the parallel workload")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")

    overhead_runs = {"populate()": {}, "populate(reserve_jobs=True)": {"reserve_jobs": True}}
    ours = _measure(setup_ours, args.keys, 0.0, overhead_runs, args.repeat)
    theirs = _measure(setup_datajoint, args.keys, 0.0, overhead_runs, args.repeat)
    print(f"overhead: make() inserts one row, {args.keys} keys, best of {args.repeat}")
    print(f"  {'workload':<30} {'dj-flows ms/key':>16} {'DataJoint ms/key':>17} {'ratio':>7}")
    for name in overhead_runs:
        a, b = ours[name] / args.keys * 1e3, theirs[name] / args.keys * 1e3
        print(f"  {name:<30} {a:>16.3f} {b:>17.3f} {a / b:>7.2f}")

    parallel_runs = {
        "processes=1": {"reserve_jobs": True},
        "processes=2": {"reserve_jobs": True, "processes": 2},
    }
    ours = _measure(setup_ours, args.sleepy, 0.05, parallel_runs, args.repeat)
    theirs = _measure(setup_datajoint, args.sleepy, 0.05, parallel_runs, args.repeat)
    print(f"parallel: make() sleeps 50 ms, {args.sleepy} keys, reserve_jobs=True, best of {args.repeat}")
    print(f"  {'library':<12} {'processes=1 s':>14} {'processes=2 s':>14} {'speed-up':>9}")
    for name, times in (("dj-flows", ours), ("DataJoint", theirs)):
        one, two = times["processes=1"], times["processes=2"]
        print(f"  {name:<12} {one:>14.3f} {two:>14.3f} {one / two:>9.2f}")


if __name__ == "__main__":
    main()
