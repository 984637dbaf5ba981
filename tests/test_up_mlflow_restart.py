"""MLflow dies under a running `judgeloop up`: it is restarted (a bounded number of times) while
Dagster keeps running, and the other commands reach it again."""

import os
import signal
from pathlib import Path

import pytest
import requests

from judgeloop.stack import servers
from tests.e2e_support import http_ok, run_judgeloop, start_up, wait_until


def mlflow_server_pid(port: int) -> int | None:
    """The `mlflow server` process leading its group on ``port`` (the one `up` started)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            args = [a.decode() for a in (entry / "cmdline").read_bytes().split(b"\0") if a]
            pid = int(entry.name)
            if "mlflow" in args and "server" in args and str(port) in args and os.getpgid(pid) == pid:
                return pid
        except (OSError, ProcessLookupError):
            continue
    return None


def test_the_restart_budget_is_bounded_per_window():
    budget = servers.RestartBudget(limit=3, window=3600)
    assert [budget.allow(t) for t in (0, 10, 20, 30)] == [True, True, True, False]
    assert budget.allow(3601)  # the first restart left the window


@pytest.mark.slow
def test_mlflow_killed_under_up_is_restarted_and_dagster_keeps_running(tmp_path):
    home = tmp_path / "state"
    up = start_up(home, tmp_path / "work", "--no-launch")
    try:
        up.wait_ready()
        dagster_pid_before = up.popen.pid
        first = mlflow_server_pid(up.mlflow_port)
        assert first, up.logs()
        os.killpg(first, signal.SIGKILL)  # the whole server, workers too: a crash

        def restarted():
            if up.popen.poll() is not None:
                pytest.fail(f"judgeloop up stopped instead of restarting MLflow\n{up.logs()}")
            return "MLflow is back" in up.stdout

        wait_until(restarted, 300, message="MLflow restarted", on_timeout=up.logs)
        assert "MLflow exited" in up.stderr and "restarting it" in up.stderr, up.stderr
        assert up.popen.poll() is None and up.popen.pid == dagster_pid_before
        second = mlflow_server_pid(up.mlflow_port)
        assert second and second != first
        assert http_ok(f"{up.mlflow_url}/health")
        assert requests.get(f"{up.dagster_url}/server_info", timeout=10).ok  # Dagster never stopped

        status = run_judgeloop(home, tmp_path / "shell", "status")  # finds the server through running.json
        assert status.returncode == 0, status.stderr

        assert up.interrupt(120) == 130, up.logs()
        assert "judgeloop: stopped." in up.stdout
        wait_until(lambda: up.leftovers() == [] or None, 15, interval=0.5, message="no leftovers",
                   on_timeout=lambda: "\n".join(up.leftovers()))
    finally:
        up.shutdown()
