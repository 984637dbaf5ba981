"""Benchmark: `judgeloop status` on a store with 15,000 SME labels.

Builds a synthetic sqlite MLflow store (``sensor_tick.generate_store``: every trace evaluated,
every trace labelled by one of three SMEs), registers a base judge (v1) and an aligned,
promoted v2 with their stored scores on every trace (30,000 more LLM_JUDGE rows, marked with
the judge version as ``judgeloop.judging.scores.save`` writes them), then times:

- ``status.collect`` in-process (the work: labels, review queue, the sensor's waiting count,
  every version's decision, every promoted version re-measured on today's held-out labels from
  stored scores): median of --reps runs; goal under 2 s;
- the whole ``judgeloop status --json`` command in a new process, for context (it includes
  importing MLflow, 2-4 s on this machine).

Usage:
    .venv/bin/python bench/status_speed.py [--labels 15000] [--reps 3] [--workdir DIR --keep]

Prints the figures, one PASS/FAIL line, and one JSON line with every number.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

GOAL_S = 2.0
COMMAND_GOAL_S = 5.0  # the whole `status` / `labels export` command on 15,000 labels
JUDGE = "answer_quality"


def add_judges_and_scores(store: dict) -> None:
    import sqlalchemy as sa

    from judgeloop.judging import judges, scores
    from mlflow_rows import insert
    from sensor_tick import _assessment_row

    settings, experiment_id = store["settings"], store["experiment_id"]
    judges.ensure_base_judge(settings, experiment_id, "fake:/judge")  # v1, promoted
    v2 = judges.register(judges.build_judge(settings, "fake:/judge"), experiment_id)
    judges.record_lineage(experiment_id, v2, {
        "kind": "aligned", "previous_version": 1, "label_count": 9900, "newest_label_ms": 1,
        "kappa_before": 0.2, "kappa_after": 0.25, "kappa_after_interval": [0.15, 0.35],
        "heldout_traces": 5100, "measured_traces": 200,
        "gate": {"passed": True, "case": "not_worse", "reason": "synthetic"},
    })
    judges.promote(experiment_id, v2)
    rows = []
    now = int(time.time() * 1000)
    for version in (1, v2):
        for i, trace_id in enumerate(store["trace_ids"]):
            row = _assessment_row(trace_id, int(experiment_id), store["trace_ts"][trace_id], JUDGE, 1 + i % 4,
                                  "LLM_JUDGE", f"{JUDGE}/v{version}", now - 1000, "synthetic score")
            row["assessment_id"] = f"a-{uuid.uuid4().hex}"
            row["assessment_metadata"] = json.dumps({scores.VERSION_KEY: str(version)})
            rows.append(row)
    engine = sa.create_engine(settings.resolved_tracking_uri)
    with engine.begin() as conn:
        insert(conn, "assessments", rows)
    engine.dispose()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--labels", type=int, default=15000)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--workdir", type=Path)
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--reuse", action="store_true", help="time the store already in --workdir (no rebuild)")
    args = parser.parse_args(argv)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="judgeloop-status-bench-"))
    home = workdir / "store"
    if home.exists() and not args.reuse:
        shutil.rmtree(home)
    os.environ.update({"JUDGELOOP_HOME": str(home), "JUDGELOOP_EXPERIMENT_NAME": "judgeloop-bench",
                       "JUDGELOOP_JUDGE_MODEL": "fake:/judge"})
    os.environ.pop("DAGSTER_HOME", None)
    from sensor_tick import generate_store

    from judgeloop.commands import status
    from judgeloop.settings import load_settings

    try:
        t0 = time.perf_counter()
        if not (args.reuse and home.exists()):
            store = generate_store(home, args.labels, 1.0, JUDGE, 7)
            add_judges_and_scores(store)
        build_s = time.perf_counter() - t0
        settings = load_settings()
        times = []
        for _ in range(args.reps):
            started = time.perf_counter()
            report = status.collect(settings)
            times.append(time.perf_counter() - started)
        reference = report["reference"]
        started = time.perf_counter()
        out = subprocess.run([sys.executable, "-m", "judgeloop.cli", "status", "--json"], capture_output=True, text=True,
                             env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)})
        command_s = time.perf_counter() - started
        assert out.returncode == 0, out.stderr[-2000:]
        exported = workdir / "labels.jsonl"
        started = time.perf_counter()
        out = subprocess.run([sys.executable, "-m", "judgeloop.cli", "labels", "export", str(exported)], capture_output=True,
                             text=True, env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)})
        export_s = time.perf_counter() - started
        assert out.returncode == 0, out.stderr[-2000:]
        exported_rows = sum(1 for _ in exported.open())
        load = [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]
        median = statistics.median(times)
        print(f"store: {report['labels']['usable']} usable labels on {report['labels']['traces']} traces, "
              f"{len(report['judge']['versions'])} judge versions, built in {build_s:.1f} s")
        print(f"reference: {reference['traces']} of {reference['heldout_traces']} held-out traces, "
              f"versions {[(v['version'], v['traces']) for v in reference['versions']]}")
        print(f"status.collect: median {median:.2f} s over {args.reps} ({', '.join(f'{t:.2f}' for t in times)})")
        print(f"`judgeloop status --json` in a new process: {command_s:.2f} s (includes importing MLflow)")
        print(f"`judgeloop labels export` in a new process: {export_s:.2f} s ({exported_rows:,} rows)")
        print(f"load average: {load}")
        print(f"{'PASS' if median < GOAL_S else 'FAIL'}: status work under {GOAL_S:.0f} s on {args.labels:,} labels")
        commands_pass = command_s < COMMAND_GOAL_S and export_s < COMMAND_GOAL_S
        print(f"{'PASS' if commands_pass else 'FAIL'}: `status --json` and `labels export` each under {COMMAND_GOAL_S:.0f} s "
              f"as a user runs them (new process, imports included)")
        print(json.dumps({"bench": "status_speed", "labels": report["labels"]["usable"], "collect_s": times,
                          "collect_median_s": round(median, 3), "command_s": round(command_s, 2),
                          "export_s": round(export_s, 2), "exported_rows": exported_rows, "load_avg": load,
                          "pass": median < GOAL_S, "commands_pass": commands_pass}))
    finally:
        if not args.keep and not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
