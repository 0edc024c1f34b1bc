"""docker/: the compose stack and the worker image, checked without a Docker engine.

The machine that runs these tests has no Docker engine, so nothing here builds or starts a
container. What is checked: the compose file against Compose's own schema (`docker compose
config`, or the standalone `docker-compose`, when either client is installed; both validate
without an engine) and, always, the structure this project relies on (services, healthchecks,
volumes, start order, secrets from docker/.env); and that the Dockerfile's instructions name
real paths, a real extra, a real work pool and CLI options that exist.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.deploy.prefect_server import BIN, ROOT, clean_environment

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

DOCKER = ROOT / "docker"
COMPOSE = DOCKER / "compose.yaml"
DOCKERFILE = DOCKER / "Dockerfile"
ENV_EXAMPLE = DOCKER / ".env.example"
SECRETS = ("MYSQL_ROOT_PASSWORD", "DJ_MYSQL_PASSWORD", "PREFECT_DB_PASSWORD", "DJ_S3_ACCESS_KEY",
           "DJ_S3_SECRET_KEY")
DJ_FLOWS_SERVICES = ("setup", "worker", "dask-scheduler", "dask-worker")


def compose_client() -> list[str] | None:
    """`docker compose` (the plugin) or `docker-compose` (standalone), whichever works."""
    candidates = []
    if shutil.which("docker"):
        candidates.append(["docker", "compose"])
    if shutil.which("docker-compose"):
        candidates.append(["docker-compose"])
    for command in candidates:
        done = subprocess.run([*command, "version"], capture_output=True, text=True, timeout=60)
        if done.returncode == 0:
            return command
    return None


def compose_config(env_file: Path) -> subprocess.CompletedProcess:
    client = compose_client()
    assert client is not None
    return subprocess.run(
        [*client, "--env-file", str(env_file), "-f", str(COMPOSE), "config"],
        cwd=DOCKER, env=clean_environment(), capture_output=True, text=True, timeout=120,
    )


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


@pytest.fixture(scope="module")
def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    instructions, current = [], ""
    for line in DOCKERFILE.read_text().splitlines():
        if not current and (not line.strip() or line.lstrip().startswith("#")):
            continue
        current += line.rstrip("\\").strip() + " "
        if not line.endswith("\\"):
            keyword, _, rest = current.strip().partition(" ")
            instructions.append((keyword.upper(), rest.strip()))
            current = ""
    return instructions


# -- compose ------------------------------------------------------------------------------------
def test_compose_schema_with_the_docker_client(tmp_path):
    """Compose's own validation; skipped (with the reason) where no compose client exists."""
    if compose_client() is None:
        pytest.skip("no `docker compose` or `docker-compose` client here: YAML checks only")
    done = compose_config(ENV_EXAMPLE)
    assert done.returncode == 0, done.stderr
    resolved = yaml.safe_load(done.stdout)
    assert set(resolved["services"]) >= {"mysql", "s3", "postgres", "prefect-server", "setup",
                                         "worker"}
    build = resolved["services"]["worker"]["build"]
    assert Path(build["context"]) == ROOT and build["dockerfile"] == "docker/Dockerfile"
    # with no passwords the stack refuses to start, naming what to set
    empty = tmp_path / "empty.env"
    empty.write_text("")
    refused = compose_config(empty)
    assert refused.returncode != 0
    assert "set MYSQL_ROOT_PASSWORD in docker/.env" in refused.stderr + refused.stdout


