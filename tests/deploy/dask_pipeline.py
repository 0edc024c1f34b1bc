"""A pipeline for the Dask scale-out test: Source -> Square, where make() records the process
that made each key (tests.populate.pipeline.record_call: one line per call in the file named by
DJF_CALLS, which the Dask worker processes inherit) and takes a moment, so that the two worker
processes both get keys."""

from __future__ import annotations

import os
import time

import dj_flows as dj
from dj_flows.pipelines import activator
from tests.populate.pipeline import record_call

MAKE_SECONDS = 0.05


def _define(schema: dj.Schema) -> dict[str, type]:
    class Source(dj.Manual):
        definition = """
        id : int
        """

    class Square(dj.Computed):
        definition = """
        -> Source
        ---
        value : bigint
        worker : int unsigned       # pid of the process that made the row
        """

        def make(self, key):
            record_call(key["id"])
            time.sleep(MAKE_SECONDS)
            self.insert1(dict(key, value=key["id"] ** 2, worker=os.getpid()))

    context = {"Source": Source}
    schema(Source, context=context)
    schema(Square, context=context)
    return {"Source": Source, "Square": Square}


activate = activator(_define)
