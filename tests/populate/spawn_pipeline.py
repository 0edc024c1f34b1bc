"""A pipeline bound at import, as a module must be for populate(processes=N) with the spawn start
method: the schema name comes from DJF_SPAWN_SCHEMA, set by the test before importing."""

from __future__ import annotations

import os

import dj_flows as dj
from tests.populate.pipeline import record_call

schema = dj.Schema(os.environ["DJF_SPAWN_SCHEMA"])


@schema
class Item(dj.Manual):
    definition = """
    item : int
    """


@schema
class Doubled(dj.Computed):
    definition = """
    -> Item
    ---
    doubled : int
    worker : int unsigned
    """

    def make(self, key):
        record_call(key["item"], "spawn")
        self.insert1(dict(key, doubled=2 * key["item"], worker=os.getpid()))
