"""Cost of one SME-label tick in Databricks mode, as the experiment grows (1k -> 10k traces).

On Databricks there is no SQL to read and no "updated since" filter on assessments: labels are
read through the review queue (``judgeloop.workspace.databricks.DatabricksWorkspace.changed_since``).
An idle tick lists the queue's items and reads no trace; a reconcile tick (every
``label_reconcile_ticks``) re-reads the queue's traces. Both must depend on the queue's size,
never on the number of traces in the experiment.

Setup per size: ``bench/sensor_tick.py``'s ``generate_store`` bulk-writes N synthetic evaluated
traces (5% with an SME label) into a sqlite MLflow store; a real ``mlflow server`` serves that
store behind the fake Databricks workspace (``tests/fake_databricks``); ``--queue`` more traces
are logged through the workspace, judgeloop (Databricks mode) opens a review queue of them and
two reviewers answer ``--answered``.
Measured: median wall time of idle ticks and of reconcile ticks, and the HTTP requests the
workspace received per tick (a machine-independent measure of work).

    .venv/bin/python bench/databricks_idle_tick.py                 # 1k and 10k traces, queue of 50
    .venv/bin/python bench/databricks_idle_tick.py --sizes 1000,5000 --queue 20 --reps 5
"""

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("MLFLOW_ENABLE_ASYNC_TRACE_LOGGING", "false")
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from sensor_tick import generate_store  # noqa: E402

JUDGE = "answer_quality"
TIME_SLACK = 1.5  # 10x the traces may cost at most 1.5x the time (plus 20 ms of noise) per tick ...
TIME_NOISE_S = 0.02  # ... while the request count must not change at all


def requests_seen(fake) -> int:
    return sum(fake.fake.requests.values())


def log_queue_traces(count: int) -> list[str]:
    """The traces SMEs review, logged through the workspace as an agent's client would (the
    synthetic filler keeps its spans in the tracking store, which Databricks reads only via v4)."""
    import mlflow

    trace_ids = []
    for i in range(count):
        with mlflow.start_span(name="support_agent", span_type="AGENT") as span:
            span.set_inputs({"question": f"Question {i} about the incubation period?"})
            span.set_outputs(f"Answer {i}: usually five to six days.")
            trace_ids.append(span.trace_id)
    return trace_ids


def measure(size: int, queue_size: int, answered: int, reps: int, workdir: Path) -> dict:
    from judgeloop import workspace
    from judgeloop.sme_labels import labels
    from judgeloop.settings import load_settings
    from judgeloop.stack.store import connect
    from tests.fake_databricks import reviewer
    from tests.fake_databricks.running import fake_workspace, use_agents_boundary

    home = workdir / f"n{size}"
    for key in [k for k in os.environ if k.startswith(("JUDGELOOP_", "DATABRICKS_"))]:
        del os.environ[key]
    store = generate_store(home, size, 0.05, JUDGE, seed=size)
    out = {"traces": size, "queue": queue_size}
    with fake_workspace(home) as fake:
        os.environ.update({k: v for k, v in fake.env().items() if k != "PYTHONPATH"})
        os.environ.update({"JUDGELOOP_EXPERIMENT_NAME": "judgeloop-bench", "JUDGELOOP_JUDGE_NAME": JUDGE,
                           "DATABRICKS_CONFIG_FILE": str(home / "no-databrickscfg"), "JUDGELOOP_HOME": str(home)})
        use_agents_boundary()
        experiment_id = connect(load_settings())
        assert experiment_id == store["experiment_id"], (experiment_id, store["experiment_id"])
        queued = log_queue_traces(queue_size)
        place = workspace.for_settings(load_settings())
        queue = place.open_labeling(experiment_id, queued, "")
        for i, trace_id in enumerate(queued[:answered]):
            token = ["dapi-fake-ana", "dapi-fake-ben"][i % 2]
            reviewer.answer(fake.url, experiment_id, queue.queue_id, trace_id, JUDGE, 1 + i % 4, token)

        def timed_ticks(settings, cursor, count):
            times, calls, rows = [], [], []
            for _ in range(count):
                before, t0 = requests_seen(fake), time.perf_counter()
                batch = labels.changed_since(settings, experiment_id, cursor)
                times.append(time.perf_counter() - t0)
                calls.append(requests_seen(fake) - before)
                rows.append(batch.rows_read)
                cursor = batch.cursor
            return times, calls, rows, batch

        idle_settings = load_settings(label_reconcile_ticks=10**6)
        first = labels.changed_since(idle_settings, experiment_id, labels.Cursor())
        out["labels_found"] = len(first.labels)
        times, calls, rows, _ = timed_ticks(idle_settings, first.cursor, reps)
        out["idle_s"] = statistics.median(times)
        out["idle_requests"] = max(calls)
        out["idle_traces_read"] = max(rows)
        times, calls, rows, _ = timed_ticks(load_settings(label_reconcile_ticks=1), first.cursor, max(3, reps // 3))
        out["reconcile_s"] = statistics.median(times)
        out["reconcile_requests"] = max(calls)
        out["reconcile_traces_read"] = max(rows)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000")
    parser.add_argument("--queue", type=int, default=50)
    parser.add_argument("--answered", type=int, default=10)
    parser.add_argument("--reps", type=int, default=9)
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    with tempfile.TemporaryDirectory(prefix="dbx-tick-") as tmp:
        results = [measure(n, args.queue, args.answered, args.reps, Path(tmp)) for n in sizes]
    print("Databricks-mode label tick against the fake workspace (times in seconds)")
    print(f"{'traces':>8} {'queue':>6} {'idle s':>8} {'idle req':>9} {'idle reads':>10} {'reconcile s':>12} {'recon req':>10} {'recon reads':>11}")
    for r in results:
        print(f"{r['traces']:>8} {r['queue']:>6} {r['idle_s']:>8.3f} {r['idle_requests']:>9} {r['idle_traces_read']:>10} "
              f"{r['reconcile_s']:>12.3f} {r['reconcile_requests']:>10} {r['reconcile_traces_read']:>11}")
    small, large = results[0], results[-1]
    checks = {
        "idle_requests_flat": small["idle_requests"] == large["idle_requests"],
        "idle_reads_no_trace": all(r["idle_traces_read"] == 0 for r in results),
        "idle_time_flat": large["idle_s"] <= small["idle_s"] * TIME_SLACK + TIME_NOISE_S,
        "reconcile_requests_flat": small["reconcile_requests"] == large["reconcile_requests"],
        "reconcile_time_flat": large["reconcile_s"] <= small["reconcile_s"] * TIME_SLACK + TIME_NOISE_S,
    }
    for name, ok in checks.items():
        print(f"{'PASS' if ok else 'FAIL'}  {name}")
    print(json.dumps({"bench": "databricks_idle_tick", "results": results, "checks": checks,
                      "passed": all(checks.values())}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
