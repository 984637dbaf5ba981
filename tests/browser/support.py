"""The stack the browser tests drive (`judgeloop up --demo` as a subprocess) and what they read back.

Nothing here imports Playwright or MLflow at import time: the fast suite collects this folder
(and deselects it) without either being needed.

Reads go through Dagster's GraphQL API, the one the Dagster UI itself uses: the tests act in
the UIs and check the outcome against the API, never the other way round.
"""

import os
import re
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import requests

from tests.conftest import FAKE_MODELS, REPO, feedbackqa_root
from tests.e2e_support import FAILURES, MATERIALIZATIONS, RUN

JUDGELOOP = Path(sys.executable).with_name("judgeloop")
HOST = "127.0.0.1"
ARTIFACTS = REPO / "test-artifacts" / "browser"

# The scenario's knobs (env of `judgeloop up`): small demo, quick sensor, threshold N.
DEMO_ITEMS = 24  # FeedbackQA WHO: two expert ratings per item, so 48 labels can be released
LABEL_THRESHOLD = 3  # N: labels the SME gives in the browser; the sensor re-aligns at N
RELEASED_LABELS = 40  # 20 traces: a held-out trace is all but certain with fraction 0.34
LEFT_FOR_A_PERSON = 4  # the demo's raters leave the last 4 traces to the person in the browser
MIN_ALIGNMENT_LABELS = 2
MIN_HELDOUT_LABELS = 1

START_TIMEOUT = 240  # MLflow + seeding + dagster dev + code location (about 30-60 s here)
RUN_TIMEOUT = 240
STOP_TIMEOUT = 120

ALL_ASSETS = [
    "base_judge",
    "tagged_traces",
    "eval_dataset",
    "labeling_session",
    "sme_labels",
    "live_agreement",
    "aligned_judge",
    "agent_prompt",
    "optimized_prompt",
]
# Lineage as declared in judgeloop_assets (upstream, downstream).
EDGES = {
    ("base_judge", "tagged_traces"),
    ("tagged_traces", "eval_dataset"),
    ("eval_dataset", "labeling_session"),
    ("labeling_session", "sme_labels"),
    ("sme_labels", "aligned_judge"),
    ("sme_labels", "live_agreement"),  # measured in its own run after a re-alignment, not before it
    ("aligned_judge", "optimized_prompt"),
    ("eval_dataset", "optimized_prompt"),
    ("agent_prompt", "optimized_prompt"),
}
EXTERNAL_ASSETS = {"sme_labels"}  # an AssetSpec: reported by the sensor, never materialized by a run
SENSOR = "sme_labels_sensor"
REPOSITORY = {"repositoryLocationName": "judgeloop", "repositoryName": "__repository__"}

RUNS = """
query Runs($limit: Int) {
  runsOrError(limit: $limit) {
    __typename
    ... on Runs { results { runId jobName status creationTime startTime endTime tags { key value } } }
    ... on PythonError { message }
  }
}
"""



ASSET_NODES = """
query Nodes {
  assetNodes { assetKey { path } isExecutable isMaterializable dependencyKeys { path } }
}
"""


SENSOR_STATE = """
query Sensor($selector: SensorSelector!) {
  sensorOrError(sensorSelector: $selector) {
    __typename
    ... on Sensor {
      sensorState { id status ticks(limit: 20) { status timestamp skipReason runIds error { message } } }
    }
    ... on PythonError { message }
  }
}
"""

STOP_SENSOR = """
mutation Stop($id: String) {
  stopSensor(id: $id) {
    __typename
    ... on StopSensorMutationResult { instigationState { status } }
    ... on PythonError { message }
  }
}
"""

START_SENSOR = """
mutation Start($selector: SensorSelector!) {
  startSensor(sensorSelector: $selector) {
    __typename
    ... on Sensor { sensorState { status } }
    ... on PythonError { message }
  }
}
"""


def wait_until(predicate, timeout: float, interval: float = 1.0, message: str = "condition", details=None):
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout`` with ``details()``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            extra = details() if details else ""
            raise AssertionError(f"{message}: not reached within {timeout:.0f} s\n{extra}")
        time.sleep(interval)


def http_ok(url: str) -> bool:
    try:
        return requests.get(url, timeout=3).status_code < 500
    except requests.RequestException:
        return False