def test_compose_services_healthchecks_and_start_order(compose):
    services = compose["services"]
    assert services["mysql"]["image"].startswith("mysql:8")
    assert services["postgres"]["image"].startswith("postgres:")
    assert services["prefect-server"]["image"].startswith("prefecthq/prefect:")
    server_db = services["prefect-server"]["environment"]["PREFECT_API_DATABASE_CONNECTION_URL"]
    assert server_db.startswith("postgresql+asyncpg://") and "@postgres:5432/" in server_db
    for name in ("mysql", "s3", "postgres", "prefect-server", "worker", "dask-scheduler"):
        check = services[name]["healthcheck"]
        assert check["test"][0] in ("CMD", "CMD-SHELL") and check["retries"] >= 3, name
    for name, volume in (("mysql", "/var/lib/mysql"), ("s3", "/data"),
                         ("postgres", "/var/lib/postgresql/data"), ("worker", "/data")):
        named = [v.split(":")[0] for v in services[name]["volumes"] if v.endswith(volume)]
        assert named and named[0] in compose["volumes"], name
    # start order: databases healthy -> server healthy -> setup done -> workers
    assert services["prefect-server"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert {s: c["condition"] for s, c in services["setup"]["depends_on"].items()} == {
        "mysql": "service_healthy", "s3": "service_healthy", "prefect-server": "service_healthy"}
    assert services["worker"]["depends_on"]["setup"]["condition"] == "service_completed_successfully"
    assert services["dask-scheduler"]["profiles"] == services["dask-worker"]["profiles"] == ["dask"]


def test_compose_dj_flows_services_run_the_image_with_the_server_and_blocks(compose):
    services = compose["services"]
    for name in DJ_FLOWS_SERVICES:
        service = services[name]
        assert service["build"] == {"context": "..", "dockerfile": "docker/Dockerfile",
                                    "args": {"PREFECT_VERSION": "${PREFECT_VERSION:-3.9.1}"}}
        context = (DOCKER / service["build"]["context"]).resolve()
        assert context == ROOT and context / service["build"]["dockerfile"] == DOCKERFILE
    for name in ("setup", "worker", "dask-worker"):
        environment = services[name]["environment"]
        assert environment["PREFECT_API_URL"] == "http://prefect-server:4200/api"
        assert environment["DJ_HOST"] == "mysql" and environment["DJ_FLOWS_S3_ENDPOINT"] == "s3:9000"
    assert services["worker"]["environment"]["DJ_FLOWS_HOME"] == "/opt/dj-flows"
    worker = services["worker"]["command"]
    assert worker[:3] == ["prefect", "worker", "start"]
    pool = worker[worker.index("--pool") + 1]
    prefect_yaml = yaml.safe_load((ROOT / "deployments" / "prefect.yaml").read_text())
    assert {d["work_pool"]["name"] for d in prefect_yaml["deployments"]} == {pool}
    setup = services["setup"]["command"]
    assert setup[0] == "python" and (ROOT / setup[1]).is_file()
    assert services["dask-worker"]["command"][2] == "tcp://dask-scheduler:8786"
    # the passwords come from docker/.env (never written in the file), and the example names them
    text = COMPOSE.read_text()
    example = dict(line.split("=", 1) for line in ENV_EXAMPLE.read_text().splitlines()
                   if line and not line.startswith("#"))
    for secret in SECRETS:
        assert f"${{{secret}:?set {secret} in docker/.env}}" in text
        assert secret in example
    for key, value in re.findall(r"^\s*(\w*(?:PASSWORD|SECRET|_KEY)\w*):\s*(.+)$", text, re.M):
        assert value.startswith("${"), f"{key} is written in compose.yaml: {value}"
    mysql_init = services["mysql"]["volumes"][1].split(":")[0]
    assert (DOCKER / mysql_init / "01-grants.sql").is_file()
    assert "'djflows'@'%'" in (DOCKER / mysql_init / "01-grants.sql").read_text()
    assert services["mysql"]["environment"]["MYSQL_USER"] == "djflows"


# -- Dockerfile ---------------------------------------------------------------------------------
def test_dockerfile_copies_real_paths_that_the_build_context_keeps(dockerfile):
    copies = [shlex.split(arguments) for keyword, arguments in dockerfile if keyword == "COPY"]
    assert copies
    ignore = [line for line in (DOCKER / "Dockerfile.dockerignore").read_text().splitlines()
              if line and not line.startswith("#")]
    kept = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    for *sources, _target in copies:
        for source in sources:
            assert (ROOT / source).exists(), f"COPY {source}: no such path in the repository"
            assert source.rstrip("/") in kept, f"COPY {source}: excluded by the .dockerignore"
    copied = {s.rstrip("/") for *sources, _ in copies for s in sources}
    # what the deployments and the compose file use from the image is copied into it
    prefect_yaml = yaml.safe_load((ROOT / "deployments" / "prefect.yaml").read_text())
    for spec in prefect_yaml["deployments"]:
        assert spec["entrypoint"].split("/")[0] in copied
    assert {"deployments", "docker/setup_site.py", "dj_flows", "pyproject.toml"} <= copied
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert pyproject["project"]["readme"] in copied  # pip install reads it


def test_dockerfile_installs_the_package_with_a_real_extra(dockerfile):
    keywords = dict(dockerfile)
    env = " ".join(arguments for keyword, arguments in dockerfile if keyword == "ENV")
    assert f"DJ_FLOWS_HOME={keywords['WORKDIR']}" in env  # the deployments' pull step target
    installs = [a for k, a in dockerfile if k == "RUN" and "pip install" in a]
    (install,) = installs
    extras = re.findall(r'"\.\[([a-z,]+)\]"', install)
    assert extras == ["dask"]
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert set(extras[0].split(",")) <= set(pyproject["project"]["optional-dependencies"])
    assert '"prefect==${PREFECT_VERSION}"' in install
    args = [a.split("=") for k, a in dockerfile if k == "ARG"]
    assert ["PREFECT_VERSION", "3.9.1"] in args
    import prefect

    assert prefect.__version__ == "3.9.1"  # the version pinned for the image and the server


def test_dockerfile_commands_exist_in_the_installed_package(dockerfile):
    """The CMD and the compose commands run programs and options this environment (the same
    package and extra as the image) really has."""
    (cmd,) = [json.loads(a) for k, a in dockerfile if k == "CMD"]
    assert cmd[:3] == ["prefect", "worker", "start"]
    help_text = subprocess.run([str(BIN / "prefect"), "worker", "start", "--help"],
                               capture_output=True, text=True, timeout=120).stdout
    for option in (o for o in cmd[3:] if o.startswith("--")):
        assert option in help_text, option
    port = re.search(r"PREFECT_WORKER_WEBSERVER_PORT=(\d+)", " ".join(
        a for k, a in dockerfile if k == "ENV")).group(1)
    (healthcheck,) = [a for k, a in dockerfile if k == "HEALTHCHECK"]
    assert f"http://127.0.0.1:{port}/health" in healthcheck
    import prefect.settings as ps

    assert ps.PREFECT_WORKER_WEBSERVER_PORT.value() == 8080  # the setting exists (default 8080)
    for program in (["dask", "scheduler", "--help"], ["dask", "worker", "--help"]):
        done = subprocess.run([str(BIN / program[0]), *program[1:]], capture_output=True,
                              text=True, timeout=120)
        assert done.returncode == 0, done.stderr
    done = subprocess.run([str(BIN / "dask"), "worker", "--help"], capture_output=True, text=True,
                          timeout=120)
    assert "--nthreads" in done.stdout and "--nworkers" in done.stdout
    assert Path(sys.executable).parent == BIN
