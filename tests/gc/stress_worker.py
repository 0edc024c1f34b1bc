"""Worker processes of the GC stress test (spawned: each configures dj and connects by itself).

`inserter` repeatedly inserts rows that re-use a small set of contents and deletes some of its rows;
`collector` sweeps with a zero grace period (and every few rounds removes orphans) until told to
stop. Both retry the unit of work MySQL aborts on a deadlock or lock wait timeout, as a client
would, and report counts through a queue.
"""

from __future__ import annotations

import collections
import logging
import random
import time
import traceback
from pathlib import Path
from typing import Any

CONTENTS = 6  # distinct blob contents (and as many attachments)
RETRIES = 8


class _Counter(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.reuploads = 0

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if "again" in message or "re-upload" in message:
            self.reuploads += 1


def _setup(settings: dict, stores: dict, schema_name: str) -> Any:
    import dj_flows as dj

    from .pipeline import declare

    for key, value in settings.items():
        dj.config[key] = value
    dj.config["stores"] = stores
    dj.config["safemode"] = False
    schema = dj.Schema(schema_name, create_schema=False)
    return schema, declare(schema)


def _retrying(action: Any, stats: collections.Counter) -> Any:
    from dj_flows.errors import DataJointError
    from dj_flows.stores.gc import _retryable

    for attempt in range(RETRIES):
        try:
            return action()
        except DataJointError as error:
            if not _retryable(error) or attempt == RETRIES - 1:
                raise
            stats["retries"] += 1
            time.sleep(0.01 * (attempt + 1))
    return None


def inserter(
    settings: dict, stores: dict, schema_name: str, seed: int, rounds: int,
    ids: list[int], folder: str, queue: Any,
) -> None:
    try:
        from .pipeline import attachment, blob

        counter = _Counter()
        logging.getLogger("dj_flows.external").addHandler(counter)
        _, tables = _setup(settings, stores, schema_name)
        Item = tables["Item"]
        rng = random.Random(seed)
        stats: collections.Counter = collections.Counter()
        present: set[int] = set()
        files = Path(folder)
        for _ in range(rounds):
            free = [i for i in ids if i not in present]
            new = rng.sample(free, min(len(free), rng.randint(1, 4)))
            rows = []
            for id_ in new:
                content = rng.randrange(CONTENTS)
                with_file = rng.random() < 0.5
                rows.append({
                    "id": id_, "content": content, "b": blob(content),
                    "a": attachment(files, content) if with_file else None,
                })
            _retrying(lambda rows=rows: Item.insert(rows), stats)
            present.update(new)
            stats["inserted"] += len(rows)
            doomed = rng.sample(sorted(present), min(len(present), rng.randint(0, 4)))
            if doomed:
                query = Item & [{"id": i} for i in doomed]
                _retrying(lambda query=query: query.delete(), stats)
                present.difference_update(doomed)
                stats["deleted"] += len(doomed)
            time.sleep(rng.uniform(0, 0.01))
        stats["reuploads"] = counter.reuploads
        queue.put(("inserter", dict(stats), None))
    except BaseException:
        queue.put(("inserter", {}, traceback.format_exc()))
        raise


def collector(
    settings: dict, stores: dict, schema_name: str, seed: int, stop: Any, queue: Any
) -> None:
    try:
        from dj_flows.stores import gc
        from dj_flows.stores.orphans import remove_orphans, scan_orphans

        from .pipeline import STORE

        schema, _ = _setup(settings, stores, schema_name)
        tracking = schema.external[STORE]
        rng = random.Random(seed)
        stats: collections.Counter = collections.Counter()
        while not stop.is_set():
            report = _retrying(lambda: gc.collect(tracking, 0), stats)
            stats["sweeps"] += 1
            stats["collected"] += report.deleted_rows
            stats["kept"] += report.skipped
            stats["sweep_errors"] += len(report.errors)
            if stats["sweeps"] % 4 == 0:
                orphans = remove_orphans(tracking, scan_orphans(tracking, 0))
                stats["orphans_removed"] += orphans.removed
                stats["orphan_errors"] += len(orphans.errors)
            time.sleep(rng.uniform(0, 0.02))
        queue.put(("collector", dict(stats), None))
    except BaseException:
        queue.put(("collector", {}, traceback.format_exc()))
        raise
