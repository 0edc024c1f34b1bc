"""dj-flows: a DataJoint-compatible pipeline engine (SQLite or MySQL; folder, S3 or any fsspec store)
whose work runs as Prefect 3 flows. `import dj_flows as dj` gives DataJoint's public API."""

from . import errors, export
from .codecs import MatCell, MatStruct, blob
from .condition import AndList, Not
from .connection import Connection, conn
from .diagram import Diagram
from .errors import DataJointError
from .export import import_parquet
from .expression import QueryExpression
from .schema import Schema, list_schemas, schema
from .settings import config
from .table import FreeTable, Table
from .tiers import Computed, Imported, Lookup, Manual, Part
from .version import __version__

ERD = Di = Diagram

__all__ = [
    "AndList",
    "Computed",
    "Connection",
    "DataJointError",
    "Di",
    "Diagram",
    "ERD",
    "FreeTable",
    "Imported",
    "Lookup",
    "MatCell",
    "MatStruct",
    "Manual",
    "Not",
    "Part",
    "QueryExpression",
    "Schema",
    "Table",
    "__version__",
    "blob",
    "config",
    "conn",
    "errors",
    "export",
    "import_parquet",
    "list_schemas",
    "schema",
]
