"""A populate worker run as its own process: `python -m tests.populate.worker SETTINGS_JSON`.

SETTINGS_JSON holds dj.config entries ('database.*'), the schema name, the populate() keyword
arguments and optionally a barrier folder (the worker says it is ready there, then waits for `go`). The worker prints one JSON line with populate()'s result (errors as messages).
"""

from __future__ import annotations

import json
import sys

import dj_flows as dj
from tests.populate.pipeline import declare, wait_at_barrier


def main(argv: list[str]) -> int:
    settings = json.loads(argv[0])
    for key, value in settings.get("config", {}).items():
        dj.config[key] = value
    pipeline = declare(dj.Schema(settings["schema"]))
    wait_at_barrier(settings.get("barrier"))
    result = pipeline.Square.populate(**settings.get("populate", {}))
    errors = [[key, str(error)] for key, error in result["error_list"]]
    print(json.dumps({"success_count": result["success_count"], "error_list": errors}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
