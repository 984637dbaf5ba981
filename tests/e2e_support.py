"""Helpers for tests that run the real ``judgeloop`` command (and the servers it starts) as processes.

Everything here is bounded in time and leaves nothing behind: ``UpProcess.shutdown`` (used in
fixture teardown) SIGINTs the command's process group, then SIGKILLs the group and any process
that still carries the test's state folder in its command line or environment.
"""

import json
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests

from judgeloop.stack.servers import free_port, port_is_free
from tests.conftest import FAKE_MODELS, REPO, feedbackqa_root

JUDGELOOP = Path(sys.executable).with_name("judgeloop")
HOST = "127.0.0.1"

RUNS = """
query Runs($filter: RunsFilter) {
  runsOrError(filter: $filter) {
    __typename
    ... on Runs { results { runId jobName status startTime endTime tags { key value } } }
    ... on PythonError { message }
  }
}
"""

RUN = """
query Run($runId: ID!) {
  runOrError(runId: $runId) {
    __typename
    ... on Run { runId jobName status tags { key value } }
    ... on PythonError { message }
    ... on RunNotFoundError { message }
  }
}
"""

MATERIALIZATIONS = """
query Materializations($keys: [AssetKeyInput!], $limit: Int) {
  assetNodes(assetKeys: $keys) {
    assetKey { path }
    assetMaterializations(limit: $limit) {
      runId
      timestamp
      metadataEntries {
        label
        __typename
        ... on TextMetadataEntry { text }
        ... on IntMetadataEntry { intRepr }
        ... on FloatMetadataEntry { floatValue }
        ... on BoolMetadataEntry { boolValue }
        ... on UrlMetadataEntry { url }
        ... on MarkdownMetadataEntry { mdStr }
      }
    }
  }
}
"""

FAILURES = """
query Failures($runId: ID!) {
  logsForRun(runId: $runId) {
    ... on EventConnection {
      events {
        __typename
        ... on ExecutionStepFailureEvent { stepKey error { message causes { message stack } } }
        ... on RunFailureEvent { message }
      }
    }
  }
}
"""

SENSOR_TICKS = """
query Ticks($selector: SensorSelector!) {
  sensorOrError(sensorSelector: $selector) {
    __typename
    ... on Sensor { sensorState { status ticks(limit: 50) { status timestamp skipReason runIds error { message } } } }
  }
}
"""


def clean_env(home: Path, **extra: str) -> dict:
    """The caller's environment without judgeloop/MLflow/Dagster/provider settings, plus fake models."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JUDGELOOP_", "DAGSTER_", "OPENAI_", "MLFLOW_"))}
    env.update(FAKE_MODELS)
    env.update(
        JUDGELOOP_HOME=str(home),
        JUDGELOOP_FEEDBACKQA_PATH=str(feedbackqa_root()),
        JUDGELOOP_DEMO_ITEMS="24",
        JUDGELOOP_SENSOR_INTERVAL_SECONDS="5",
        JUDGELOOP_LABEL_THRESHOLD="10",
        PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


def wait_until(predicate, timeout: float, interval: float = 1.0, message: str = "condition", on_timeout=None):
    """Poll ``predicate`` until it returns something truthy; fail with ``on_timeout()`` text after ``timeout``."""
    deadline = time.monotonic() + timeout
    last_error = None
    while True:
        try:
            value = predicate()
        except requests.RequestException as exc:  # a busy server on 2 cores: poll again
            value, last_error = None, exc
        if value:
            return value
        if time.monotonic() > deadline:
            details = on_timeout() if on_timeout else ""
            raise AssertionError(f"{message} not reached within {timeout:.0f} s (last error: {last_error})\n{details}")
        time.sleep(interval)


def http_ok(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).status_code < 500
    except requests.RequestException:
        return False


def graphql(url: str, query: str, **variables) -> dict:
    response = requests.post(f"{url}/graphql", json={"query": query, "variables": variables}, timeout=30)
    response.raise_for_status()
    body = response.json()
    assert not body.get("errors"), body["errors"]
    return body["data"]


def runs(dagster_url: str, job: str) -> list[dict]:
    result = graphql(dagster_url, RUNS, filter={"pipelineName": job})["runsOrError"]
    assert result["__typename"] == "Runs", result
    return result["results"]


def run_failures(dagster_url: str, run_id: str) -> str:
    """The run's step failures (with their causes) and run failure message, one per line."""
    events = graphql(dagster_url, FAILURES, runId=run_id)["logsForRun"].get("events") or []
    lines = []
    for event in events:
        if event["__typename"] == "ExecutionStepFailureEvent":
            causes = " <- ".join(c["message"].strip() for c in event["error"].get("causes") or [])
            lines.append(f"step {event['stepKey']}: {event['error']['message'].strip()} {causes}".strip())
        elif event["__typename"] == "RunFailureEvent":
            lines.append(f"run: {event['message']}")
    return "\n".join(lines) or "(no failure events)"


