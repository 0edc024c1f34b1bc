"""Entry point: export a join of tables to Parquet (see dj_flows.flows.export)."""

import sys

from dj_flows.flows.export import export_flow

__all__ = ["export_flow"]

if __name__ == "__main__":  # python flows/export.py SCHEMA URL TABLE [TABLE ...]
    export_flow(schema_name=sys.argv[1], url=sys.argv[2], tables=sys.argv[3:])
