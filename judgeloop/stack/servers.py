"""Starts and stops the local MLflow server and ``dagster dev`` as process groups."""

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests

REPO_ROOT = Path(__file__).resolve().parents[2]


class StartupError(RuntimeError):
    """Something prevents starting (port taken, state folder unusable, server not answering)."""


def port_is_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def check_state_folder(home: Path) -> None:
    try:
        # Created owner-only: it holds MLflow's store (and in team mode the passwords); never
        # world-readable first and narrowed later.
        home.mkdir(mode=0o700, parents=True, exist_ok=True)
        marker = home / ".write-test"
        marker.write_text("ok")
        marker.unlink()
    except OSError as exc:
        raise StartupError(f"State folder {home} is not usable ({exc}); set JUDGELOOP_HOME to a writable folder.") from exc


def check_ports(host: str, ports: dict[str, int]) -> None:
    taken = [f"{name} port {port}" for name, port in ports.items() if not port_is_free(host, port)]
    if taken:
        raise StartupError(
            f"{' and '.join(taken)} on {host} already in use; stop what uses it or pick another with "
            "--mlflow-port / --dagster-port. Nothing was started."
        )


@dataclass
class Process:
    name: str
    popen: subprocess.Popen
    log_path: Path
    # How it was started, so ``Stack.restart`` can start it again the same way.
    command: list[str] = field(default_factory=list)
    env: dict = field(default_factory=dict)
    cwd: Path | None = None

    def stop(self, grace: float = 30.0) -> None:
        """SIGINT to the whole group (dagster dev and mlflow spawn children), then SIGKILL."""
        if self.popen.poll() is not None and not _group_alive(self.popen.pid):
            return
        for sig, wait in ((signal.SIGINT, grace), (signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(self.popen.pid, sig)
            except ProcessLookupError:
                return
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline:
                if self.popen.poll() is not None and not _group_alive(self.popen.pid):
                    return
                time.sleep(0.2)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass
class Stack:
    processes: list[Process] = field(default_factory=list)

    def start(self, name: str, command: list[str], env: dict, log_dir: Path, cwd: Path | None = None) -> Process:
        log_dir.mkdir(parents=True, exist_ok=True)
        log_path = log_dir / f"{name}.log"
        log_file = open(log_path, "ab")
        popen = subprocess.Popen(
            command, env=env, cwd=str(cwd) if cwd else None, stdout=log_file, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )
        process = Process(name, popen, log_path, list(command), dict(env), cwd)
        self.processes.append(process)
        return process

    def restart(self, process: Process, grace: float = 10.0) -> Process:
        """Stop what is left of ``process``'s group (workers outlive a killed server and hold its
        port) and start it again, in its place in the stop order."""
        process.stop(grace=grace)
        index = self.processes.index(process)
        self.processes.remove(process)
        fresh = self.start(process.name, process.command, process.env, process.log_path.parent, cwd=process.cwd)
        self.processes.remove(fresh)
        self.processes.insert(index, fresh)
        return fresh

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.stop()


class RestartBudget:
    """At most ``limit`` restarts within any ``window`` seconds: a server that keeps crashing is
    given up on instead of being restarted forever."""

    def __init__(self, limit: int, window: float):
        self.limit, self.window = limit, window
        self.restarts: list[float] = []

    def allow(self, now: float) -> bool:
        self.restarts = [t for t in self.restarts if now - t < self.window]
        if len(self.restarts) >= self.limit:
            return False
        self.restarts.append(now)
        return True


def wait_for_http(url: str, process: Process, timeout: float, auth=None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.popen.poll() is not None:
            raise StartupError(f"{process.name} exited with code {process.popen.returncode}; see {process.log_path}")
        try:
            if requests.get(url, timeout=2, auth=auth).status_code < 500:
                return
        except requests.RequestException:
            pass
        time.sleep(0.5)
    raise StartupError(f"{process.name} did not answer {url} within {timeout:.0f} s; see {process.log_path}")


def mlflow_command(
    host: str, port: int, backend_uri: str, artifacts: Path | str, team: bool, workers: int = 2
) -> list[str]:
    """``mlflow server`` proxying artifacts: a local folder, or ``s3://bucket/prefix`` (with
    MLFLOW_S3_ENDPOINT_URL for an S3-compatible store) so clients never need storage credentials."""
    command = [
        sys.executable, "-m", "mlflow", "server", "--host", host, "--port", str(port),
        "--backend-store-uri", backend_uri, "--artifacts-destination", str(artifacts), "--workers", str(workers),
    ]
    if team:
        command += ["--app-name", "basic-auth"]
    return command


def dagster_command(host: str, port: int) -> tuple[list[str], Path | None]:
    workspace = REPO_ROOT / "workspace.yaml"
    target = ["-w", str(workspace)] if workspace.exists() else ["-m", "judgeloop_assets.definitions"]
    dagster = Path(sys.executable).with_name("dagster")
    executable = [str(dagster)] if dagster.exists() else [sys.executable, "-m", "dagster"]
    return [*executable, "dev", *target, "-h", host, "-p", str(port)], (REPO_ROOT if workspace.exists() else None)


# Dagster's storage URL (see database_url.dagster_storage_url), set by `judgeloop up` for its children.
DAGSTER_STORAGE_URL_VARIABLE = "DAGSTER_POSTGRES_URL"


def dagster_yaml(database_url: str | None) -> str:
    """The instance config ``judgeloop up`` runs Dagster with.

    Runs of the loop queue behind each other (one at a time, tag ``judgeloop/queue: loop``):
    without it, the sensor's realign runs (one per label batch) ran in parallel with each other
    and with the foundation run, and 2 cores gain nothing from it. Live agreement runs have a
    queue of their own (``judgeloop/queue: after``), so one that is slow or hangs never holds
    back the next re-alignment. The realign pool gets one slot, so even where runs do overlap (another
    deployment, a run launched by hand) two promotion steps never do. With a database, Dagster's
    storage lives in its own schema there; its URL is read from the environment, so no password lands on disk.
    """
    text = (
        "# Written by `judgeloop up` at every start. For a deployment of your own, see deploy/dagster.yaml.\n"
        "telemetry:\n  enabled: false\n"
        "concurrency:\n  runs:\n    max_concurrent_runs: 2\n    tag_concurrency_limits:\n"
        "      - key: judgeloop/queue\n        value: loop\n        limit: 1\n"
        "      - key: judgeloop/queue\n        value: after\n        limit: 1\n"
        "  pools:\n    default_limit: 1\n"
        # Run monitoring enforces each run's dagster/max_runtime tag (JUDGELOOP_MAX_RUN_SECONDS).
        "run_monitoring:\n  enabled: true\n  poll_interval_seconds: 30\n"
        # The daemon looks at the run queue every 5 s by default: up to 5 s between the sensor's
        # request and the run's start, on every label batch. A look at an empty queue is one query.
        "run_coordinator:\n  module: dagster._core.run_coordinator\n  class: QueuedRunCoordinator\n"
        "  config:\n    dequeue_interval_seconds: 1\n"
    )
    if database_url:
        text += f"storage:\n  postgres:\n    postgres_url:\n      env: {DAGSTER_STORAGE_URL_VARIABLE}\n"
    return text


def write_dagster_yaml(dagster_home: Path, database_url: str | None = None) -> None:
    dagster_home.mkdir(parents=True, exist_ok=True)
    (dagster_home / "dagster.yaml").write_text(dagster_yaml(database_url))
