"""Entry point: the populate flow on the task runner the worker's environment names.

`DJ_FLOWS_TASK_RUNNER=dask` (the default here) with `DJ_FLOWS_DASK_ADDRESS=tcp://host:8786` runs
the tasks on that Dask cluster; without an address, on a LocalCluster of `DJ_FLOWS_DASK_WORKERS`
processes (default 2). Needs the `dask` extra (prefect-dask). See dj_flows.flows.populate.
"""

import os

from dj_flows.flows.populate import task_runner_from_environment, with_task_runner

populate_dask_flow = with_task_runner(
    task_runner_from_environment({"DJ_FLOWS_TASK_RUNNER": "dask", **os.environ})
)

__all__ = ["populate_dask_flow"]
