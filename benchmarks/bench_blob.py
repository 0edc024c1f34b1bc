"""Blob codec speed: dj_flows against datajoint 0.14.10, side by side in one process.

    /work/main/.venv/bin/python benchmarks/bench_blob.py [--repeat N]

Values: (a) 10M random float64 (80 MB), (b) 10M zeros, (c) a 3000x4000x3 random uint8 image,
(d) a list of 1,000 small dicts holding short arrays. Each library packs the value and unpacks
its own blob (what each would store and read back); times are the best of --repeat runs. Ratios
are datajoint time / dj_flows time (higher is better for dj_flows). Peak memory is about 1 GB.

dj_flows returns writable arrays, so unpacking an uncompressed blob copies the array once, while
datajoint returns read-only views of the blob (no copy): on (c) datajoint's unpack is free and
no writable result can match it. `unpack(blob, copy=False)` gives datajoint's views, printed too.
"""

from __future__ import annotations

import argparse
import gc
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from dj_flows.codecs import blob as ours

try:
    from datajoint import blob as theirs
except ImportError:  # pragma: no cover - the benchmark needs the reference
    raise SystemExit("datajoint 0.14.10 is needed: pip install datajoint==0.14.10") from None

TARGETS = {  # value: (pack ratio at least, unpack ratio at least)
    "a": (5.0, 5.0),
    "b": (1.0, 1.0),
    "c": (5.0, 1.0),
    "d": (1.0, 1.0),
}


def values() -> dict[str, tuple[str, Any]]:
    rng = np.random.default_rng(0)
    records = [
        {
            "id": i,
            "label": f"cell {i}",
            "trace": rng.standard_normal(16),
            "mask": rng.integers(0, 2, 8).astype(bool),
            "xy": np.array([i, -i], dtype="int32"),
        }
        for i in range(1000)
    ]
    return {
        "a": ("10M random float64", rng.random(10_000_000)),
        "b": ("10M zeros (float64)", np.zeros(10_000_000)),
        "c": ("3000x4000x3 uint8 image", rng.integers(0, 256, (3000, 4000, 3), dtype=np.uint8)),
        "d": ("1000 small dicts of arrays", records),
    }


def best(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    times, result = [], None
    for _ in range(repeat):
        result = None
        gc.collect()
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return min(times), result


def equal(a: Any, b: Any) -> bool:
    if isinstance(a, np.ndarray):
        return isinstance(b, np.ndarray) and a.dtype == b.dtype and np.array_equal(a, b)
    if isinstance(a, list):
        return len(a) == len(b) and all(equal(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(equal(a[k], b[k]) for k in a)
    return a == b


def writable(value: Any) -> bool:
    if isinstance(value, np.ndarray):
        return value.flags.writeable
    if isinstance(value, list):
        return all(map(writable, value))
    if isinstance(value, dict):
        return all(map(writable, value.values()))
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement (best is kept)")
    args = parser.parse_args()
    repeat = args.repeat
    failures = []
    print(f"{'value':30} {'op':8} {'datajoint':>10} {'dj_flows':>10} {'ratio':>7}  sizes / notes")
    for key, (label, value) in values().items():
        slow_repeat = 1 if key in "ac" else repeat  # datajoint spends seconds compressing these
        t_their_pack, their_blob = best(lambda v=value: theirs.pack(v), slow_repeat)
        t_our_pack, our_blob = best(lambda v=value: ours.pack(v), repeat)
        same = our_blob == their_blob
        note = (
            f"{len(their_blob) / 1e6:.1f} MB vs {len(our_blob) / 1e6:.1f} MB"
            f"{', identical bytes' if same else ''}"
        )
        if isinstance(value, np.ndarray):
            t_copy, _ = best(value.tobytes, repeat)
            note += f"; tobytes {t_copy:.3f}s, pack/tobytes {t_our_pack / t_copy:.2f}"
        pack_ratio = t_their_pack / t_our_pack
        print(
            f"{key}) {label:27} {'pack':8} {t_their_pack:10.3f} {t_our_pack:10.3f} {pack_ratio:7.1f}  {note}"
        )

        t_their_unpack, _ = best(lambda b=their_blob: theirs.unpack(b), repeat)
        t_our_unpack, result = best(lambda b=our_blob: ours.unpack(b), repeat)
        t_cross, cross = best(lambda b=their_blob: ours.unpack(b), repeat)
        t_views, _ = best(lambda b=our_blob: ours.unpack(b, copy=False), repeat)
        unpack_ratio = t_their_unpack / t_our_unpack
        checks = (
            f"equal={equal(value, result) and equal(value, cross)}, writable={writable(result)}"
        )
        print(
            f"{'':30} {'unpack':8} {t_their_unpack:10.3f} {t_our_unpack:10.3f} {unpack_ratio:7.1f}"
            f"  own blobs; {checks}; dj_flows on datajoint's blob {t_cross:.3f}s,"
            f" with copy=False (read-only views like datajoint's) {t_views:.4f}s"
        )
        want_pack, want_unpack = TARGETS[key]
        if pack_ratio < want_pack:
            failures.append(f"{key}) pack ratio {pack_ratio:.1f} < {want_pack}")
        if unpack_ratio < want_unpack:
            failures.append(f"{key}) unpack ratio {unpack_ratio:.1f} < {want_unpack}")
        if key == "a" and t_our_pack > 2 * t_copy:
            failures.append(f"a) pack {t_our_pack:.3f}s is over 2x tobytes {t_copy:.3f}s")
        del their_blob, our_blob, result, cross
    print("targets met" if not failures else "targets missed: " + "; ".join(failures))


if __name__ == "__main__":
    main()
