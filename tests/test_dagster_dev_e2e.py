"""End to end through `dagster dev`: the webserver, code server and daemon the user starts.

The job is launched and read back through the GraphQL API the Dagster UI itself uses.
"""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from tests.conftest import FAKE_MODELS, REPO, feedbackqa_root
from tests.e2e_support import FAILURES, MATERIALIZATIONS, RUN, graphql

pytestmark = pytest.mark.slow

QUESTIONS = [
    "How does the virus spread between people?",
    "Should I wear a mask when I am sick?",
    "How long is the incubation period?",
]
START_TIMEOUT = 90
RUN_TIMEOUT = 240
STOP_TIMEOUT = 60

LAUNCH = """
mutation Launch($executionParams: ExecutionParams!) {
  launchRun(executionParams: $executionParams) {
    __typename
    ... on LaunchRunSuccess { run { runId status } }
    ... on PythonError { message stack }
    ... on Error { message }
    ... on RunConfigValidationInvalid { errors { message } }
  }
}
"""





def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def group_members(pgid: int) -> list[str]:
    """Live (non-zombie) processes in the process group, as 'pid command' lines."""
    out = subprocess.run(["ps", "-eo", "pid=,pgid=,stat=,args="], capture_output=True, text=True, check=True).stdout
    members = []
    for line in out.splitlines():
        pid, group, stat, *args = line.split(None, 3)
        if int(group) == pgid and not stat.startswith("Z"):
            members.append(f"{pid} {' '.join(args)}")
    return members


@pytest.fixture
def dagster_dev(tmp_path):
    """`dagster dev` on a free loopback port, in its own process group; yields (url, pgid, log)."""
    dagster_home = tmp_path / "dagster_home"
    dagster_home.mkdir()
    (dagster_home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    questions = tmp_path / "questions.jsonl"
    questions.write_text("".join(f'{{"question": "{q}"}}\n' for q in QUESTIONS))

    env = {k: v for k, v in os.environ.items() if not k.startswith(("JUDGELOOP_", "DAGSTER_", "OPENAI_", "MLFLOW_"))}
    env.update(FAKE_MODELS)
    env.update(
        DAGSTER_HOME=str(dagster_home),
        JUDGELOOP_HOME=str(tmp_path / "state"),
        JUDGELOOP_AGENT="tests.agents:echo_agent",
        JUDGELOOP_QUESTIONS_PATH=str(questions),
        JUDGELOOP_FEEDBACKQA_PATH=str(feedbackqa_root()),
        PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
        PYTHONUNBUFFERED="1",
    )
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log_path = tmp_path / "dagster-dev.log"
    dagster = Path(sys.executable).parent / "dagster"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [str(dagster), "dev", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # its own process group, so SIGINT reaches every child
        )
    pgid = os.getpgid(proc.pid)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if proc.poll() is not None:
                pytest.fail(f"dagster dev exited with {proc.returncode}:\n{log_path.read_text()[-4000:]}")
            try:
                if requests.get(f"{url}/server_info", timeout=2).ok:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"dagster dev did not answer /server_info in {START_TIMEOUT}s:\n{log_path.read_text()[-4000:]}")
            time.sleep(1)
        yield url, proc, pgid, log_path, tmp_path / "state"
    finally:
        # Safety net for failed tests; the test itself asserts a clean SIGINT shutdown.
        if group_members(pgid):
            os.killpg(pgid, signal.SIGINT)
            deadline = time.monotonic() + STOP_TIMEOUT
            while group_members(pgid) and time.monotonic() < deadline:
                time.sleep(0.5)
            if group_members(pgid):
                os.killpg(pgid, signal.SIGKILL)
        if proc.poll() is None:
            proc.wait(timeout=10)


def wait_for_run(url: str, run_id: str, log_path: Path) -> str:
    deadline = time.monotonic() + RUN_TIMEOUT
    status = None
    while time.monotonic() < deadline:
        result = graphql(url, RUN, runId=run_id)["runOrError"]
        assert result["__typename"] == "Run", result
        status = result["status"]
        if status in {"SUCCESS", "FAILURE", "CANCELED"}:
            return status
        time.sleep(2)
    pytest.fail(f"run {run_id} still {status} after {RUN_TIMEOUT}s:\n{log_path.read_text()[-4000:]}")


def latest_metadata(url: str, asset: str) -> tuple[str, dict]:
    nodes = graphql(url, MATERIALIZATIONS, keys=[{"path": [asset]}])["assetNodes"]
    assert len(nodes) == 1, nodes
    [materialization] = nodes[0]["assetMaterializations"]
    values = {}
    for entry in materialization["metadataEntries"]:
        if "intRepr" in entry:
            values[entry["label"]] = int(entry["intRepr"])
        else:
            values[entry["label"]] = entry.get("text", entry.get("url"))
    return materialization["runId"], values


def test_foundation_job_through_dagster_dev(dagster_dev):
    url, proc, pgid, log_path, state = dagster_dev

    info = requests.get(f"{url}/server_info", timeout=5).json()
    assert "dagster_webserver_version" in info

    launched = graphql(
        url,
        LAUNCH,
        executionParams={
            "selector": {
                "repositoryLocationName": "judgeloop",
                "repositoryName": "__repository__",
                "jobName": "judgeloop_foundation",
            },
            "runConfigData": {},
        },
    )["launchRun"]
    assert launched["__typename"] == "LaunchRunSuccess", launched
    run_id = launched["run"]["runId"]

    status = wait_for_run(url, run_id, log_path)
    if status != "SUCCESS":
        failures = graphql(url, FAILURES, runId=run_id)["logsForRun"]
        pytest.fail(f"run {run_id} ended {status}: {failures}")

    labeling_run, labeling = latest_metadata(url, "labeling_session")
    assert labeling_run == run_id
    assert labeling["schema_name"] == "answer_quality"
    assert labeling["items_added"] == len(QUESTIONS)
    assert "review-queue?selectedQueueId=" in labeling["labeling_url"]

    traces_run, tagged = latest_metadata(url, "tagged_traces")
    assert traces_run == run_id
    assert tagged["traces_tagged"] == len(QUESTIONS)
    assert tagged["agent_errors"] == tagged["judge_errors"] == 0

    _, dataset = latest_metadata(url, "eval_dataset")
    assert dataset["record_count"] == len(QUESTIONS)

    # The run wrote to the configured state folder, not the checkout.
    assert (state / "mlflow.db").exists()

    # Stop the way a user does (Ctrl-C reaches the whole group) and nothing may linger.
    os.killpg(pgid, signal.SIGINT)
    proc.wait(timeout=STOP_TIMEOUT)
    deadline = time.monotonic() + STOP_TIMEOUT
    while group_members(pgid) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert group_members(pgid) == []
