"""From an expert's last label to the promoted judge: latency under `judgeloop up`, phase by phase.

Starts `judgeloop up --demo` (offline models, default settings otherwise) in a fresh state
folder, waits for the foundation run, writes a warm-up batch of labels (the first alignment),
then for ``--batches`` batches writes ``label_threshold`` expert labels through the running
MLflow server, pushes the re-alignment as judgeloop's label path does (``--no-push``: leave it to
the sensor's poll) and measures the time from the last label's write to the aligned judge's
promotion. Before the next batch it waits until the re-alignment and the live agreement run
after it have finished (experts label at human pace). Each batch is broken down from Dagster's
own records of the re-alignment run:

  push            last label written -> run created (the label path's push, or the sensor's poll)
  launch          run created -> run worker process spawned (queue, daemon)
  process start   worker spawned -> libraries loaded: what every fresh process pays once, shown
                  in three rows: "spawn to run start" (interpreter, Dagster, code location),
                  "step start" (Dagster's step set-up) and "imports" (MLflow, MemAlign, the model
                  clients, imported by the step that needs them)
  label read      libraries loaded -> labels read
  judge load      labels read -> MemAlign starts (traces read, judge in use loaded)
  alignment       MemAlign
  measurement     held-out agreement of the promoted and the new judge
  register+gate   registration, gate, promotion

Each step's own duration (STEP_START -> STEP_SUCCESS/FAILURE in the event log) is printed next to
the phases, with the load average when the batch was written. A batch whose gate blocked the new
judge is reported apart: its time is the gate's decision, not a promotion.

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
GOAL_QUIET_S, QUIET_LOAD = 10.0, 1.0  # median label -> promoted on a quiet machine (load < 1)
GOAL_LOADED_S, LOADED_LOAD = 20.0, 3.0  # ... at load 3
GOAL_PHASE_S = 2.0  # no phase but process start above this (medians)
FAKE_MODELS = {
    "JUDGELOOP_JUDGE_MODEL": "fake:/judge",
    "JUDGELOOP_REFLECTION_MODEL": "fake:/reflection",
    "JUDGELOOP_EMBEDDING_MODEL": "fake:/embedding",
    "JUDGELOOP_AGENT_MODEL": "fake:/agent",
}
# Log lines of aligned_judge that open each phase (judgeloop/judging/alignment.py and the asset say them).
MARKS = {"libraries loaded": "imports done", "usable": "labels read", "aligning": "alignment starts", "judge v": "nothing new: measuring",
         "measuring": "measurement starts", "registered": "measured, scores saved", "measured": "measured (reused version)",
         "gate": "promoted"}
PHASES = ["push", "launch", "process start", "label read", "judge load", "alignment", "measurement", "register+gate"]
EXEMPT = {"process start"}
# The rows "process start" is made of, printed under it.
PROCESS_START = ["spawn to run start", "step start", "imports"]


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
    """Seconds per phase of one re-alignment run and per step, from the instance's event log."""
    created = record.create_timestamp.replace(tzinfo=dt.timezone.utc).timestamp()
    marks, step_start, steps = {}, {}, {}
    gate_passed = None
    for entry in instance.all_logs(record.dagster_run.run_id):
        event = entry.dagster_event
        if event is not None:
            kind = event.event_type.name  # the enum's name: its value keeps the old PIPELINE_* spelling
            if kind in ("RUN_STARTING", "RUN_START", "RUN_SUCCESS", "RUN_FAILURE") and kind not in marks:
                marks[kind] = entry.timestamp
            if kind == "STEP_START":
                step_start[entry.step_key] = entry.timestamp
                if entry.step_key == "aligned_judge":
                    marks["step"] = entry.timestamp
            if kind in ("STEP_SUCCESS", "STEP_FAILURE") and entry.step_key in step_start:
                steps[entry.step_key] = round(entry.timestamp - step_start[entry.step_key], 2)
        elif entry.step_key == "aligned_judge":
            message = entry.user_message or ""
            words = message.split(" ", 2)
            for prefix in MARKS:
                hit = message.startswith(prefix) or (prefix == "usable" and len(words) > 1 and words[1] == "usable")
                if hit and prefix not in marks:
                    marks[prefix] = entry.timestamp
                    if prefix == "gate":
                        gate_passed = message.startswith("gate passed")
    # A run with nothing new to align goes from the labels straight to measuring the judge in use.
    aligning = marks.get("aligning") or marks.get("judge v")
    loaded = marks.get("libraries loaded")
    measured = marks.get("registered") or marks.get("measured")
    times = [written_at, created, marks.get("RUN_STARTING"), loaded, marks.get("usable"),
             aligning, marks.get("measuring") or aligning, measured or marks.get("gate"), marks.get("gate")]
    parts = [marks.get("RUN_STARTING"), marks.get("RUN_START"), marks.get("step"), loaded]
    out = {}
    for name, start, end in zip(PROCESS_START, parts, parts[1:]):
        out[name] = round(end - start, 2) if start is not None and end is not None else None
    for name, start, end in zip(PHASES, times, times[1:]):
        out[name] = round(end - start, 2) if start is not None and end is not None else None
    out["total"] = round(marks["gate"] - written_at, 2) if "gate" in marks else None
    out["gate_passed"] = gate_passed
    out["run_status"] = record.dagster_run.status.value
    out["steps"] = steps
    return out


