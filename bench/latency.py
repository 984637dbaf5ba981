"""From an expert's last label to the promoted judge: latency under `judgeloop up`, phase by phase.

Starts `judgeloop up --demo` (offline models, default settings otherwise) in a fresh state
folder, waits for the foundation run, writes a warm-up batch of labels (the first alignment),
then for ``--batches`` batches writes ``label_threshold`` expert labels through the running
MLflow server and measures the time from the last label's write to the aligned judge's
promotion. Each batch is broken down from Dagster's own records of the re-alignment run:

  sensor wait     last label written -> run created by sme_labels_sensor
  launch          run created -> run worker process spawned (queue, daemon)
  process start   worker spawned -> run started (interpreter, imports, code location)
  label read      run started -> MemAlign starts (labels and traces read from MLflow)
  alignment       MemAlign
  measurement     held-out agreement of the promoted and the new judge
  register+gate   registration, gate, promotion

    .venv/bin/python bench/latency.py                # 3 batches
    .venv/bin/python bench/latency.py --batches 5 --keep
    .venv/bin/python bench/latency.py --batches 1 --profile /tmp/profiles   # pyinstrument, run processes
"""

import argparse
import datetime as dt
import importlib.util
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
GOAL_MEDIAN_S = 20.0
FAKE_MODELS = {
    "JUDGELOOP_JUDGE_MODEL": "fake:/judge",
    "JUDGELOOP_REFLECTION_MODEL": "fake:/reflection",
    "JUDGELOOP_EMBEDDING_MODEL": "fake:/embedding",
    "JUDGELOOP_AGENT_MODEL": "fake:/agent",
}
# Log lines of aligned_judge that open each phase (judgeloop/alignment.py and the asset say them).
MARKS = {"aligning": "alignment starts", "measuring": "measurement starts", "registered": "registered", "gate": "promoted"}
PHASES = ["sensor wait", "launch", "process start", "label read", "alignment", "measurement", "register+gate"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Stack:
    """`judgeloop up --demo` in a fresh state folder, stopped (with its children) at the end."""

    def __init__(self, home: Path, feedbackqa: str | None, profile: Path | None = None):
        self.home = home
        env = {k: v for k, v in os.environ.items() if not k.startswith(("JUDGELOOP_", "DAGSTER_"))}
        env.update(FAKE_MODELS, JUDGELOOP_HOME=str(home), PYTHONUNBUFFERED="1")
        if profile is not None:
            # Run processes start pyinstrument from bench/run_profile/sitecustomize.py.
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO / "bench" / "run_profile"), env.get("PYTHONPATH")]))
            env["BENCH_RUN_PROFILE_DIR"] = str(profile)
        if feedbackqa:
            env["JUDGELOOP_FEEDBACKQA_PATH"] = feedbackqa
        self.env = env
        self.log = open(home.parent / "judgeloop-up.log", "wb")
        argv = [str(BIN / "judgeloop"), "up", "--demo", "--release-every", "0",
                "--mlflow-port", str(free_port()), "--dagster-port", str(free_port())]
        self.proc = subprocess.Popen(argv, env=env, stdout=self.log, stderr=subprocess.STDOUT, cwd=REPO, start_new_session=True)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        if self.alive():
            os.killpg(self.proc.pid, 2)  # Ctrl-C: judgeloop up stops both servers and the daemon
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, 9)
        self.log.close()


def realign_runs(instance) -> list:
    import dagster as dg

    return instance.get_run_records(filters=dg.RunsFilter(job_name="realign_judge"), ascending=True)


def wait_for(predicate, stack: Stack, timeout: float, what: str, poll: float = 0.2):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        if not stack.alive():
            raise SystemExit(f"judgeloop up exited while waiting for {what}: see {stack.log.name}")
        time.sleep(poll)
    raise SystemExit(f"timed out after {timeout:.0f} s waiting for {what}: see {stack.log.name}")


def finished(record) -> bool:
    return record.dagster_run.is_finished


