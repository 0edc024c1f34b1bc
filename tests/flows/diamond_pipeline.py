"""A test pipeline shaped like a diamond, plus two tables that fail, for the populate flow.

    Source (Lookup, 2 rows) -> Left, Right (independent) -> Both
    Source -> Flaky  (each key fails once with a transient store error, then works)
    Source -> Broken (key 2 fails with ValueError, every time)

Left and Right meet at a barrier in make_compute (outside the make transaction, so SQLite's write
lock is not held while waiting): if the flow ran them one after the other, the barrier would time
out and their keys would fail.
"""

from __future__ import annotations

import threading
import time
from collections import Counter

import dj_flows as dj
from dj_flows.errors import TransientStoreError
from dj_flows.pipelines import activator

BARRIER = threading.Barrier(2, timeout=30)
CALLS: Counter = Counter()  # (table, source_id) -> make() calls


class _MeetsAtBarrier:
    """Left and Right: a three-part make whose compute step waits for the other table's."""

    definition = """
    -> Source
    ---
    started : double
    finished : double
    """

    def make_fetch(self, key):
        return [key["source_id"]]

    def make_compute(self, key, source_id):
        started = time.time()
        BARRIER.wait()
        return [started, time.time()]

    def make_insert(self, key, started, finished):
        self.insert1(dict(key, started=started, finished=finished))


def _define(schema: dj.Schema) -> dict[str, type]:
    class Source(dj.Lookup):
        definition = """
        source_id : int
        """
        contents = [(1,), (2,)]

    class Left(_MeetsAtBarrier, dj.Computed):
        pass

    class Right(_MeetsAtBarrier, dj.Computed):
        pass

    class Both(dj.Computed):
        definition = """
        -> Left
        -> Right
        ---
        started : double
        """

        def make(self, key):
            self.insert1(dict(key, started=time.time()))

    class Flaky(dj.Computed):
        definition = """
        -> Source
        """

        def make(self, key):
            CALLS["Flaky", key["source_id"]] += 1
            if CALLS["Flaky", key["source_id"]] == 1:
                raise TransientStoreError(f"store timed out for key {key}")
            self.insert1(key)

    class Broken(dj.Computed):
        definition = """
        -> Source
        """

        def make(self, key):
            CALLS["Broken", key["source_id"]] += 1
            if key["source_id"] == 2:
                raise ValueError("source 2 is corrupt")
            self.insert1(key)

    context: dict[str, type] = {}
    for cls in (Source, Left, Right, Both, Flaky, Broken):
        context[cls.__name__] = cls
        schema(cls, context=context)
    return context


activate = activator(_define)
