"""One-shot set-up of a dj-flows site (the compose stack's `setup` service; safe to run again):

1. the S3 bucket of the stores, if missing;
2. the blocks deployments/prefect.yaml names: the DataJoint Database `dj-flows-db` (MySQL) and
   the DataJoint Stores `dj-flows-shared` and `dj-flows-local` (prefixes shared/ and local/ of
   the bucket), overwritten with the current settings;
3. the process work pool `dj-flows`, if missing;
4. `prefect deploy --all` with deployments/prefect.yaml (unless --no-deploy).

Settings come from the environment (compose.yaml passes them; secrets from docker/.env):

    PREFECT_API_URL                       the Prefect server's API
    DJ_HOST, DJ_PORT, DJ_USER, DJ_PASS    MySQL (DJ_USE_TLS=true to require TLS)
    DJ_FLOWS_S3_ENDPOINT                  host:port of the S3 server
    DJ_FLOWS_S3_BUCKET                    bucket of both stores
    DJ_FLOWS_S3_ACCESS_KEY, DJ_FLOWS_S3_SECRET_KEY, DJ_FLOWS_S3_SECURE (true for HTTPS)
    DJ_FLOWS_SCHEMA, DJ_FLOWS_OUTPUT, DJ_FLOWS_EXPORT_URL   read by prefect.yaml at deploy time

    python docker/setup_site.py [--no-deploy]
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

HOME = Path(os.environ.get("DJ_FLOWS_HOME") or Path(__file__).resolve().parents[1])
POOL = "dj-flows"
DATABASE_BLOCK = "dj-flows-db"
STORE_BLOCKS = {"shared": "dj-flows-shared", "local": "dj-flows-local"}
REQUIRED = ("PREFECT_API_URL", "DJ_HOST", "DJ_USER", "DJ_PASS", "DJ_FLOWS_S3_ENDPOINT",
            "DJ_FLOWS_S3_BUCKET", "DJ_FLOWS_S3_ACCESS_KEY", "DJ_FLOWS_S3_SECRET_KEY")


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes")


def check_environment() -> None:
    # DJ_PASS must be set but may be empty (a development server's root)
    missing = [n for n in REQUIRED if not os.environ.get(n) and not (n == "DJ_PASS" and n in os.environ)]
    if missing:
        sys.exit(f"setup_site: set {', '.join(missing)} (see docker/.env.example)")


def create_bucket() -> None:
    import s3fs

    secure = _flag("DJ_FLOWS_S3_SECURE")
    fs = s3fs.S3FileSystem(
        key=os.environ["DJ_FLOWS_S3_ACCESS_KEY"],
        secret=os.environ["DJ_FLOWS_S3_SECRET_KEY"],
        client_kwargs={
            "endpoint_url": f"{'https' if secure else 'http'}://{os.environ['DJ_FLOWS_S3_ENDPOINT']}"
        },
    )
    bucket = os.environ["DJ_FLOWS_S3_BUCKET"]
    if not fs.exists(bucket):
        fs.mkdir(bucket)
        print(f"created bucket {bucket!r}")


def save_blocks() -> None:
    from dj_flows.prefect.blocks import DataJointDatabase, DataJointStore

    DataJointDatabase(
        backend="mysql",
        host=os.environ["DJ_HOST"],
        port=int(os.environ.get("DJ_PORT") or 3306),
        user=os.environ["DJ_USER"],
        password=os.environ["DJ_PASS"],
        use_tls=True if _flag("DJ_USE_TLS") else False,
    ).save(DATABASE_BLOCK, overwrite=True)
    for store, block in STORE_BLOCKS.items():
        DataJointStore(
            name=store,
            protocol="s3",
            endpoint=os.environ["DJ_FLOWS_S3_ENDPOINT"],
            bucket=os.environ["DJ_FLOWS_S3_BUCKET"],
            location=store,
            access_key=os.environ["DJ_FLOWS_S3_ACCESS_KEY"],
            secret_key=os.environ["DJ_FLOWS_S3_SECRET_KEY"],
            secure=_flag("DJ_FLOWS_S3_SECURE"),
        ).save(block, overwrite=True)
    print(f"saved blocks {DATABASE_BLOCK}, {', '.join(STORE_BLOCKS.values())}")


def prefect(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "prefect", *args], cwd=HOME, text=True, capture_output=True
    )


def create_pool() -> None:
    if prefect("work-pool", "inspect", POOL).returncode == 0:
        return
    done = prefect("work-pool", "create", POOL, "--type", "process")
    if done.returncode != 0:
        sys.exit(f"setup_site: could not create work pool {POOL!r}:\n{done.stdout}{done.stderr}")
    print(f"created work pool {POOL!r}")


def deploy() -> None:
    done = prefect(
        "--no-prompt", "deploy", "--all", "--prefect-file", str(HOME / "deployments/prefect.yaml")
    )
    print(done.stdout + done.stderr)
    if done.returncode != 0:
        sys.exit("setup_site: prefect deploy failed")


def main(argv: list[str]) -> None:
    check_environment()
    create_bucket()
    save_blocks()
    create_pool()
    if "--no-deploy" not in argv:
        deploy()


if __name__ == "__main__":
    main(sys.argv[1:])
