"""Parquet export speed and memory: dj_flows.export against pyarrow writing the same data from memory,
and what the naive path (pandas.DataFrame(query.fetch(as_dict=True)).to_parquet) does with it.

    /work/main/.venv/bin/python benchmarks/bench_export.py [--backend sqlite|mysql] [--rows 2000]
        [--repeat 5] [--batch-mb 64] [--keep]

Data: --rows rows of a 256x256 float32 array (random normal, 256 KiB each; 2,000 rows = 512 MiB)
in a `longblob` column, plus an int key. Both writers use the same Parquet options (snappy, page
checksums, one row group per export batch).

Throughput: --repeat runs of each, alternating, in this process (best and median shown). Ratio =
pyarrow time / export time, judged on the median over the run pairs, since on a shared machine the
best runs of the two sides can come from different load (the target is >= 0.8: the export reads
the rows from the database and still writes at 80% of the speed pyarrow writes data it holds).

Memory: each path runs in a fresh child process, which reports its peak resident memory above what it
held before the run (VmHWM after resetting it, minus RSS before), the peak of Python/numpy
allocations (tracemalloc) and the peak of pyarrow's memory pool. The target: the export's
Python/numpy peak (raw rows, the batch's buffers) stays below twice one record batch; pyarrow's pool
holds the Parquet writer's buffers (the batches are numpy memory handed to Arrow without a copy).
RSS is shown against 2 x batch + the writer's buffers: its Arrow pool peak plus what a Parquet
writer holds outside the pool (encoders, compression and I/O scratch, threads), taken from the
pyarrow-only run (its RSS above start minus its pool peak: ~58 MiB here). Against 2 x batch + the
pool alone, RSS fails by ~20-30 MiB, less than what the writer holds outside the pool. For pyarrow,
the table it writes is already in memory before the run and not counted.

On MySQL the export reads the table from the server: with InnoDB's default 128 MiB buffer pool
and this 550 MB table, every run reads it from disk (O_DIRECT here), and the figure measures the
server's disk as much as the export. The benchmark prints the pool size next to the table size.
Measured here (2,000 rows, --repeat 5): median pair 0.77 with the 128 MiB pool, 0.93 with
`SET GLOBAL innodb_buffer_pool_size = 1073741824` (restored afterwards); SQLite 0.99.

--keep keeps the SQLite file (/tmp/dj_bench_export.sqlite) or MySQL schema between runs, so the
2,000 rows are inserted once.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

import dj_flows as dj
from dj_flows import export

SHAPE = (256, 256)
SCHEMA = "djbench_export"
SQLITE_PATH = "/tmp/dj_bench_export.sqlite"
WRITER = {"compression": "snappy", "write_page_checksum": True}


def configure(backend: str, keep: bool) -> None:
    if backend == "mysql":
        dj.config.update(
            {
                "database.backend": "mysql",
                "database.host": os.environ.get("DJ_HOST", "127.0.0.1"),
                "database.user": os.environ.get("DJ_USER", "root"),
                "database.password": os.environ.get("DJ_PASS", ""),
                "database.use_tls": False,
            }
        )
    else:
        dj.config["database.backend"] = "sqlite"
        dj.config["database.sqlite_path"] = SQLITE_PATH if keep else os.environ["BENCH_SQLITE"]
    dj.config["safemode"] = False


def arrays(rows: int, start: int = 0, stop: int | None = None):
    """The benchmark's arrays, reproducibly (row i is the same whoever asks)."""
    for i in range(start, rows if stop is None else stop):
        yield np.random.default_rng(i).standard_normal(SHAPE, dtype=np.float32)


def table_class(rows: int):
    schema = dj.Schema(SCHEMA)

    @schema
    class Frames(dj.Manual):
        definition = """
        frame : int
        ---
        image : longblob   # 256x256 float32
        """

    if len(Frames()) != rows:
        Frames.delete_quick()
        started = time.perf_counter()
        for start in range(0, rows, 50):
            Frames.insert(
                dict(frame=start + i, image=a)
                for i, a in enumerate(arrays(rows, start, min(rows, start + 50)))
            )
        print(f"inserted {rows} rows in {time.perf_counter() - started:.1f} s", flush=True)
    return schema, Frames


def memory_table(rows: int) -> pa.Table:
    """The same data as an in-memory Arrow table (what 'pyarrow from memory' writes)."""
    data = np.empty((rows, *SHAPE), np.float32)
    for i, a in enumerate(arrays(rows)):
        data[i] = a
    tensor = pa.FixedShapeTensorArray.from_numpy_ndarray(data)
    return pa.table({"frame": pa.array(np.arange(rows, dtype=np.int32)), "image": tensor})


