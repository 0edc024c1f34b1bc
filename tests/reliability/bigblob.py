"""Insert and fetch one large blob in a fresh process and report peak memory:
`python -m tests.reliability.bigblob SIZE_MB FOLDER [internal|external]` prints one JSON line."""

from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path

import numpy as np


def peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB


def main(size_mb: int, folder: str, where: str) -> dict:
    import dj_flows as dj

    dj.config["database.backend"] = "sqlite"
    dj.config["database.sqlite_path"] = str(Path(folder) / "big.sqlite")
    dj.config["stores"] = {"big": {"protocol": "file", "location": str(Path(folder) / "store")}}
    dj.config["cache"] = None
    schema = dj.Schema("bigblob")
    kind = "blob@big" if where == "external" else "longblob"
    Big = type("Big", (dj.Manual,), {"definition": f"id : int\n---\ndata : {kind}\n"})
    schema(Big)
    baseline = peak_rss()
    data = np.random.default_rng(0).integers(0, 2**63, size=size_mb * 2**20 // 8, dtype=np.int64)
    started = time.monotonic()
    Big.insert1({"id": 1, "data": data})
    inserted = time.monotonic()
    back = (Big & {"id": 1}).fetch1("data")
    fetched = time.monotonic()
    assert back.dtype == data.dtype and np.array_equal(back, data)
    size = data.nbytes
    peak = peak_rss()
    return {"size": size, "baseline": baseline, "peak": peak,
            "ratio": round((peak - baseline) / size, 2), "where": where,
            "insert_s": round(inserted - started, 1), "fetch_s": round(fetched - inserted, 1)}


if __name__ == "__main__":
    print(json.dumps(main(int(sys.argv[1]), sys.argv[2], sys.argv[3])), flush=True)