def _metadata_value(entry: dict):
    if entry.get("intRepr") is not None:  # intValue is a 32-bit GraphQL Int: null for timestamps
        return int(entry["intRepr"])
    for key in ("text", "floatValue", "boolValue", "url"):
        if key in entry:
            return entry[key]
    return None


def materializations(dagster_url: str, asset: str, limit: int = 20) -> list[dict]:
    """Newest first: ``{"runId", "timestamp", "metadata": {label: value}}``."""
    nodes = graphql(dagster_url, MATERIALIZATIONS, keys=[{"path": [asset]}], limit=limit)["assetNodes"]
    assert len(nodes) == 1, nodes
    return [
        {
            "runId": m["runId"],
            "timestamp": m["timestamp"],
            "metadata": {e["label"]: _metadata_value(e) for e in m["metadataEntries"]},
        }
        for m in nodes[0]["assetMaterializations"]
    ]


def sensor_ticks(dagster_url: str, sensor: str = "sme_labels_sensor") -> dict:
    selector = {"repositoryLocationName": "judgeloop", "repositoryName": "__repository__", "sensorName": sensor}
    return graphql(dagster_url, SENSOR_TICKS, selector=selector)["sensorOrError"]


def _read(path: Path) -> str:
    try:
        return path.read_bytes().decode(errors="replace")
    except OSError:
        return ""


def _names_port(arg: str, ports: set[str]) -> bool:
    """``5000``, ``--port=5000``, ``127.0.0.1:5000`` or ``http://127.0.0.1:5000/...``."""
    return any(arg == p or arg.endswith(("=" + p, ":" + p)) or f":{p}/" in arg for p in ports)


def processes_mentioning(needles: list[str], ports: list[int] = ()) -> list[str]:
    """Live processes (not this one, not zombies) whose command line or environment names a needle,
    or whose command line has a port as a whole argument. Returns 'pid command' lines."""
    port_args = {str(p) for p in ports}
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            stat = (entry / "stat").read_text()
            if stat.rsplit(")", 1)[1].split()[0] in {"Z", "X"}:
                continue
            cmdline_raw = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        args = [a.decode(errors="replace") for a in cmdline_raw.split(b"\0") if a]
        cmdline = " ".join(args)
        environ = _read(entry / "environ")
        hit = any(n in cmdline or n in environ for n in needles) or any(_names_port(a, port_args) for a in args)
        if hit:
            found.append(f"{entry.name} {cmdline[:300]}")
    return found


def _kill_leftovers(needles: list[str]) -> None:
    # By state folder only: once our servers are gone, their ports may already serve someone else.
    for line in processes_mentioning(needles):
        pid = int(line.split()[0])
        for kill in (lambda: os.killpg(os.getpgid(pid), signal.SIGKILL), lambda: os.kill(pid, signal.SIGKILL)):
            try:
                kill()
            except (ProcessLookupError, PermissionError):
                pass


