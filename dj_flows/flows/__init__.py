"""The runnable Prefect flows of dj-flows (the top-level `flows/` folder re-exports them as
deployment entry points, e.g. `flows/image_pipeline.py:image_pipeline`).

- `image_pipeline`: the seed notebook's WebImage -> OriginalFile -> Slide, a contact sheet PNG,
  a Parquet export and a markdown summary;
- `populate_flow`: every auto-populated table of a schema, in dependency order, independent
  tables at the same time;
- `external_gc_flow`: garbage collection of a schema's external stores (dry run by default);
- `export_flow`: a join of tables to Parquet.
"""

from .export import export_flow
from .external_gc import external_gc_flow
from .image_pipeline import image_pipeline
from .populate import populate_flow

__all__ = ["export_flow", "external_gc_flow", "image_pipeline", "populate_flow"]