def phases_of(instance, record, written_at: float) -> dict:
    """Seconds per phase of one re-alignment run, from the instance's event log."""
    created = record.create_timestamp.replace(tzinfo=dt.timezone.utc).timestamp()
    marks = {}
    for entry in instance.all_logs(record.dagster_run.run_id):
        event = entry.dagster_event
        if event is not None:
            kind = event.event_type.name  # the enum's name: its value keeps the old PIPELINE_* spelling
            if kind in ("RUN_STARTING", "RUN_START", "RUN_SUCCESS", "RUN_FAILURE") and kind not in marks:
                marks[kind] = entry.timestamp
            if kind == "STEP_START" and entry.step_key == "aligned_judge":
                marks["step"] = entry.timestamp
        elif entry.step_key == "aligned_judge":
            for prefix in MARKS:
                if (entry.user_message or "").startswith(prefix) and prefix not in marks:
                    marks[prefix] = entry.timestamp
    times = [written_at, created, marks.get("RUN_STARTING"), marks.get("RUN_START"), marks.get("aligning"),
             marks.get("measuring"), marks.get("registered"), marks.get("gate")]
    out = {}
    for name, start, end in zip(PHASES, times, times[1:]):
        out[name] = round(end - start, 2) if start is not None and end is not None else None
    out["total"] = round(marks["gate"] - written_at, 2) if "gate" in marks else None
    out["run_status"] = record.dagster_run.status.value
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=30, help="labels of the first alignment (not measured)")
    parser.add_argument("--feedbackqa", help="JUDGELOOP_FEEDBACKQA_PATH (default: judgeloop's own)")
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--profile", type=Path, help="write a pyinstrument profile of every run process to this folder "
                        "(needs pyinstrument; profiling slows the runs, so the numbers are not the benchmark's)")
    args = parser.parse_args()
    if args.profile and importlib.util.find_spec("pyinstrument") is None:  # the run processes import it
        raise SystemExit("--profile needs pyinstrument: .venv/bin/pip install -e '.[test]'")

    workdir = Path(tempfile.mkdtemp(prefix="judgeloop-bench-latency-"))
    home = workdir / "state"
    load = os.getloadavg()
    stack = Stack(home, args.feedbackqa, args.profile.resolve() if args.profile else None)
    os.environ.update(stack.env)
    os.environ["DAGSTER_HOME"] = str(home / "dagster")
    batches = []
    try:
        from judgeloop import demo
        from judgeloop.settings import load_settings
        from judgeloop.store import connect

        wait_for(lambda: (home / "running.json").exists(), stack, 180, "both servers")
        import dagster as dg

        with dg.DagsterInstance.get() as instance:
            def foundation_done():
                runs = instance.get_run_records(filters=dg.RunsFilter(job_name="judgeloop_foundation"))
                return runs and finished(runs[0])

            wait_for(foundation_done, stack, 600, "the foundation run")
            settings = load_settings()
            print(f"sensor interval {settings.sensor_interval_seconds} s, label threshold {settings.label_threshold}", flush=True)
            experiment_id = connect(settings)
            for number in range(args.batches + 1):
                warmup = number == 0
                count = args.warmup if warmup else settings.label_threshold
                seen = len(realign_runs(instance))
                demo.release_labels(settings, experiment_id, count)
                written_at = time.time()
                record = wait_for(lambda: len(realign_runs(instance)) > seen and realign_runs(instance)[seen], stack, 300, "a re-alignment run")
                record = wait_for(lambda: (r := realign_runs(instance)[seen]) and finished(r) and r, stack, 600, "the re-alignment to finish")
                phases = phases_of(instance, record, written_at)
                label = "warm-up" if warmup else f"batch {number}"
                print(f"{label:8} {count:3} labels: {json.dumps(phases)}", flush=True)
                if not warmup:
                    batches.append(phases)
    finally:
        stack.stop()
        if args.keep:
            print(f"work folder kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)

    totals = [b["total"] for b in batches if b["total"] is not None]
    median_total = round(statistics.median(totals), 2) if totals else None
    print(f"\n{'phase':15} " + " ".join(f"{'batch ' + str(i + 1):>9}" for i in range(len(batches))) + f" {'median':>9}")
    for phase in [*PHASES, "total"]:
        values = [b.get(phase) for b in batches]
        known = [v for v in values if v is not None]
        med = round(statistics.median(known), 2) if known else None
        print(f"{phase:15} " + " ".join(f"{v if v is not None else '-':>9}" for v in values) + f" {med if med is not None else '-':>9}")
    unpromoted = len(batches) - len(totals)
    if unpromoted:
        print(f"{unpromoted} batch(es) ended without a promotion (see run_status and the aligned_judge metadata)")
    print(f"load average before: {' '.join(f'{x:.1f}' for x in load)}; after: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    verdict = "PASS" if median_total is not None and median_total < GOAL_MEDIAN_S else "FAIL"
    print(f"{verdict}  median label-to-promotion {median_total} s (goal < {GOAL_MEDIAN_S:.0f} s, 0 ms offline models, default settings)")
    print(json.dumps({"bench": "latency", "load_avg": [round(x, 2) for x in load], "median_s": median_total, "batches": batches}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
