"""The `s3` protocol on s3fs (no other S3 client): DataJoint 0.14's spec keys, concurrent bulk
transfers on s3fs's event loop, DeleteObjects batches, and a bucket check at first use.

Timeouts and retries are set short enough that an unreachable endpoint fails in seconds rather
than minutes (botocore's defaults retry for ~10 s per request); `storage_options` may override
any s3fs argument, including `config_kwargs`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ..errors import StoreError
from .layout import location_prefix
from .spec import StoreSpec
from .store import AsyncFsspecStore, transfer_concurrency

DELETE_BATCH = 1000  # the most keys one DeleteObjects request may carry
# DeleteObjects requests in flight at once, and how many a call of more than DELETE_SPLIT keys is
# split into at least. A server handles one request's keys one after another (SeaweedFS: a lock,
# a delete and an unlock per key, ~0.5 ms), so two half-size requests finish sooner than one
# full one; more than two were slower on a 2-core loopback server (benchmarks/bench_gc.py).
DELETE_CONCURRENCY = 2
DELETE_SPLIT = 200
DEFAULT_CONFIG = {
    "connect_timeout": 10,
    "read_timeout": 60,
    "retries": {"max_attempts": 3, "mode": "standard"},
}


class S3Store(AsyncFsspecStore):
    """A store in `bucket/location` on an S3-compatible endpoint."""

    protocol = "s3"

    def __init__(self, spec: StoreSpec) -> None:
        super().__init__(spec)
        self._pool_size = 0

    @property
    def root(self) -> str:
        prefix = location_prefix("s3", self.spec.location)
        return f"{self.spec.bucket}/{prefix}" if prefix else str(self.spec.bucket)

    def describe(self) -> str:
        return (
            f"store {self.name!r} (s3 endpoint {self.spec.endpoint_url}, bucket "
            f"{self.spec.bucket!r}, location {self.spec.location!r})"
        )

    @property
    def fs(self) -> Any:
        # the connection pool is sized when the client is made: rebuild it if the configured
        # concurrency has grown past it
        if self._fs is not None and transfer_concurrency() > self._pool_size:
            self._fs = None
        return super().fs

    def _make_filesystem(self) -> Any:
        import s3fs

        self._pool_size = max(transfer_concurrency(), 10)
        options = dict(self.spec.storage_options)
        config = {**DEFAULT_CONFIG, "max_pool_connections": self._pool_size}
        config.update(options.pop("config_kwargs", {}) or {})
        if self.spec.proxy_server:
            config["proxies"] = {"http": self.spec.proxy_server, "https": self.spec.proxy_server}
        client = {
            "endpoint_url": self.spec.endpoint_url,
            **(options.pop("client_kwargs", {}) or {}),
        }
        settings: dict[str, Any] = {
            "key": self.spec.access_key,
            "secret": self.spec.secret_key,
            "use_listings_cache": False,
            "skip_instance_cache": True,
            # concurrency is across objects (bulk calls); per-object range concurrency would
            # cost every get a HEAD request first
            "max_concurrency": 1,
        }
        settings.update(options)
        return s3fs.S3FileSystem(client_kwargs=client, config_kwargs=config, **settings)

    def _prepare(self) -> None:
        """Fail at first use if the endpoint is unreachable or the bucket does not exist."""
        try:
            self.fs.call_s3("head_bucket", Bucket=self.spec.bucket)
        except FileNotFoundError as exc:  # HEAD has no body: a bare 404, not NoSuchBucket
            raise StoreError(
                f"{self.describe()}: bucket {self.spec.bucket!r} does not exist"
            ) from exc

    def _delete_many(self, paths: list[str]) -> dict[str, BaseException]:
        fs = self.fs
        keys = [fs.split_path(path)[1] for path in paths]
        count = -(-len(keys) // DELETE_BATCH)
        if len(keys) > DELETE_SPLIT:
            count = max(count, DELETE_CONCURRENCY)
        size = -(-len(keys) // count)
        batches = [keys[i : i + size] for i in range(0, len(keys), size)]

        def job(batch: list[str]) -> Any:
            delete = {"Objects": [{"Key": key} for key in batch], "Quiet": True}
            return lambda: fs._call_s3("delete_objects", Bucket=self.spec.bucket, Delete=delete)

        jobs = {str(i): job(batch) for i, batch in enumerate(batches)}
        results = self._run_bounded(jobs, DELETE_CONCURRENCY)
        failures: dict[str, BaseException] = {}
        for i, batch in enumerate(batches):
            result = results[str(i)]
            if isinstance(result, BaseException):
                failures.update({f"{self.spec.bucket}/{key}": result for key in batch})
                continue
            for error in result.get("Errors", []):
                failures[f"{self.spec.bucket}/{error.get('Key')}"] = OSError(
                    f"{error.get('Code')}: {error.get('Message')}"
                )
        return failures

    def _walk(self, path: str) -> Iterator[tuple[str, int, float | None]]:
        # a key prefix that is a "folder": list below path/, never a sibling like path-other
        yield from super()._walk(path.rstrip("/") + "/" if path != self.spec.bucket else path)