def push(settings, experiment_id) -> str | None:
    """What judgeloop's label path does after writing labels (``judgeloop_assets.label_push``)."""
    from judgeloop_assets.label_push import push_after_writing

    return push_after_writing(settings, experiment_id, say=lambda message: None)


def other_runs_done(instance) -> bool:
    """No run of any job queued or in progress (the live agreement run after a re-alignment included)."""
    import dagster as dg

    active = [dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING,
              dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.CANCELING]
    return not instance.get_run_records(filters=dg.RunsFilter(statuses=active), limit=1)


def live_agreement_done(instance, realign_run_id: str) -> bool:
    import dagster as dg

    runs = instance.get_run_records(filters=dg.RunsFilter(job_name="measure_live_agreement", tags={"judgeloop/after_run": realign_run_id}))
    return bool(runs) and all(finished(r) for r in runs)


def _too_few_to_align(settings, experiment_id) -> bool:
    from judgeloop.sme_labels.notify import decide_notify

    return "too few labelled traces" in decide_notify(settings, experiment_id).reason


def median(values):
    known = [v for v in values if v is not None]
    return round(statistics.median(known), 2) if known else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=30, help="labels of the first alignment (not measured)")
    parser.add_argument("--feedbackqa", help="JUDGELOOP_FEEDBACKQA_PATH (default: judgeloop's own)")
    parser.add_argument("--no-push", action="store_true", help="write labels only and leave the run to the sensor's poll")
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
        from judgeloop.tracing import demo
        from judgeloop.settings import load_settings
        from judgeloop.stack.store import connect

        wait_for(lambda: (home / "running.json").exists(), stack, 180, "both servers")
        import dagster as dg

        with dg.DagsterInstance.get() as instance:
            def foundation_done():
                runs = instance.get_run_records(filters=dg.RunsFilter(job_name="judgeloop_foundation"))
                return runs and finished(runs[0])

            wait_for(foundation_done, stack, 600, "the foundation run")
            settings = load_settings()
            print(f"sensor interval {settings.sensor_interval_seconds} s, label threshold {settings.label_threshold}, "
                  f"{'sensor poll only' if args.no_push else 'pushed by the label path'}", flush=True)
            experiment_id = connect(settings)
            for number in range(args.batches + 1):
                warmup = number == 0
                count = args.warmup if warmup else settings.label_threshold
                wait_for(lambda: other_runs_done(instance), stack, 900, "earlier runs to finish", poll=0.5)
                seen = len(realign_runs(instance))
                batch_load = os.getloadavg()[0]
                demo.release_labels(settings, experiment_id, count)
                while warmup and _too_few_to_align(settings, experiment_id):
                    # The split is by trace id: a small warm-up can leave too few traces held out.
                    if demo.release_labels(settings, experiment_id, 10).written == 0:
                        raise SystemExit("the demo ran out of labels before the first alignment could start")
                    count += 10
                written_at = time.time()
                if not args.no_push:
                    push(settings, experiment_id)
                record = wait_for(lambda: len(realign_runs(instance)) > seen and realign_runs(instance)[seen], stack, 300, "a re-alignment run")
                record = wait_for(lambda: (r := realign_runs(instance)[seen]) and finished(r) and r, stack, 600, "the re-alignment to finish")
                # Live agreement follows in its own run (requested at the sensor's next look): let it
                # finish before the next batch, as it would between an expert's batches.
                wait_for(lambda: live_agreement_done(instance, record.dagster_run.run_id), stack, 600, "the live agreement run", poll=0.5)
                phases = phases_of(instance, record, written_at)
                phases["load_1m"] = round(batch_load, 2)
                label = "warm-up" if warmup else f"batch {number}"
                print(f"{label:8} {count:3} labels: {json.dumps(phases)}", flush=True)
                if not warmup:
                    batches.append(phases)
            wait_for(lambda: other_runs_done(instance), stack, 900, "the last runs to finish", poll=0.5)
            live = [r for r in instance.get_run_records(filters=dg.RunsFilter(job_name="measure_live_agreement"), ascending=True)]
            live_s = [round(r.end_time - r.start_time, 2) for r in live if r.end_time and r.start_time]
    finally:
        stack.stop()
        if args.keep:
            print(f"work folder kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)

    promoted = [b for b in batches if b["total"] is not None and b["gate_passed"] is not False]
    blocked = [b for b in batches if b["gate_passed"] is False]
    after = os.getloadavg()
    print(f"\n{'phase':20} " + " ".join(f"{'batch ' + str(i + 1):>9}" for i in range(len(batches))) + f" {'median':>9}")
    medians = {}
    rows = [row for phase in PHASES for row in ([phase, *PROCESS_START] if phase == "process start" else [phase])]
    for phase in [*rows, "total"]:
        values = [b.get(phase) for b in batches]
        medians[phase] = median([b.get(phase) for b in promoted])
        name = f"  {phase}" if phase in PROCESS_START else phase
        print(f"{name:20} " + " ".join(f"{v if v is not None else '-':>9}" for v in values) + f" {medians[phase] if medians[phase] is not None else '-':>9}")
    for step in sorted({step for b in batches for step in b["steps"]}):
        values = [b["steps"].get(step) for b in batches]
        print(f"{'step ' + step:20} " + " ".join(f"{v if v is not None else '-':>9}" for v in values) + f" {median(values) or '-':>9}")
    print(f"{'load (1 min)':20} " + " ".join(f"{b['load_1m']:>9}" for b in batches))
    print(f"{'gate':20} " + " ".join(f"{'passed' if b['gate_passed'] else 'BLOCKED' if b['gate_passed'] is False else '-':>9}" for b in batches))
    print(f"medians over the {len(promoted)} batch(es) whose judge was promoted; {len(blocked)} blocked by the gate (apart)")
    print(f"live agreement, in its own run after each re-alignment: {live_s} s (not on the path)")
    print(f"load average before: {' '.join(f'{x:.1f}' for x in load)}; after: {' '.join(f'{x:.1f}' for x in after)}")

    median_total = medians["total"]
    loads = [b["load_1m"] for b in promoted]
    worst_load = max(loads, default=None)
    goals = {}
    if median_total is None:
        print("FAIL  no batch was promoted: nothing to measure")
        goals["median"] = False
    elif worst_load < QUIET_LOAD:
        goals["median"] = median_total < GOAL_QUIET_S
        print(f"{'PASS' if goals['median'] else 'FAIL'}  median label-to-promotion {median_total} s (goal < {GOAL_QUIET_S:.0f} s "
              f"on a quiet machine, load {worst_load} < {QUIET_LOAD:.0f}; 0 ms offline models, default settings)")
    elif worst_load <= LOADED_LOAD:
        goals["median"] = median_total < GOAL_LOADED_S
        print(f"{'PASS' if goals['median'] else 'FAIL'}  median label-to-promotion {median_total} s (goal < {GOAL_LOADED_S:.0f} s "
              f"at load up to {LOADED_LOAD:.0f}: load was {worst_load}; the < {GOAL_QUIET_S:.0f} s goal needs load < {QUIET_LOAD:.0f})")
    else:
        goals["median"] = None
        print(f"NOT JUDGED  median label-to-promotion {median_total} s at load up to {worst_load}, above {LOADED_LOAD:.0f}: "
              f"neither goal applies ({'under' if median_total < GOAL_LOADED_S else 'over'} the {GOAL_LOADED_S:.0f} s of load 3)")
    slow = {p: medians[p] for p in PHASES if p not in EXEMPT and medians[p] is not None and medians[p] > GOAL_PHASE_S}
    goals["phases"] = not slow and median_total is not None
    print(f"{'PASS' if goals['phases'] else 'FAIL'}  no phase but process start above {GOAL_PHASE_S:.0f} s (medians)"
          + (f": {slow}" if slow else ""))
    print(json.dumps({"bench": "latency", "load_avg": [round(x, 2) for x in load], "load_avg_after": [round(x, 2) for x in after],
                      "pushed": not args.no_push, "median_s": median_total, "medians": medians, "goals": goals,
                      "promoted": len(promoted), "blocked": len(blocked), "live_agreement_runs_s": live_s, "batches": batches}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
