"""A team's own traffic at the size teams have: 1,000 traces logged the way OpenAI's autologger
logs chat completions plus 1,000 rows from `judgeloop traces import`, the foundation on the default
store, then a local `mlflow server` in front of it (what `judgeloop up` runs): 3,000 SME labels
imported by file through it, a re-alignment without expectations, traffic arriving afterwards.
Every run succeeds, nothing waits afterwards, no judge feedback is left that no version owns."""

import json
import sys
import time

import dagster as dg
import pytest

from judgeloop.judging import judges
from judgeloop.prompt_optimization import prompts
from judgeloop.stack import servers
from judgeloop.tracing import traces
from judgeloop.cli import main
from judgeloop.commands.status import label_status
from judgeloop.settings import load_settings
from judgeloop.stack.store import connect
from judgeloop_assets.definitions import defs
from judgeloop_assets.resources import JudgeloopConfig
from tests import autologged
from tests.e2e_support import clean_env
from tests.support import materialize, metadata

PER_WAY = 1000
FOUNDATION = ["base_judge", "tagged_traces", "eval_dataset", "labeling_session", "agent_prompt"]
TRAFFIC = ["tagged_traces", "eval_dataset", "labeling_session"]


@pytest.fixture
def server(home, tmp_path, monkeypatch):
    """Starts a local `mlflow server` on the state folder's sqlite store when called; from then on
    this process (and every judgeloop command in it) goes through it, as under `judgeloop up`."""
    stack = servers.Stack()

    def start() -> str:
        backend = f"sqlite:///{home / 'mlflow.db'}"
        port = servers.free_port()
        url = f"http://127.0.0.1:{port}"
        process = stack.start(
            "mlflow", servers.mlflow_command("127.0.0.1", port, backend, home / "mlartifacts", False, workers=2),
            clean_env(home, MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false"), tmp_path / "logs",
        )
        servers.wait_for_http(f"{url}/health", process, timeout=180)
        monkeypatch.setenv("JUDGELOOP_TRACKING_URI", url)
        monkeypatch.setenv("JUDGELOOP_BACKEND_STORE_URI", backend)
        return url

    try:
        yield start
    finally:
        stack.stop()


def tick(instance, name, cursor=None):
    context = dg.build_sensor_context(
        instance=instance, cursor=cursor, resources={"judgeloop": JudgeloopConfig()}, definitions=defs
    )
    return defs.resolve_sensor_def(name).evaluate_tick(context)


def run_request(instance, request):
    """Execute a sensor's run request in process, tagged as the daemon would tag it."""
    job = defs.resolve_job_def(request.job_name or "realign_judge")
    tags = {**request.tags, "dagster/run_key": request.run_key}
    selection = request.asset_selection
    return job.execute_in_process(instance=instance, tags=tags, asset_selection=selection, raise_on_error=False)


def quality(answer: str) -> int:
    return 4 if answer.startswith("To fix") else 2 if answer.startswith("Please") else 1


@pytest.mark.slow
def test_own_traffic_at_size_runs_the_loop_without_expectations(home, server, tmp_path, instance, monkeypatch, capsys):
    # Autologged chat and imported rows share the experiment: the question is read from either shape.
    monkeypatch.setenv("JUDGELOOP_REQUEST_FIELD", f"{autologged.OPENAI_REQUEST_FIELD},question")
    monkeypatch.setenv("JUDGELOOP_RESPONSE_FIELD", autologged.OPENAI_RESPONSE_FIELD)
    monkeypatch.setenv("JUDGELOOP_GATE_MARGIN", "2.0")  # about scale and runs, not the gate's verdict
    # One evaluate writer: several writer threads on the default sqlite store hit "database is locked"
    # under load (the store's own robustness is tested on its own).
    monkeypatch.setenv("MLFLOW_GENAI_EVAL_MAX_WORKERS", "1")
    settings = load_settings()
    experiment_id = connect(settings)
    clock = time.monotonic()

    def lap(what):
        nonlocal clock
        now = time.monotonic()
        # Past pytest's capture (capsys reads the commands' output here): the phases' times show.
        print(f"[at size] {what}: {now - clock:.1f} s", file=sys.__stderr__, flush=True)
        clock = now

    # Way 1: the application's autologged chat completions, keyed by its request ids.
    exchanges = autologged.support_exchanges(2 * PER_WAY)
    logged = {rid: autologged.openai_chat(q, a, rid) for q, a, rid in exchanges[:PER_WAY]}
    lap(f"{PER_WAY} autologged traces")

    # Way 2: a file. A bad line first: named by number, nothing written.
    rows = [{"question": q, "answer": a, "key": rid} for q, a, rid in exchanges[PER_WAY:]]
    bad = tmp_path / "bad.jsonl"
    bad.write_text("".join(json.dumps(r) + "\n" for r in rows[:5]) + '{"question": "no answer"}\n')
    assert main(["traces", "import", str(bad)]) == 1
    assert "line 6: field 'answer' is empty or missing" in capsys.readouterr().err
    assert len(traces.search_all(experiment_id)) == PER_WAY
    good = tmp_path / "traffic.jsonl"
    good.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert main(["traces", "import", str(good)]) == 0
    out = capsys.readouterr()
    assert f"logged {PER_WAY} trace(s)" in out.out and "traces/s" in out.err  # progress on a large file
    lap(f"{PER_WAY} imported traces")

    foundation = materialize(instance, FOUNDATION)
    assert foundation.success
    assert metadata(foundation, "tagged_traces")["traces_tagged"] == 2 * PER_WAY
    assert metadata(foundation, "eval_dataset")["record_count"] == 2 * PER_WAY
    # The review queue shows a pending window of the traces in the queue's order, not all 2,000.
    window = load_settings().queue_window
    assert metadata(foundation, "labeling_session")["items_added"] == window == metadata(foundation, "labeling_session")["items_pending"]
    lap("foundation")
    server()
    settings = load_settings()
    assert connect(settings) == experiment_id
    lap("mlflow server started")

    # 3,000 labels: two experts on 1,500 traces, by trace id or by the traffic's own key.
    lines = ["trace_id,value,comment,reviewer,trace_key"]
    for index, (question, answer, rid) in enumerate(exchanges[: 3 * PER_WAY // 2]):
        trace_id = logged.get(rid, "")
        for reviewer, shift in (("sme-1", 0), ("sme-2", index % 7 == 0)):
            value = max(1, quality(answer) - shift)
            lines.append(f"{trace_id},{value},read it,{reviewer},{rid}")
    labels_file = tmp_path / "labels.csv"
    labels_file.write_text("\n".join(lines) + "\n")
    started = time.monotonic()
    assert main(["labels", "import", str(labels_file)]) == 0
    rate = 3000 / (time.monotonic() - started)
    assert "written 3000" in capsys.readouterr().out
    lap(f"3,000 labels beside the server, into its database ({rate:.0f} labels/s, load {open('/proc/loadavg').read().split()[0]})")

    fired = tick(instance, "sme_labels_sensor")
    assert len(fired.run_requests) == 1, fired.skip_message
    realigned = run_request(instance, fired.run_requests[0])
    assert realigned.success
    assert judges.promoted_version(experiment_id) == 2
    skipped = [e for e in realigned.get_asset_materialization_events() if e.asset_key == dg.AssetKey("optimized_prompt")]
    assert skipped and "waiting for expectations" in str(skipped[-1].materialization.metadata["skipped"].value)
    assert prompts.latest(settings.prompt_name).version == 1
    lap("re-alignment")

    settled = tick(instance, "sme_labels_sensor", fired.cursor)
    assert not settled.run_requests, "nothing more is launched for the skipped optimization"
    assert "0 new SME label(s) waiting" in settled.skip_message and "never optimized" not in settled.skip_message
    assert label_status(settings, experiment_id, {}, settled.cursor)["waiting"] == 0

    # Traffic keeps coming after the foundation: scored, queued, nothing else re-scored.
    quiet = tick(instance, "new_traffic_sensor")
    later = autologged.support_exchanges(2 * PER_WAY + 20)[2 * PER_WAY:]
    for q, a, rid in later:
        autologged.openai_chat(q, a, rid)
    new = tick(instance, "new_traffic_sensor", quiet.cursor)
    assert len(new.run_requests) == 1 and new.run_requests[0].tags["judgeloop/new_traces"] == "20"
    traffic = materialize(instance, TRAFFIC)
    assert traffic.success and metadata(traffic, "tagged_traces")["traces_tagged"] == 20
    # The window is full: new traces wait for their turn in the queue's order.
    assert metadata(traffic, "labeling_session")["items_added"] == 0
    assert metadata(traffic, "labeling_session")["items_pending"] == window
    lap("20 new traces")

    assert traces.orphan_scores(experiment_id, settings.judge_name) == 0
    lap("orphan check")
