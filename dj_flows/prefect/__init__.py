"""The Prefect layer: blocks and tasks that expose the dj-flows engine to Prefect 3 flows.

Importing this module registers the blocks with Prefect; the `prefect.collections` entry point
names it so that Prefect servers and workers load it on their own. The flows built from these
tasks are in `dj_flows.flows`.
"""

from .blocks import DataJointDatabase, DataJointStore
from .download import DownloadError, TransientDownloadError, download, download_task
from .runtime import configure, configured, is_transient, retry_on_transient
from .tasks import (
    contact_sheet_task,
    declare_task,
    export_task,
    gc_task,
    load_catalog_task,
    populate_task,
    status_task,
)

__all__ = [
    "DataJointDatabase",
    "DataJointStore",
    "DownloadError",
    "TransientDownloadError",
    "configure",
    "configured",
    "contact_sheet_task",
    "declare_task",
    "download",
    "download_task",
    "export_task",
    "gc_task",
    "is_transient",
    "load_catalog_task",
    "populate_task",
    "retry_on_transient",
    "status_task",
]
