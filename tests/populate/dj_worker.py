"""The test pipeline written for DataJoint 0.14.10, and a DataJoint populate worker:
`python -m tests.populate.dj_worker SETTINGS_JSON` (same settings as tests.populate.worker).

The classes bind to tables dj-flows declared; make() behaves as pipeline.Square.make does and
records its calls in the same file, labelled 'datajoint'.
"""

from __future__ import annotations

import json
import os
import sys
import time
import types

import datajoint

from tests.populate.pipeline import record_call, wait_at_barrier


def connect(config: dict) -> None:
    datajoint.config["database.host"] = config.get("database.host", "127.0.0.1")
    datajoint.config["database.port"] = int(config.get("database.port", 3306))
    datajoint.config["database.user"] = config.get("database.user") or "root"
    datajoint.config["database.password"] = config.get("database.password") or ""
    datajoint.config["database.use_tls"] = False
    datajoint.config["loglevel"] = "WARNING"


def declare(schema_name: str) -> types.SimpleNamespace:
    schema = datajoint.Schema(schema_name)

    class Source(datajoint.Manual):
        definition = """
        id : int
        ---
        delay = 0 : float
        action = "ok" : enum('ok', 'fail', 'hang', 'lose', 'die')
        """

    class Square(datajoint.Computed):
        definition = """
        -> Source
        ---
        value : bigint
        worker : int unsigned
        """

        class Note(datajoint.Part):
            definition = """
            -> master
            ---
            note : varchar(64)
            """

        def make(self, key):
            delay, action = (Source & key).fetch1("delay", "action")
            record_call(key["id"], "datajoint")
            self.insert1(dict(key, value=key["id"] ** 2, worker=os.getpid()))
            self.Note.insert1(dict(key, note=f"square of {key['id']}"))
            if delay:
                time.sleep(delay)
            if action == "fail":
                raise ValueError(f"cannot square {key['id']}")
            if action == "hang":
                time.sleep(600)

    context = {"Source": Source, "Square": Square}
    schema(Source, context=context)
    schema(Square, context=context)
    return types.SimpleNamespace(Source=Source, Square=Square, schema=schema)


def main(argv: list[str]) -> int:
    settings = json.loads(argv[0])
    connect(settings.get("config", {}))
    pipeline = declare(settings["schema"])
    wait_at_barrier(settings.get("barrier"))
    result = pipeline.Square.populate(**settings.get("populate", {}))
    errors = [[key, str(error)] for key, error in result["error_list"]]
    print(json.dumps({"success_count": result["success_count"], "error_list": errors}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
