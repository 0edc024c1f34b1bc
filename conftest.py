"""Root conftest: registers the shared fixture plugins that live in tests/support/."""

pytest_plugins = [
    "tests.support.backends",
    "tests.support.s3server",
    "tests.support.prefect_harness",
    "tests.support.populate_env",
]
