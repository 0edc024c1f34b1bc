"""The shared store suite, run against the file, memory and S3 stores."""

from __future__ import annotations

import pytest

from dj_flows.stores import Store

from .suite import StoreSuite


class TestFileStore(StoreSuite):
    @pytest.fixture
    def store(self, file_store: Store) -> Store:
        return file_store


class TestMemoryStore(StoreSuite):
    @pytest.fixture
    def store(self, memory_store: Store) -> Store:
        return memory_store


@pytest.mark.s3
class TestS3Store(StoreSuite):
    @pytest.fixture
    def store(self, s3_store: Store) -> Store:
        return s3_store
