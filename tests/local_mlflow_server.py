"""A local `mlflow server` on the state folder's sqlite store, started as `judgeloop up` starts it."""

from contextlib import contextmanager
from pathlib import Path

from judgeloop.stack import servers
from tests.e2e_support import clean_env


@contextmanager
def mlflow_server(home: Path, logs: Path, workers: int = 2):
    """Yields (server URL, the sqlite URI behind it)."""
    home.mkdir(parents=True, exist_ok=True)
    backend = f"sqlite:///{home / 'mlflow.db'}"
    port = servers.free_port()
    url = f"http://127.0.0.1:{port}"
    stack = servers.Stack()
    env = clean_env(home, MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false")
    try:
        process = stack.start(
            "mlflow", servers.mlflow_command("127.0.0.1", port, backend, home / "mlartifacts", False, workers=workers),
            env, logs,
        )
        servers.wait_for_http(f"{url}/health", process, timeout=180)
        yield url, backend
    finally:
        stack.stop()
