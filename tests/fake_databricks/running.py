"""Start and stop the fake workspace in front of a real local ``mlflow server`` (tests, benchmarks)."""

import os
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from judgeloop.stack.servers import Stack, free_port, wait_for_http
from tests.fake_databricks.workspace import FakeDatabricks, serve

AGENTS_BOUNDARY = Path(__file__).resolve().parent / "agents_boundary"
ENGINEER_TOKEN = "dapi-fake-engineer"
REVIEWER_TOKENS = {"dapi-fake-ana": "ana@example.com", "dapi-fake-ben": "ben@example.com"}


@dataclass
class RunningWorkspace:
    url: str
    mlflow_url: str
    fake: FakeDatabricks
    state: Path

    def env(self) -> dict[str, str]:
        """What a process needs to run judgeloop against this workspace (Databricks mode)."""
        return {
            "DATABRICKS_HOST": self.url,
            "DATABRICKS_TOKEN": ENGINEER_TOKEN,
            "JUDGELOOP_TRACKING_URI": "databricks",
            "JUDGELOOP_UC_SCHEMA": "main.judgeloop",
            "JUDGELOOP_EXPERIMENT_NAME": "/Shared/judgeloop",
            "FAKE_DATABRICKS_UC_DIR": str(self.state / "unity-catalog"),
            "PYTHONPATH": os.pathsep.join([str(AGENTS_BOUNDARY), os.environ.get("PYTHONPATH", "")]),
        }


def use_agents_boundary() -> None:
    """Make ``databricks.agents`` importable in this process (the stand-in, see its docstring)."""
    import databricks

    if str(AGENTS_BOUNDARY / "databricks") not in databricks.__path__:
        databricks.__path__.append(str(AGENTS_BOUNDARY / "databricks"))


@contextmanager
def fake_workspace(state: Path):
    state.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    stack = Stack()
    try:
        server = stack.start(
            "mlflow",
            [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
             "--backend-store-uri", f"sqlite:///{state / 'mlflow.db'}",
             "--default-artifact-root", (state / "artifacts").as_uri(), "--no-serve-artifacts", "--workers", "1"],
            env, state / "logs",
        )
        mlflow_url = f"http://127.0.0.1:{port}"
        wait_for_http(f"{mlflow_url}/health", server, timeout=180)
        fake = FakeDatabricks(mlflow_url, {ENGINEER_TOKEN: "engineer@example.com", **REVIEWER_TOKENS})
        url, stop = serve(fake)
        try:
            yield RunningWorkspace(url, mlflow_url, fake, state)
        finally:
            stop()
    finally:
        stack.stop()


def databricks_mode(monkeypatch, running: RunningWorkspace, home: Path, experiment_name: str) -> None:
    """This test process in Databricks mode against ``running`` (one experiment per test)."""
    for key in list(os.environ):
        if key.startswith("DATABRICKS_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("DATABRICKS_CONFIG_FILE", str(home / "no-databrickscfg"))  # ignore the developer's profiles
    for key, value in running.env().items():
        if key != "PYTHONPATH":
            monkeypatch.setenv(key, value)
    monkeypatch.setenv("JUDGELOOP_EXPERIMENT_NAME", experiment_name)
    use_agents_boundary()
