"""The Prefect layer: blocks and tasks that expose the dj-flows engine to Prefect 3 flows.

Importing this module registers the blocks with Prefect; the `prefect.collections` entry point
names it so that Prefect servers and workers load it on their own.
"""

from .blocks import DataJointDatabase, DataJointStore
from .download import DownloadError, TransientDownloadError, download, download_task

__all__ = [
    "DataJointDatabase",
    "DataJointStore",
    "DownloadError",
    "TransientDownloadError",
    "download",
    "download_task",
]
