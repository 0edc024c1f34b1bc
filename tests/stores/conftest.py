"""Store fixtures: one Store per backend, for the shared suite in suite.py."""

from __future__ import annotations

import uuid

import pytest

from dj_flows.stores import Store


@pytest.fixture(scope="module")
def s3_module_bucket(s3_server) -> str:
    """One bucket per test module (creating a bucket costs SeaweedFS a volume allocation)."""
    return s3_server.new_bucket("stores")


@pytest.fixture
def file_store(tmp_path) -> Store:
    return Store.from_spec("local", {"protocol": "file", "location": str(tmp_path / "dj-store")})


@pytest.fixture
def memory_store() -> Store:
    return Store.from_spec("mem", {"protocol": "memory", "location": f"/dj-{uuid.uuid4().hex}"})


@pytest.fixture
def s3_store(s3_server, s3_module_bucket) -> Store:
    location = f"loc-{uuid.uuid4().hex[:8]}/sub"
    return Store.from_spec("shared", s3_server.store_spec(s3_module_bucket, location))
