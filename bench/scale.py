"""Benchmark: the loop at a team's real size on the default sqlite store.

Builds a fresh state folder whose sqlite store holds ``--traces`` production traces (logged in
bulk, untagged and unscored, as an application's traffic arrives), then runs what a user runs,
each step in its own process as the CLI and Dagster run it, with the offline models (fake:/,
0 ms):

1. the foundation job (``dagster job execute -j judgeloop_foundation``): base judge, scoring and
   tagging every trace, the dataset, the review queue;
2. ``judgeloop labels import`` of ``--labels`` expert labels (three reviewers per trace);
3. a re-alignment (``live_agreement`` and ``aligned_judge``, the realign job less the prompt
   optimization, which needs expectations this traffic does not have);
4. ``judgeloop status`` and ``judgeloop labels export``.

Prints each step's seconds, the peak RSS of its process, the load average before and after,
PASS/FAIL per goal and one JSON line. Goals: every step succeeds; status and export each under
5 s; no run process above ``--max-rss-mb``.

    .venv/bin/python bench/scale.py                          # 5,000 traces, 15,000 labels
    .venv/bin/python bench/scale.py --traces 800 --labels 2400 --keep
"""

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("MLFLOW_MODEL_CATALOG_URI", "")
os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))
BIN = Path(sys.executable).parent
FLOOR_IMPORTS = "import mlflow, mlflow.store.tracking.sqlalchemy_store, judgeloop.cli"
JUDGE_NAME = "answer_quality"
REVIEWERS = ("sme-ana", "sme-bo", "sme-chen")
FAKE_MODELS = {
    "JUDGELOOP_JUDGE_MODEL": "fake:/judge",
    "JUDGELOOP_REFLECTION_MODEL": "fake:/reflection",
    "JUDGELOOP_EMBEDDING_MODEL": "fake:/embedding",
    "JUDGELOOP_AGENT_MODEL": "fake:/agent",
}


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def build_store(home: Path, n_traces: int) -> dict:
    """``n_traces`` production traces as an application logs them: no eval tag, no judge score."""
    import sqlalchemy as sa

    import sensor_tick

    store = sensor_tick.generate_store(home, n_traces, 0.0, JUDGE_NAME, seed=11)
    engine = sa.create_engine(f"sqlite:///{home / 'mlflow.db'}")
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM trace_tags WHERE key IN ('eval', 'judgeloop.question_id')"))
        conn.execute(sa.text("DELETE FROM assessments"))
    engine.dispose()
    return store


