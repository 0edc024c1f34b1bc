"""Read what flows published to the (test harness's) Prefect API."""

from __future__ import annotations


def artifacts(key: str) -> list:
    """The artifacts stored under `key`, newest version history included."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    with get_client(sync_client=True) as client:
        return client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])))
