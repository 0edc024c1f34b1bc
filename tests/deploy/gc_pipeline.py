"""A one-table pipeline whose rows keep blobs in the external store 'shared', for the GC run of
the deployment test: `activate(schema_name)` binds it to a schema (declared on first use)."""

from __future__ import annotations

import dj_flows as dj
from dj_flows.pipelines import activator


def _define(schema: dj.Schema) -> dict[str, type]:
    class Recording(dj.Manual):
        definition = """
        recording : int
        ---
        trace : blob@shared
        """

    schema(Recording, context={})
    return {"Recording": Recording}


activate = activator(_define)