def write_labels(path: Path, trace_ids: list[str], count: int) -> int:
    rows = 0
    with path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["trace_id", "value", "comment", "reviewer"])
        for i in range(count):
            trace_id = trace_ids[(i // len(REVIEWERS)) % len(trace_ids)]
            writer.writerow([trace_id, 1 + (i * 7) % 4, f"rated by a synthetic expert #{i}", REVIEWERS[i % len(REVIEWERS)]])
            rows += 1
    return rows


def run_step(name: str, argv: list[str], env: dict, logs: Path) -> dict:
    """Run one process; its wall seconds, peak RSS (MB, the process and waited children), status."""
    log(f"{name}: {' '.join(Path(a).name if i == 0 else a for i, a in enumerate(argv))}")
    t0 = time.perf_counter()
    with (logs / f"{name.replace(' ', '_')}.log").open("ab") as out:
        proc = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=logs)
        _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    code = os.waitstatus_to_exitcode(status)
    result = {"seconds": round(wall, 2), "peak_rss_mb": usage.ru_maxrss // 1024, "exit": code, "load_1m": round(os.getloadavg()[0], 2)}
    log(f"{name}: {result}")
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--traces", type=int, default=5_000)
    parser.add_argument("--labels", type=int, default=15_000)
    parser.add_argument("--max-rss-mb", type=int, default=1_500, help="largest peak RSS a run process may reach")
    parser.add_argument("--max-read-s", type=float, default=5.0, help="goal for status and export")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    args = parser.parse_args(argv)

    load_before = os.getloadavg()
    workdir = Path(tempfile.mkdtemp(prefix="judgeloop-scale-"))
    home, logs = workdir / "state", workdir / "logs"
    logs.mkdir(parents=True)
    dagster_home = home / "dagster"
    dagster_home.mkdir(parents=True)
    (dagster_home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JUDGELOOP_", "DAGSTER_", "OPENAI_"))}
    env.update(FAKE_MODELS, JUDGELOOP_HOME=str(home), DAGSTER_HOME=str(dagster_home), JUDGELOOP_JUDGE_NAME=JUDGE_NAME,
               JUDGELOOP_EXPERIMENT_NAME="judgeloop-bench", PYTHONUNBUFFERED="1",
               # The stand-in judge's scores mean nothing: a gate blocking it would end the re-alignment
               # run FAILURE by design. Let every judge through, as bench/overhead.py does.
               JUDGELOOP_GATE_MARGIN="2.0", JUDGELOOP_MIN_SCORED_HELDOUT="1")
    steps: dict[str, dict] = {}
    try:
        t0 = time.perf_counter()
        store = build_store(home, args.traces)
        steps["build store (bulk)"] = {"seconds": round(time.perf_counter() - t0, 2), "exit": 0}
        log(f"store: {args.traces:,} traces in {steps['build store (bulk)']['seconds']} s")

        dagster = [str(BIN / "dagster")]
        steps["foundation run"] = run_step(
            "foundation run", [*dagster, "job", "execute", "-m", "judgeloop_assets.definitions", "-j", "judgeloop_foundation"], env, logs
        )
        labels_file = workdir / "labels.csv"
        rows = write_labels(labels_file, store["trace_ids"], args.labels)
        steps["labels import"] = run_step("labels import", [str(BIN / "judgeloop"), "labels", "import", str(labels_file)], env, logs)
        steps["labels import"]["labels_per_s"] = round(rows / steps["labels import"]["seconds"], 1)
        steps["re-alignment run"] = run_step(
            "re-alignment run",
            [*dagster, "asset", "materialize", "-m", "judgeloop_assets.definitions", "--select", "live_agreement,aligned_judge"],
            env, logs,
        )
        steps["status"] = run_step("status", [str(BIN / "judgeloop"), "status"], env, logs)
        steps["labels export"] = run_step("labels export", [str(BIN / "judgeloop"), "labels", "export", str(workdir / "out.csv")], env, logs)
        exported = max(0, sum(1 for _ in (workdir / "out.csv").open(encoding="utf-8")) - 1) if (workdir / "out.csv").exists() else 0
        status_text = (logs / "status.log").read_text(errors="replace")
        # What any command reading this store pays before its first query: starting Python and
        # importing MLflow with its SQL store (2-4 s on an idle machine, more under load).
        steps["import floor"] = run_step("import floor", [sys.executable, "-c", FLOOR_IMPORTS], env, logs)
    finally:
        if args.keep:
            log(f"work folder kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)

    load_after = os.getloadavg()
    runs = ("foundation run", "labels import", "re-alignment run")
    peak = max(steps[name].get("peak_rss_mb", 0) for name in runs if name in steps)
    floor = steps.get("import floor", {}).get("seconds", 0.0)
    goals = {
        "every step succeeds": all(step.get("exit") == 0 for step in steps.values()),
        f"status < {args.max_read_s:g} s": steps.get("status", {}).get("seconds", 1e9) < args.max_read_s,
        f"export < {args.max_read_s:g} s": steps.get("labels export", {}).get("seconds", 1e9) < args.max_read_s,
        f"status beyond the import floor < {args.max_read_s:g} s": steps.get("status", {}).get("seconds", 1e9) - floor < args.max_read_s,
        f"export beyond the import floor < {args.max_read_s:g} s": steps.get("labels export", {}).get("seconds", 1e9) - floor < args.max_read_s,
        "export holds every label": exported == args.labels,
        f"peak RSS <= {args.max_rss_mb} MB": peak <= args.max_rss_mb,
    }
    print(f"judgeloop at {args.traces:,} traces and {args.labels:,} labels on the default sqlite store (fake:/ models, 0 ms)")
    print(f"{'step':24} {'seconds':>9} {'peak RSS MB':>12} {'exit':>5} {'load 1m':>8}")
    for name, step in steps.items():
        print(f"{name:24} {step['seconds']:>9} {step.get('peak_rss_mb', '-'):>12} {step['exit']:>5} {step.get('load_1m', '-'):>8}")
    print("status said:\n  " + "\n  ".join(status_text.strip().splitlines()))
    print(f"load average before {' '.join(f'{x:.2f}' for x in load_before)}; after {' '.join(f'{x:.2f}' for x in load_after)}")
    for goal, ok in goals.items():
        print(f"{'PASS' if ok else 'FAIL'}  {goal}")
    print(json.dumps({
        "bench": "scale", "traces": args.traces, "labels": args.labels, "exported": exported, "steps": steps,
        "peak_rss_mb": peak, "goals": goals, "load_avg_before": [round(x, 2) for x in load_before],
        "load_avg_after": [round(x, 2) for x in load_after],
    }))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
