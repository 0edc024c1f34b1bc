"""A real Prefect server for the deployment test: `prefect server start` on a free loopback port,
with its own PREFECT_HOME, and the CLI commands run against it in subprocesses.

Everything Prefect-related runs in child processes with an explicit environment built from
scratch (no PREFECT_* or DJ_* variable of the test session leaks in), so the test talks to this
server only, whatever else the session started. Processes are started in their own session and
stopped by their process-group id (the PID of the process we started).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
STARTUP_SECONDS = 180


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def clean_environment() -> dict[str, str]:
    """os.environ without the session's Prefect and dj-flows settings."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "DJ_"))}


def stop(process: subprocess.Popen, timeout: float = 20) -> None:
    """SIGTERM the process group we started (its id is the process's PID), then SIGKILL."""
    if process.poll() is not None:
        return
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 10)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


class PrefectServer:
    """`prefect server start` in a subprocess; `cli()` and `api()` talk to it."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/api"
        self.log = home / "server.log"
        self.process: subprocess.Popen | None = None
        self.env = {
            **clean_environment(),
            "PREFECT_HOME": str(home),
            "PREFECT_API_URL": self.url,
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_UI_ENABLED": "false",
            "PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS": "2",
            "PREFECT_LOGGING_LEVEL": "INFO",
        }

    def start(self) -> PrefectServer:
        """Launch the server and wait until it is healthy."""
        return self.launch().wait_healthy()

    def launch(self) -> PrefectServer:
        """Start `prefect server start` without waiting (other set-up can run meanwhile)."""
        self.home.mkdir(parents=True, exist_ok=True)
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(
                [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1",
                 "--port", str(self.port)],
                env=self.env, cwd=self.home, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    def wait_healthy(self) -> PrefectServer:
        deadline = time.monotonic() + STARTUP_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"prefect server exited:\n{self.log.read_text()[-3000:]}")
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"prefect server not healthy after {STARTUP_SECONDS} s")

    def stop(self) -> None:
        if self.process is not None:
            stop(self.process)

    def popen(self, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
        """`python <args>` in the repository root, in the background, output piped."""
        return subprocess.Popen(
            [sys.executable, *args], cwd=ROOT, env={**self.env, **(env or {})},
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
        )

    def run(self, *args: str, env: dict[str, str] | None = None, timeout: float = 180):
        """Run `prefect <args>` (or `python <args>` when they start with -m or a script) in the
        repository root; returns the CompletedProcess, raising with its output on failure."""
        python = args[0] == "-m" or args[0].endswith(".py")
        command = [sys.executable, *args] if python else [str(BIN / "prefect"), *args]
        done = subprocess.run(
            command, cwd=ROOT, env={**self.env, **(env or {})}, capture_output=True, text=True,
            timeout=timeout,
        )
        if done.returncode != 0:
            raise AssertionError(
                f"{' '.join(args)} failed ({done.returncode}):\n{done.stdout}{done.stderr}"
            )
        return done

    def cli(self, *args: str, env: dict[str, str] | None = None, timeout: float = 180) -> str:
        """Like run(); returns stdout and stderr as one text."""
        done = self.run(*args, env=env, timeout=timeout)
        return done.stdout + done.stderr

    def api(self, method: str, path: str, body: Any = None) -> Any:
        response = httpx.request(method, f"{self.url}{path}", json=body, timeout=30)
        response.raise_for_status()
        return response.json() if response.content else None
