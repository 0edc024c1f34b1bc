"""The soak test's pipeline and its populate worker process:
`python -m tests.reliability.soak_pipeline SETTINGS_JSON` populates in rounds until a stop file
appears, then prints one JSON line of counts."""

from __future__ import annotations

import json
import os
import sys
import time
import types

import numpy as np

import dj_flows as dj

STORE = "soak"


def raw_value(i: int) -> np.ndarray:
    return np.arange(64, dtype=np.float64) + i


def declare(schema: dj.Schema) -> types.SimpleNamespace:
    class Source(dj.Manual):
        definition = f"""
        id : int
        ---
        raw : blob@{STORE}
        """

    class Result(dj.Computed):
        definition = f"""
        -> Source
        ---
        out : blob@{STORE}
        """

        def make(self, key):
            raw = (Source & key).fetch1("raw")
            time.sleep(0.01)
            self.insert1(dict(key, out=raw * 2))

    context = {"Source": Source}
    schema(Source, context=context)
    schema(Result, context=context)
    return types.SimpleNamespace(Source=Source, Result=Result, schema=schema)


def main(argv: list[str]) -> int:
    settings = json.loads(argv[0])
    for key, value in settings["config"].items():
        dj.config[key] = value
    pipeline = declare(dj.Schema(settings["schema"], create_schema=False))
    made = errors = rounds = 0
    while not os.path.exists(settings["stop"]):
        result = pipeline.Result.populate(reserve_jobs=True, suppress_errors=True)
        made += result["success_count"]
        errors += len(result["error_list"])
        for key, error in result["error_list"]:
            print(f"error {key}: {error}", file=sys.stderr)
        rounds += 1
        time.sleep(0.05)
    print(json.dumps({"made": made, "errors": errors, "rounds": rounds}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
