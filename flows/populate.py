"""Entry point: populate a schema's auto-populated tables (see dj_flows.flows.populate)."""

import sys

from dj_flows.flows.populate import populate_flow

__all__ = ["populate_flow"]

if __name__ == "__main__":  # python flows/populate.py PIPELINE SCHEMA
    populate_flow(pipeline=sys.argv[1], schema_name=sys.argv[2])