def tail(path: Path, chars: int = 4000) -> str:
    try:
        return path.read_bytes().decode(errors="replace")[-chars:]
    except OSError:
        return f"({path} not readable)"


def metadata_value(entry: dict):
    if entry.get("intRepr") is not None:  # intValue is a 32-bit GraphQL Int; intRepr is not
        return int(entry["intRepr"])
    for key in ("text", "floatValue", "boolValue", "url", "mdStr"):
        if key in entry:
            return entry[key]
    return None


def processes_mentioning(needle: str) -> list[str]:
    """Live processes (not this one, not zombies) whose command line or environment names ``needle``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
            if state in {"Z", "X"}:
                continue
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        try:
            environ = (entry / "environ").read_bytes().decode(errors="replace")
        except OSError:
            environ = ""
        if needle in cmdline or needle in environ:
            found.append(f"{entry.name} {cmdline[:200]}")
    return found


@dataclass
class Stack:
    """A running `judgeloop up --demo`: its URLs, state folder and the helpers the scenarios share."""

    home: Path
    mlflow_url: str
    dagster_url: str
    env: dict
    proc: subprocess.Popen
    log_path: Path
    foundation_run_id: str | None = None
    released: int = 0
    release_output: str = ""  # what `judgeloop demo release` printed, the review invitation included
    timings: dict = field(default_factory=dict)

    # --- Dagster GraphQL -------------------------------------------------------------
    def graphql(self, query: str, **variables) -> dict:
        response = requests.post(
            f"{self.dagster_url}/graphql", json={"query": query, "variables": variables}, timeout=30
        )
        response.raise_for_status()
        body = response.json()
        assert not body.get("errors"), body["errors"]
        return body["data"]

    def runs(self, limit: int = 50) -> list[dict]:
        result = self.graphql(RUNS, limit=limit)["runsOrError"]
        assert result["__typename"] == "Runs", result
        return result["results"]

    def run(self, run_id: str) -> dict:
        result = self.graphql(RUN, runId=run_id)["runOrError"]
        assert result["__typename"] == "Run", result
        return result

    def run_failures(self, run_id: str) -> str:
        events = self.graphql(FAILURES, runId=run_id)["logsForRun"].get("events", [])
        lines = []
        for event in events:
            if event["__typename"] == "ExecutionStepFailureEvent":
                causes = event["error"]["causes"] or []
                lines.append(f"{event['stepKey']}: {event['error']['message'].strip()}")
                for cause in causes:
                    lines.append(f"  caused by {cause['message'].strip()}")
                    lines.append("".join(cause.get("stack") or [])[-1500:])
            elif event["__typename"] == "RunFailureEvent":
                lines.append(event["message"])
        return "\n".join(lines)

    def wait_for_run(self, run_id: str, timeout: float = RUN_TIMEOUT) -> dict:
        """The finished run; fails with the step errors and the log tail if it did not succeed."""
        def finished_run():
            run = self.run(run_id)
            return run if run["status"] in {"SUCCESS", "FAILURE", "CANCELED"} else None

        finished = wait_until(
            finished_run,
            timeout,
            interval=2,
            message=f"run {run_id} finished",
            details=lambda: self.logs_tail(),
        )
        assert finished["status"] == "SUCCESS", (
            f"run {run_id} ({finished['jobName']}) ended {finished['status']}:\n{self.run_failures(run_id)}"
        )
        return finished

    def active_runs(self) -> list[dict]:
        return [r for r in self.runs(20) if r["status"] in {"QUEUED", "NOT_STARTED", "STARTING", "STARTED", "CANCELING"}]

    def asset_nodes(self) -> dict[str, dict]:
        return {"/".join(n["assetKey"]["path"]): n for n in self.graphql(ASSET_NODES)["assetNodes"]}

    def materializations(self, asset: str, limit: int = 10) -> list[dict]:
        """Newest first: ``{"runId", "timestamp" (ms), "metadata": {label: value}}``."""
        nodes = self.graphql(MATERIALIZATIONS, keys=[{"path": [asset]}], limit=limit)["assetNodes"]
        assert len(nodes) == 1, nodes
        return [
            {
                "runId": m["runId"],
                "timestamp": float(m["timestamp"]),
                "metadata": {e["label"]: metadata_value(e) for e in m["metadataEntries"]},
            }
            for m in nodes[0]["assetMaterializations"]
        ]

    def latest_metadata(self, asset: str) -> dict | None:
        found = self.materializations(asset, limit=1)
        return found[0] if found else None

    # --- the sensor ------------------------------------------------------------------
    def sensor_state(self) -> dict:
        result = self.graphql(SENSOR_STATE, selector={**REPOSITORY, "sensorName": SENSOR})["sensorOrError"]
        assert result["__typename"] == "Sensor", result
        return result["sensorState"]

    def stop_sensor(self) -> None:
        result = self.graphql(STOP_SENSOR, id=self.sensor_state()["id"])["stopSensor"]
        assert result["__typename"] == "StopSensorMutationResult", result

    def start_sensor(self) -> None:
        result = self.graphql(START_SENSOR, selector={**REPOSITORY, "sensorName": SENSOR})["startSensor"]
        assert result["__typename"] == "Sensor", result

    def wait_sensor_idle(self, timeout: float = 180) -> None:
        """Running, no run in flight, and a tick after this call found no SME label waiting.

        Then the next SME label starts a fresh count toward the threshold.
        """
        since = time.time()

        def idle():
            state = self.sensor_state()
            if state["status"] != "RUNNING" or self.active_runs():
                return False
            ticks = [t for t in state["ticks"] if t["timestamp"] > since]
            return any(t["status"] == "SKIPPED" and (t["skipReason"] or "").startswith("0 new SME label") for t in ticks)

        wait_until(
            idle, timeout, interval=2, message="sme_labels_sensor idle with no label waiting",
            details=lambda: f"sensor: {self.sensor_state()}\nactive runs: {self.active_runs()}",
        )

    @contextmanager
    def sensor_paused(self):
        """Stop sme_labels_sensor for a manual step; on exit start it again and let it settle."""
        self.stop_sensor()
        try:
            yield
        except BaseException:
            # Restart it, but never let a second failure hide the scenario's own.
            try:
                self.start_sensor()
                self.wait_sensor_idle()
            except Exception as exc:
                print(f"sme_labels_sensor did not settle after the failure: {exc}", file=sys.stderr)
            raise
        self.start_sensor()
        # What arrived while it was stopped is picked up now (one realign run at most).
        self.wait_sensor_idle()

    # --- the judgeloop CLI -----------------------------------------------------------
    def cli_env(self) -> dict:
        return {
            **self.env,
            "JUDGELOOP_TRACKING_URI": self.mlflow_url,
            "JUDGELOOP_BACKEND_STORE_URI": f"sqlite:///{self.home / 'mlflow.db'}",
        }

    def release_labels(self, count: int) -> str:
        """`judgeloop demo release --count K`: the demo's experts label K more traces."""
        started = time.monotonic()
        done = subprocess.run(
            [str(JUDGELOOP), "demo", "release", "--count", str(count), "--leave", str(LEFT_FOR_A_PERSON)],
            env=self.cli_env(), capture_output=True, text=True, timeout=180,
        )
        assert done.returncode == 0, f"judgeloop demo release failed:\n{done.stdout}\n{done.stderr}"
        self.released += count
        self.timings["release_labels"] = round(time.monotonic() - started, 1)
        self.release_output += done.stdout
        return done.stdout

    def ensure_labels_released(self) -> None:
        """Enough expert labels for MemAlign to align and to measure (released once per session)."""
        if not self.released:
            self.release_labels(RELEASED_LABELS)

    # --- diagnostics -----------------------------------------------------------------
    def logs_tail(self) -> str:
        parts = [f"--- judgeloop up ({self.log_path})\n{tail(self.log_path, 2000)}"]
        for log in sorted((self.home / "logs").glob("*.log")):
            parts.append(f"--- {log.name}\n{tail(log, 3000)}")
        return "\n".join(parts)


