"""dj-flows: a DataJoint-compatible pipeline engine (SQLite or MySQL; folder, S3 or any fsspec store)
whose work runs as Prefect 3 flows. `import dj_flows as dj` gives DataJoint's public API."""

from .errors import DataJointError
from .settings import config

__version__ = "0.1.0"

__all__ = ["DataJointError", "config", "__version__"]