@dataclass
class UpProcess:
    """One ``judgeloop up`` run: its process (own group), stdout/stderr files and URLs."""

    home: Path
    mlflow_port: int
    dagster_port: int
    popen: subprocess.Popen
    stdout_path: Path
    stderr_path: Path
    env_extra: dict = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)

    @property
    def mlflow_url(self) -> str:
        return f"http://{HOST}:{self.mlflow_port}"

    @property
    def dagster_url(self) -> str:
        return f"http://{HOST}:{self.dagster_port}"

    @property
    def stdout(self) -> str:
        return _read(self.stdout_path)

    @property
    def stderr(self) -> str:
        return _read(self.stderr_path)

    def logs(self, tail: int = 3000) -> str:
        parts = [f"--- judgeloop up stdout ---\n{self.stdout[-tail:]}", f"--- stderr ---\n{self.stderr[-tail:]}"]
        for log in sorted((self.home / "logs").glob("*.log")):
            parts.append(f"--- {log.name} ---\n{_read(log)[-tail:]}")
        # The newest runs' step output (where a hung or failed asset shows what it was doing).
        runs_dir = self.home / "dagster" / "storage"
        newest = sorted((p for p in runs_dir.glob("*/compute_logs") if p.is_dir()), key=lambda p: p.stat().st_mtime)[-2:]
        for folder in newest:
            for log in sorted(folder.glob("*.err")):
                parts.append(f"--- run {folder.parent.name} {log.name} ---\n{_read(log)[-tail:]}")
        return "\n".join(parts)

    def client_env(self) -> dict:
        """Environment for another judgeloop process that should use this stack's servers."""
        return {
            **self.env_extra,
            "JUDGELOOP_TRACKING_URI": self.mlflow_url,
            "JUDGELOOP_BACKEND_STORE_URI": f"sqlite:///{self.home / 'mlflow.db'}",
        }

    def experiment_id(self) -> str:
        match = re.search(r"MLflow UI:\s+\S+/#/experiments/(\d+)", self.stdout)
        assert match, f"no MLflow URL with an experiment id in stdout:\n{self.stdout}"
        return match.group(1)

    def wait_ready(self, timeout: float = 240) -> float:
        """Both servers answer and the command printed both URLs; returns seconds since start."""

        def ready():
            if self.popen.poll() is not None:
                raise AssertionError(f"judgeloop up exited early with {self.popen.returncode}\n{self.logs()}")
            return (
                f"Dagster UI: {self.dagster_url}" in self.stdout
                and f"MLflow UI:  {self.mlflow_url}" in self.stdout
                and http_ok(f"{self.mlflow_url}/health")
                and http_ok(f"{self.dagster_url}/server_info")
            )

        wait_until(ready, timeout, interval=1, message="judgeloop up ready", on_timeout=self.logs)
        return time.monotonic() - self.started

    def interrupt(self, timeout: float = 60) -> int:
        """Ctrl-C: SIGINT to the command's process; its exit code (fails after ``timeout``)."""
        os.kill(self.popen.pid, signal.SIGINT)
        try:
            return self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"judgeloop up did not exit within {timeout:.0f} s of SIGINT\n{self.logs()}") from None

    def leftovers(self) -> list[str]:
        return processes_mentioning([str(self.home)], [self.mlflow_port, self.dagster_port])

    def shutdown(self, grace: float = 60) -> None:
        """Teardown safety net: SIGINT the group, SIGKILL after ``grace``, then kill stragglers."""
        if self.popen.poll() is None:
            try:
                os.killpg(self.popen.pid, signal.SIGINT)
            except ProcessLookupError:
                pass
            try:
                self.popen.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(self.popen.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.popen.wait(timeout=10)
        # The servers run in their own sessions: give them a moment, then kill what is left.
        deadline = time.monotonic() + 15
        while processes_mentioning([str(self.home)]) and time.monotonic() < deadline:
            time.sleep(0.5)
        _kill_leftovers([str(self.home)])


def start_up(home: Path, workdir: Path, *args: str, name: str = "up", env_extra: dict | None = None) -> UpProcess:
    """Run ``judgeloop up`` on two free ports in its own process group (cwd ``workdir``)."""
    mlflow_port, dagster_port = free_port(HOST), free_port(HOST)
    while dagster_port == mlflow_port:
        dagster_port = free_port(HOST)
    workdir.mkdir(parents=True, exist_ok=True)
    stdout_path, stderr_path = workdir / f"{name}.stdout", workdir / f"{name}.stderr"
    with open(stdout_path, "wb") as out, open(stderr_path, "wb") as err:
        popen = subprocess.Popen(
            [str(JUDGELOOP), "up", "--host", HOST, "--mlflow-port", str(mlflow_port), "--dagster-port", str(dagster_port), *args],
            cwd=workdir,
            env=clean_env(home, **(env_extra or {})),
            stdout=out,
            stderr=err,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    return UpProcess(home, mlflow_port, dagster_port, popen, stdout_path, stderr_path, dict(env_extra or {}))


def run_judgeloop(home: Path, workdir: Path, *args: str, env_extra: dict | None = None, timeout: float = 120):
    """Run a short ``judgeloop`` command to completion; returns the CompletedProcess."""
    workdir.mkdir(parents=True, exist_ok=True)
    return subprocess.run(
        [str(JUDGELOOP), *args],
        cwd=workdir,
        env=clean_env(home, **(env_extra or {})),
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def ports_free(*ports: int) -> bool:
    return all(port_is_free(HOST, p) for p in ports)


MLFLOW_FACTS = """
import json
import mlflow
from judgeloop.judging import judges
from judgeloop.settings import load_settings
from judgeloop.stack.store import connect

settings = load_settings()
experiment_id = connect(settings)
traces = mlflow.search_traces(
    locations=[experiment_id], filter_string=f"feedback.{settings.judge_name} IS NOT NULL", return_type="list",
    max_results=1000,
)
labels = [
    {"trace_id": t.info.trace_id, "source_type": str(a.source.source_type), "source_id": a.source.source_id,
     "valid": a.valid, "value": a.feedback.value}
    for t in traces for a in t.info.assessments if a.name == settings.judge_name and a.feedback is not None
]
print("FACTS " + json.dumps({
    "experiment_id": experiment_id,
    "promoted_version": judges.promoted_version(experiment_id),
    "latest_version": judges.latest_version(experiment_id, settings.judge_name),
    "labels": labels,
}, default=str))
"""


def mlflow_facts(up: "UpProcess", workdir: Path) -> dict:
    """What MLflow holds, read by a separate process through the running server (as a user would)."""
    result = subprocess.run(
        [sys.executable, "-c", MLFLOW_FACTS],
        cwd=workdir,
        env=clean_env(up.home, **up.client_env()),
        capture_output=True,
        text=True,
        timeout=180,
    )
    lines = [line for line in result.stdout.splitlines() if line.startswith("FACTS ")]
    assert result.returncode == 0 and lines, f"reading MLflow failed ({result.returncode}):\n{result.stderr[-3000:]}"
    return json.loads(lines[-1][len("FACTS "):])
