"""Bulk vs one-at-a-time S3 transfers: put_many/get_many against a loop of put/get.

200 objects of 200 KB on a local SeaweedFS server, first on plain loopback, then behind a proxy
that adds 10 ms to every request chunk (a stand-in for a real S3's round trips). Prints seconds
and the speed-up of the bulk calls. Run from the repository root:

    .venv/bin/python benchmarks/bench_store_bulk.py [--objects 200] [--size 200000] [--delay-ms 10]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dj_flows.settings import config  # noqa: E402
from dj_flows.stores import Store  # noqa: E402
from tests.support.delay_proxy import DelayProxy  # noqa: E402
from tests.support.s3server import S3Server  # noqa: E402


def timed(func) -> float:
    start = time.perf_counter()
    func()
    return time.perf_counter() - start


def compare(label: str, store: Store, items: dict[str, bytes]) -> None:
    tag = uuid.uuid4().hex[:8]
    loop_items = {f"loop-{tag}/{k}": v for k, v in items.items()}
    bulk_items = {f"bulk-{tag}/{k}": v for k, v in items.items()}

    def put_loop() -> None:
        for key, data in loop_items.items():
            store.put(key, data)

    def get_loop() -> None:
        for key in loop_items:
            assert len(store.get(key)) == len(loop_items[key])

    def get_bulk() -> None:
        got = store.get_many(list(bulk_items))
        assert len(got) == len(bulk_items)

    results = {
        "put": (timed(put_loop), timed(lambda: store.put_many(bulk_items))),
        "get": (timed(get_loop), timed(get_bulk)),
    }
    megabytes = sum(map(len, items.values())) / 1e6
    for op, (one, bulk) in results.items():
        print(
            f"{label:<22} {op}: one-at-a-time {one:6.2f} s ({megabytes / one:6.1f} MB/s)   "
            f"bulk {bulk:6.2f} s ({megabytes / bulk:6.1f} MB/s)   speed-up x{one / bulk:4.1f}"
        )
    store.remove_many(list(loop_items) + list(bulk_items))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=200)
    parser.add_argument("--size", type=int, default=200_000)
    parser.add_argument("--delay-ms", type=float, default=10.0)
    args = parser.parse_args()

    items = {f"db/{i:04d}": os.urandom(args.size) for i in range(args.objects)}
    concurrency = config["external.transfer_concurrency"]
    print(
        f"{args.objects} objects x {args.size / 1000:.0f} KB, "
        f"transfer_concurrency={concurrency}, delay proxy {args.delay_ms:g} ms"
    )
    with tempfile.TemporaryDirectory(prefix="bench-s3-") as folder:
        with S3Server.start(folder) as server:
            bucket = server.new_bucket("bench")
            direct = Store.from_spec("bench", server.store_spec(bucket, "loopback"))
            compare("loopback", direct, items)
            with DelayProxy(server.port, delay_ms=args.delay_ms) as port:
                spec = {**server.store_spec(bucket, "delayed"), "endpoint": f"127.0.0.1:{port}"}
                compare(f"+{args.delay_ms:g} ms per request", Store.from_spec("bench", spec), items)


if __name__ == "__main__":
    main()
