"""Entry point: garbage collection of external stores (see dj_flows.flows.external_gc)."""

import sys

from dj_flows.flows.external_gc import external_gc_flow

__all__ = ["external_gc_flow"]

if __name__ == "__main__":  # python flows/external_gc.py SCHEMA  (a dry run)
    external_gc_flow(schema_name=sys.argv[1])