def stack_env(home: Path) -> dict:
    """The caller's environment minus judgeloop/MLflow/Dagster/provider settings, plus the scenario's."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JUDGELOOP_", "DAGSTER_", "OPENAI_", "MLFLOW_"))}
    env.update(FAKE_MODELS)
    env.update(
        JUDGELOOP_HOME=str(home),
        JUDGELOOP_FEEDBACKQA_PATH=str(feedbackqa_root()),
        JUDGELOOP_DEMO_ITEMS=str(DEMO_ITEMS),
        JUDGELOOP_SENSOR_INTERVAL_SECONDS="5",
        JUDGELOOP_LABEL_THRESHOLD=str(LABEL_THRESHOLD),
        JUDGELOOP_MIN_ALIGNMENT_LABELS=str(MIN_ALIGNMENT_LABELS),
        JUDGELOOP_MIN_HELDOUT_LABELS=str(MIN_HELDOUT_LABELS),
        # Which traces are held out, and how the stand-in judge does on the few there are, depends
        # on the random split of trace ids; the gate is tested on its own, and here every aligned
        # judge goes through (as few scored held-out traces as held-out labels, any kappa change).
        JUDGELOOP_MIN_SCORED_HELDOUT=str(MIN_HELDOUT_LABELS),
        JUDGELOOP_GATE_MARGIN="2.0",
        PYTHONUNBUFFERED="1",
    )
    return env


def start_stack(workdir: Path) -> Stack:
    """`judgeloop up --demo` on free ports, in its own process group (not yet waited for: see ``wait_ready``)."""
    from judgeloop.stack.servers import free_port

    home = workdir / "home"
    mlflow_port = free_port(HOST)
    dagster_port = free_port(HOST)
    while dagster_port == mlflow_port:
        dagster_port = free_port(HOST)
    env = stack_env(home)
    log_path = workdir / "judgeloop-up.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            # --release-every 0: the scenarios release the demo's labels themselves; the demo's own
            # timed releases would label every queued trace and leave the SME nothing to review.
            [str(JUDGELOOP), "up", "--demo", "--release-every", "0",
             "--mlflow-port", str(mlflow_port), "--dagster-port", str(dagster_port)],
            env=env, cwd=str(workdir), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,  # its own process group: the teardown's SIGINT reaches it like Ctrl-C
        )
    return Stack(
        home=home, mlflow_url=f"http://{HOST}:{mlflow_port}", dagster_url=f"http://{HOST}:{dagster_port}",
        env=env, proc=proc, log_path=log_path,
    )


def wait_ready(stack: Stack) -> None:
    """Both UIs answer and the foundation job `up` launched has succeeded."""
    started = time.monotonic()

    def launched():
        if stack.proc.poll() is not None:
            raise AssertionError(f"judgeloop up exited with {stack.proc.returncode}:\n{stack.logs_tail()}")
        match = re.search(r"Launched judgeloop_foundation: \S+/runs/([0-9a-f-]{36})", tail(stack.log_path, 20000))
        return match.group(1) if match else None

    stack.foundation_run_id = wait_until(
        launched, START_TIMEOUT, message="judgeloop up printed its URLs and launched the foundation job",
        details=stack.logs_tail,
    )
    assert http_ok(f"{stack.mlflow_url}/health"), "MLflow UI not answering"
    assert http_ok(f"{stack.dagster_url}/server_info"), "Dagster UI not answering"
    stack.timings["up"] = round(time.monotonic() - started, 1)
    stack.wait_for_run(stack.foundation_run_id)
    stack.timings["up_and_foundation_run"] = round(time.monotonic() - started, 1)


def stop_stack(stack: Stack) -> list[str]:
    """Ctrl-C (SIGINT to the process group); returns processes still naming the state folder after it."""
    if stack.proc.poll() is None:
        try:
            os.killpg(stack.proc.pid, signal.SIGINT)
        except ProcessLookupError:
            pass
        try:
            stack.proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            pass
    needle = str(stack.home)
    deadline = time.monotonic() + 30
    while processes_mentioning(needle) and time.monotonic() < deadline:
        time.sleep(0.5)
    left = processes_mentioning(needle)
    if left or stack.proc.poll() is None:
        # Never leave anything behind, even when the test is about to fail on it.
        for line in left:
            try:
                os.kill(int(line.split()[0]), signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        if stack.proc.poll() is None:
            os.killpg(stack.proc.pid, signal.SIGKILL)
            stack.proc.wait(timeout=10)
    return left