def server_cache_note(schema, Frames) -> str:
    """How the server's InnoDB buffer pool compares with the table it serves."""
    from dj_flows.backends.base import PH

    connection = schema.connection
    pool = int(connection.query("SELECT @@innodb_buffer_pool_size").fetchone()[0])
    size = int(connection.query(
        "SELECT data_length + index_length FROM information_schema.tables "
        f"WHERE table_schema = {PH} AND table_name = {PH}", (schema.database, Frames.table_name)
    ).fetchone()[0])
    where = "from memory once warm" if pool > size else "from disk on every run"
    return (f"server: InnoDB buffer pool {pool / 2**20:.0f} MiB, table {size / 2**20:.0f} MiB "
            f"on disk: the export reads it {where}")


def rss() -> int:
    with open("/proc/self/statm") as stream:
        return int(stream.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def reset_peak_rss() -> None:
    """Start the kernel's peak-RSS counter (VmHWM) afresh (Linux; ru_maxrss would include the
    parent's memory, which a child inherits across fork and exec)."""
    with open("/proc/self/clear_refs", "w") as stream:
        stream.write("5")


def peak_rss() -> int:
    with open("/proc/self/status") as stream:
        for line in stream:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


# -- one measured run per child process ----------------------------------------------------------
def run_mode(mode: str, Frames, table: pa.Table | None, out: str, batch_bytes: int) -> None:
    group_rows = batch_bytes // (SHAPE[0] * SHAPE[1] * 4)
    if mode == "export":
        export.to_parquet(Frames, out, batch_bytes=batch_bytes)
    elif mode == "pyarrow":
        pq.write_table(table, out, row_group_size=group_rows, **WRITER)
    else:
        import pandas

        pandas.DataFrame(Frames.fetch(as_dict=True)).to_parquet(out)


def child(mode: str, rows: int, batch_bytes: int, out: str) -> None:
    _, Frames = table_class(rows)
    table = memory_table(rows) if mode == "pyarrow" else None
    try:  # warm up: imports and first-use caches are not what is measured
        run_mode(
            mode,
            Frames & "frame = 0",
            table.slice(0, 1) if table is not None else None,
            out,
            batch_bytes,
        )
    except Exception:
        pass
    gc.collect()
    pool = pa.default_memory_pool()
    pool_before = pool.max_memory()
    reset_peak_rss()
    before = rss()
    tracemalloc.start()
    started = time.perf_counter()
    outcome = "ok"
    try:
        run_mode(mode, Frames, table, out, batch_bytes)
    except Exception as error:  # the naive path is expected to fail: report how
        outcome = f"{type(error).__name__}: {str(error)[:160]}"
    seconds = time.perf_counter() - started
    traced = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    peak = peak_rss()
    result = {
        "seconds": seconds,
        "outcome": outcome,
        "rss_peak_above_start": max(0, peak - before),
        "traced_peak": traced,
        "arrow_pool_peak": max(0, pool.max_memory() - pool_before)
        if pool_before < pool.max_memory()
        else pool.max_memory(),
    }
    if outcome == "ok" and Path(out).exists():
        result["file_bytes"] = Path(out).stat().st_size
        back = pq.read_table(out)
        result["image_type"] = str(back.schema.field("image").type)
    print("RESULT " + json.dumps(result), flush=True)


def run_child(mode: str, args: argparse.Namespace, folder: str) -> dict:
    command = [
        sys.executable,
        __file__,
        "--child",
        mode,
        "--rows",
        str(args.rows),
        "--backend",
        args.backend,
        "--batch-mb",
        str(args.batch_mb),
        "--out",
        f"{folder}/{mode}.parquet",
    ]
    if args.keep:
        command.append("--keep")
    done = subprocess.run(command, capture_output=True, text=True, env=os.environ)
    for line in done.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    raise SystemExit(f"child {mode} failed:\n{done.stdout}\n{done.stderr}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=["sqlite", "mysql"], default="sqlite")
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--batch-mb", type=int, default=64)
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--child")
    parser.add_argument("--out")
    args = parser.parse_args()
    batch_bytes = args.batch_mb << 20
    if not args.keep and "BENCH_SQLITE" not in os.environ:
        os.environ["BENCH_SQLITE"] = (
            tempfile.mkdtemp(prefix="dj-bench-export-") + "/pipeline.sqlite"
        )
    configure(args.backend, args.keep)
    if args.child:
        child(args.child, args.rows, batch_bytes, args.out)
        return

    schema, Frames = table_class(args.rows)
    data_bytes = args.rows * SHAPE[0] * SHAPE[1] * 4
    first = next(export.to_batches(Frames, batch_bytes=batch_bytes))
    batch_nbytes, batch_rows = first.nbytes, first.num_rows
    del first
    print(
        f"{args.rows} rows x 256x256 float32 = {data_bytes / 2**20:.0f} MiB on {args.backend}; "
        f"export batches of {batch_rows} rows = {batch_nbytes / 2**20:.1f} MiB",
        flush=True,
    )
    if args.backend == "mysql":
        print(server_cache_note(schema, Frames), flush=True)

    with tempfile.TemporaryDirectory(prefix="dj-bench-export-") as folder:
        table = memory_table(args.rows)
        times: dict[str, list[float]] = {"pyarrow": [], "export": []}
        cpu: dict[str, list[float]] = {"pyarrow": [], "export": []}
        for _ in range(args.repeat):
            started, used = time.perf_counter(), time.process_time()
            pq.write_table(table, f"{folder}/memory.parquet", row_group_size=batch_rows, **WRITER)
            times["pyarrow"].append(time.perf_counter() - started)
            cpu["pyarrow"].append(time.process_time() - used)
            started, used = time.perf_counter(), time.process_time()
            result = export.to_parquet(Frames, f"{folder}/export.parquet", batch_bytes=batch_bytes)
            times["export"].append(time.perf_counter() - started)
            cpu["export"].append(time.process_time() - used)
        del table
        gc.collect()
        assert result.rows == args.rows
        best = {k: min(v) for k, v in times.items()}
        middle = {k: statistics.median(v) for k, v in times.items()}
        ratio = best["pyarrow"] / best["export"]
        print(
            f"\nthroughput ({args.repeat} alternating runs; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)"
        )
        for name, label in (
            ("pyarrow", "pyarrow write_table from memory"),
            ("export", "dj.export.to_parquet from the database"),
        ):
            runs = ", ".join(f"{t:.2f}" for t in times[name])
            print(
                f"  {label:<42} best {best[name]:6.2f} s = {data_bytes / best[name] / 2**20:5.0f} MiB/s, median {middle[name]:6.2f} s   (runs: {runs})"
            )
        pairs = [a / b for a, b in zip(times["pyarrow"], times["export"])]
        print(
            f"  ratio pyarrow time / export time: best {ratio:.2f}, median {middle['pyarrow'] / middle['export']:.2f}, "
            f"per run pair {', '.join(f'{r:.2f}' for r in pairs)} (median {statistics.median(pairs):.2f})"
            f"   target >= 0.80 (median pair): {'PASS' if statistics.median(pairs) >= 0.8 else 'FAIL'}"
        )
        cpu_p, cpu_e = statistics.median(cpu["pyarrow"]), statistics.median(cpu["export"])
        print(
            f"  this process's CPU seconds (all threads; not the database server's), median: "
            f"pyarrow {cpu_p:.2f}, export {cpu_e:.2f}, ratio {cpu_p / cpu_e:.2f}"
        )

        print("\nmemory (each in a fresh process)")
        rows = {mode: run_child(mode, args, folder) for mode in ("export", "pyarrow", "naive")}
        mib = 2**20
        for mode, label in (
            ("export", "dj.export.to_parquet"),
            ("pyarrow", "pyarrow write_table from memory"),
            ("naive", "pandas.DataFrame(fetch(as_dict)).to_parquet"),
        ):
            r = rows[mode]
            print(
                f"  {label:<45} {r['seconds']:6.2f} s  RSS +{r['rss_peak_above_start'] / mib:7.1f} MiB  "
                f"python/numpy peak {r['traced_peak'] / mib:7.1f} MiB  arrow pool peak {r['arrow_pool_peak'] / mib:6.1f} MiB"
            )
            print(
                f"  {'':<45} outcome: {r['outcome']}"
                + (f"; image column read back as {r['image_type']}" if "image_type" in r else "")
            )
        traced = rows["export"]["traced_peak"]
        print(
            f"\n  export python/numpy peak / one record batch = {traced / batch_nbytes:.2f}   target < 2: {'PASS' if traced < 2 * batch_nbytes else 'FAIL'}"
        )
        pool = rows["export"]["arrow_pool_peak"]
        # the Parquet writer also holds memory outside Arrow's pool (encoders, compression and
        # I/O scratch, its threads): what the pyarrow-only child needs beyond its pool
        outside = max(0, rows["pyarrow"]["rss_peak_above_start"] - rows["pyarrow"]["arrow_pool_peak"])
        total = rows["export"]["rss_peak_above_start"]
        bound = 2 * batch_nbytes + pool + outside
        print(
            f"  export RSS peak {total / mib:.1f} MiB vs 2 x batch + writer buffers "
            f"(Arrow pool {pool / mib:.1f} + outside the pool {outside / mib:.1f}, as the pyarrow-only "
            f"run shows) = {bound / mib:.1f} MiB: {'PASS' if total < bound else 'FAIL'}"
        )
    if not args.keep:
        schema.drop(force=True)


if __name__ == "__main__":
    main()
