"""What orchestration costs: the plain MLflow script against judgeloop's graph, same fake LLM.

Runs, alternately and ``--reps`` times per latency, (a) the documented workflow as one plain
script (``../shared/tools/seed_baseline.py``) and (b) the same workload the way a judgeloop
user runs it: ``judgeloop demo seed``, the foundation job, ``judgeloop demo release``, the
re-alignment job, each Dagster run in its own process (``dagster job execute`` on a real
instance). Both talk to ONE fake OpenAI-compatible server (``../shared/tools/fake_openai.py``)
with a fixed latency, whose request log counts LLM calls by kind.

Prints per-step seconds for both, LLM calls by kind, judgeloop's held-out measurement (time and
judge/agent calls: work the script does not do) on a line of its own, the ratio of the rest,
the peak memory of every process, PASS/FAIL against the goal and one JSON line.

    .venv/bin/python bench/overhead.py                     # 0 and 200 ms, 3 repeats each
    .venv/bin/python bench/overhead.py --latency-ms 200 --reps 2
    JUDGELOOP_BENCH_SHARED=/path/to/shared .venv/bin/python bench/overhead.py   # another shared folder
"""

import argparse
import collections
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("JUDGELOOP_BENCH_SHARED", REPO.parent / "shared"))
TOOLS = SHARED / "tools"
GOAL_RATIO = 1.10  # at 200 ms: judgeloop less the held-out measurement, over the script
BIN = Path(sys.executable).parent

# Script step -> the judgeloop step doing the same documented calls.
STEP_PAIRS = [
    ("a_judge", "base_judge"),
    ("b_prompt", "agent_prompt"),
    ("c_evaluate", "tagged_traces"),
    ("d_dataset", "eval_dataset"),
    ("e_labeling", "labeling_session"),
    ("f_labels", "labels (release)"),
    ("g_align", "aligned_judge"),
    ("h_optimize", "optimized_prompt"),
]
# Log lines that open and close judgeloop's held-out measurements (judgeloop/judging/alignment.py and
# judgeloop/prompt_optimization/optimization.py say them); the script has no equivalent step.
HELDOUT_WINDOWS = {
    "aligned_judge": ("measuring judge", "registered judge"),
    "optimized_prompt": ("scoring it and production", None),  # closed by the next message
}


def run_measured(argv, env, log_to) -> tuple[float, int, int]:
    """(wall seconds, peak RSS in MB of the process and its waited children, exit status)."""
    t0 = time.perf_counter()
    with open(log_to, "ab") as out:
        proc = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=REPO)
        _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return time.perf_counter() - t0, usage.ru_maxrss // 1024, proc.returncode


class LLMLog:
    """Requests in the fake server's JSONL log, by kind, optionally within a time window."""

    def __init__(self, path: Path):
        self.path = path

    def records(self) -> list[dict]:
        if not self.path.exists():
            return []
        return [json.loads(line) for line in self.path.read_text().splitlines() if line.strip()]

    def count(self, since: float, until: float) -> dict:
        kinds = collections.Counter(r["kind"] for r in self.records() if since <= r["ts"] <= until)
        return dict(sorted(kinds.items()))


def start_fake_server(workdir: Path, latency_ms: float):
    log = workdir / f"llm-{int(latency_ms)}ms.jsonl"
    proc = subprocess.Popen(
        [sys.executable, str(TOOLS / "fake_openai.py"), "--port", "0", "--latency-ms", str(latency_ms), "--log", str(log)],
        stdout=subprocess.PIPE,
        text=True,
    )
    port = proc.stdout.readline().strip().removeprefix("PORT=")
    return proc, f"http://127.0.0.1:{port}/v1", LLMLog(log)


def base_env(api_base: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JUDGELOOP_", "DAGSTER_", "OPENAI_"))}
    env.update(OPENAI_API_BASE=api_base, OPENAI_API_KEY="sk-fake", PYTHONUNBUFFERED="1")
    # The evaluate worker bound judgeloop sets on a sqlite store, for both sides: with MLflow's
    # default pools (40 threads each) the script's evaluate left 28 of 400 traces unscored and some
    # without expectations under load, and its labels step then failed.
    env.setdefault("MLFLOW_GENAI_EVAL_MAX_WORKERS", "8")
    return env


def run_script(args, api_base: str, llm: LLMLog, workdir: Path) -> dict:
    out = workdir / "summary.json"
    t0 = time.time()
    argv = [sys.executable, str(TOOLS / "seed_baseline.py"), "--llm-log", str(llm.path), "--n", str(args.n),
            "--gepa-budget", str(args.gepa_budget), "--workdir", str(workdir), "--json-out", str(out)]
    wall, rss, status = run_measured(argv, base_env(api_base), workdir / "script.log")
    summary = json.loads(out.read_text()) if out.exists() else {"exit": f"exit {status}", "steps_s": {}}
    return {
        "wall_s": round(wall, 2),
        "steps_s": summary.get("steps_s", {}),
        "import_s": summary.get("import_s"),
        "llm_calls": llm.count(t0, time.time()),
        "peak_rss_mb": rss,
        "ok": summary.get("exit") == "ok",
        "exit": summary.get("exit"),
    }


def graph_env(args, api_base: str, home: Path) -> dict:
    env = base_env(api_base)
    dagster_home = home / "dagster"
    dagster_home.mkdir(parents=True)
    (dagster_home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env.update(
        JUDGELOOP_HOME=str(home),
        DAGSTER_HOME=str(dagster_home),
        JUDGELOOP_JUDGE_MODEL="openai:/fake-judge",
        JUDGELOOP_REFLECTION_MODEL="openai:/fake-reflect",
        JUDGELOOP_EMBEDDING_MODEL="openai:/fake-embed",
        JUDGELOOP_AGENT_MODEL="openai:/fake-agent",
        JUDGELOOP_DEMO_ITEMS=str(args.n),
        JUDGELOOP_GEPA_MAX_METRIC_CALLS=str(args.gepa_budget),
        JUDGELOOP_EXPECTATIONS_PATH=str(home / "demo-expectations.jsonl"),
        # The script promotes whatever MemAlign returns and always runs GEPA; a gate blocking the
        # fake models' (meaningless) judge would skip GEPA and fail the run. Let every judge through.
        JUDGELOOP_GATE_MARGIN="2.0",
        JUDGELOOP_MIN_SCORED_HELDOUT="1",
    )
    if args.feedbackqa:
        env["JUDGELOOP_FEEDBACKQA_PATH"] = args.feedbackqa
    return env


def run_graph(args, api_base: str, llm: LLMLog, home: Path) -> dict:
    env = graph_env(args, api_base, home)
    log = home / "graph.log"
    dagster_job = [str(BIN / "dagster"), "job", "execute", "-m", "judgeloop_assets.definitions", "-j"]
    commands = [
        ("seed (demo traces)", [str(BIN / "judgeloop"), "demo", "seed"]),
        ("foundation run", [*dagster_job, "judgeloop_foundation"]),
        ("labels (release)", [str(BIN / "judgeloop"), "demo", "release", "--count", str(args.labels)]),
        ("realign run", [*dagster_job, "realign_judge"]),
    ]
    t0 = time.time()
    processes, ok = {}, True
    for name, argv in commands:
        wall, rss, status = run_measured(argv, env, log)
        processes[name] = {"wall_s": round(wall, 2), "peak_rss_mb": rss, "exit": status}
        if status != 0:
            ok = False
            break
    t1 = time.time()
    floor = process_floor(env, log)
    steps, heldout_windows = read_dagster_runs(home / "dagster")
    steps["labels (release)"] = processes.get("labels (release)", {}).get("wall_s")
    heldout_s = sum(end - start for start, end in heldout_windows)
    heldout_calls = collections.Counter()
    for start, end in heldout_windows:
        heldout_calls.update(llm.count(start, end))
    return {
        "wall_s": round(sum(p["wall_s"] for p in processes.values()), 2),
        "processes": processes,
        "steps_s": steps,
        "heldout_s": round(heldout_s, 2),
        "heldout_llm_calls": dict(sorted(heldout_calls.items())),
        "llm_calls": llm.count(t0, t1),
        "peak_rss_mb": max((p["peak_rss_mb"] for p in processes.values()), default=0),
        "floor_s": floor,
        "ok": ok,
        "log": str(log),
    }


def read_dagster_runs(dagster_home: Path) -> tuple[dict, list[tuple[float, float]]]:
    """Step seconds and held-out measurement windows from the instance's own event log."""
    os.environ["DAGSTER_HOME"] = str(dagster_home)
    import dagster as dg

    steps, windows = {}, []
    with dg.DagsterInstance.get() as instance:
        for run in instance.get_runs():
            started, open_window = {}, {}
            for entry in instance.all_logs(run.run_id):
                step, event = entry.step_key, entry.dagster_event
                if event is not None and event.event_type_value == "STEP_START":
                    started[step] = entry.timestamp
                elif event is not None and event.event_type_value in ("STEP_SUCCESS", "STEP_FAILURE") and step in started:
                    steps[step] = round(entry.timestamp - started[step], 2)
                elif event is None and step in HELDOUT_WINDOWS:
                    opening, closing = HELDOUT_WINDOWS[step]
                    message = entry.user_message or ""
                    if step in open_window and (closing is None or message.startswith(closing)):
                        windows.append((open_window.pop(step), entry.timestamp))
                    if message.startswith(opening) or opening in message:
                        open_window[step] = entry.timestamp
    return steps, windows


# What each judgeloop process imports before it can do any work (the script imports the same
# libraries once). Timed as bare processes that import and exit: the floor of running the
# workflow as separate processes, whatever the code inside them does.
FLOOR_IMPORTS = {
    "seed (demo traces)": "import mlflow, mlflow.store.tracking.sqlalchemy_store, judgeloop.cli",
    "foundation run": "import dagster, judgeloop_assets.definitions, mlflow.genai, mlflow.store.tracking.sqlalchemy_store, litellm",
    "labels (release)": "import mlflow, mlflow.store.tracking.sqlalchemy_store, judgeloop.cli",
    "realign run": "import dagster, judgeloop_assets.definitions, mlflow.genai, mlflow.store.tracking.sqlalchemy_store, litellm, dspy, gepa",
}


def process_floor(env: dict, log_to: Path) -> dict:
    """Seconds of a bare process per judgeloop process: interpreter start, imports, exit."""
    # The offline defaults judgeloop and the script both set before importing (judgeloop.stack.store).
    env = {**env, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "MLFLOW_MODEL_CATALOG_URI": ""}
    floor = {}
    for name, imports in FLOOR_IMPORTS.items():
        code = f"import atexit, gc\natexit.register(gc.freeze)\n{imports}\n"  # exits as judgeloop's do
        wall, _, _ = run_measured([sys.executable, "-c", code], env, log_to)
        floor[name] = round(wall, 2)
    return floor


RUNS = ("foundation run", "realign run")


def ratio_of(value, base):
    return round(value / base, 3) if value and base else None


def median(values):
    values = [v for v in values if v is not None]
    return round(statistics.median(values), 2) if values else None


def script_same_steps_s(script: dict) -> float:
    """The script's wall time less its expert-labels step: the steps the two Dagster runs do."""
    return script["wall_s"] - (script["steps_s"].get("f_labels") or 0.0)


def runs_less_heldout_s(graph: dict) -> float:
    return sum(graph["processes"].get(n, {}).get("wall_s", 0) for n in RUNS) - graph["heldout_s"]


def summarize(latency_ms: float, scripts: list[dict], graphs: list[dict], n: int = 40) -> dict:
    script_s = median([s["wall_s"] for s in scripts])
    graph_s = median([g["wall_s"] for g in graphs])
    heldout_s = median([g["heldout_s"] for g in graphs])
    rest = median([g["wall_s"] - g["heldout_s"] for g in graphs])
    return {
        "latency_ms": latency_ms,
        "items": n,
        "reps": len(scripts),
        # The measure: the two Dagster runs less the held-out measurement, against the
        # script's same steps (its expert-labels step left out, as the demo's seed and release are).
        "script_same_steps_s": median([script_same_steps_s(s) for s in scripts]),
        "runs_less_heldout_s": median([runs_less_heldout_s(g) for g in graphs]),
        "runs_vs_script_steps_ratio": ratio_of(
            median([runs_less_heldout_s(g) for g in graphs]), median([script_same_steps_s(s) for s in scripts])
        ),
        "script_s": script_s,
        "judgeloop_s": graph_s,
        "heldout_s": heldout_s,
        "judgeloop_less_heldout_s": rest,
        "ratio_less_heldout": ratio_of(rest, script_s),
        # Only the two Dagster runs (no demo seed/release processes), less the held-out measurement.
        "runs_only_ratio_less_heldout": ratio_of(
            median([sum(g["processes"].get(n, {}).get("wall_s", 0) for n in RUNS) - g["heldout_s"] for g in graphs]), script_s
        ),
        "steps": {
            f"{a} / {b}": (median([s["steps_s"].get(a) for s in scripts]), median([g["steps_s"].get(b) for g in graphs]))
            for a, b in STEP_PAIRS
        },
        "judgeloop_processes_s": {
            name: median([g["processes"].get(name, {}).get("wall_s") for g in graphs]) for name in graphs[0]["processes"]
        },
        "script_import_s": median([s["import_s"] for s in scripts]),
        "process_floor_s": {name: median([g["floor_s"][name] for g in graphs]) for name in FLOOR_IMPORTS},
        "llm_calls": {"script": scripts[-1]["llm_calls"], "judgeloop": graphs[-1]["llm_calls"],
                      "judgeloop_heldout": graphs[-1]["heldout_llm_calls"]},
        "peak_rss_mb": {"script": max(s["peak_rss_mb"] for s in scripts), "judgeloop": max(g["peak_rss_mb"] for g in graphs)},
        "all_ok": all(s["ok"] for s in scripts) and all(g["ok"] for g in graphs),
    }


def print_summary(result: dict) -> None:
    print(f"\n== {result['latency_ms']:.0f} ms per LLM request, {result['reps']} repeat(s), medians ==")
    print(f"{'step (script / judgeloop)':42} {'script s':>9} {'judgeloop s':>12}")
    for name, (a, b) in result["steps"].items():
        print(f"{name:42} {a if a is not None else '-':>9} {b if b is not None else '-':>12}")
    print(f"{'script imports':42} {result['script_import_s']:>9}")
    for name, seconds in result["judgeloop_processes_s"].items():
        print(f"{'judgeloop process: ' + name:42} {'':>9} {seconds:>12}")
    print(f"{'TOTAL wall':42} {result['script_s']:>9} {result['judgeloop_s']:>12}")
    print(f"held-out measurement (judgeloop only): {result['heldout_s']} s, calls {result['llm_calls']['judgeloop_heldout']}")
    print(f"judgeloop less held-out: {result['judgeloop_less_heldout_s']} s = {result['ratio_less_heldout']}x the script")
    print(f"the two Dagster runs alone, less held-out: {result['runs_only_ratio_less_heldout']}x the script")
    print(f"LLM calls  script: {result['llm_calls']['script']}")
    print(f"           judgeloop: {result['llm_calls']['judgeloop']}")
    print(f"peak RSS MB  script: {result['peak_rss_mb']['script']}  judgeloop (largest process): {result['peak_rss_mb']['judgeloop']}")
    floor = result["process_floor_s"]
    total, extra = floor_over_script(result)
    print(f"process floor (bare processes importing what each judgeloop process imports, then exiting): "
          f"{', '.join(f'{k} {v}' for k, v in floor.items())} = {total} s; the script's imports "
          f"{result['script_import_s']} s; the difference alone is {extra} s = "
          f"{round(100 * extra / result['script_s'])}% of the script's wall time")


def floor_over_script(result: dict) -> tuple[float, float]:
    total = round(sum(result["process_floor_s"].values()), 2)
    return total, round(total - (result["script_import_s"] or 0), 2)


GOAL_SLOPE = 1.05  # per-item time of the two runs over the script's, between two sizes


def slope_and_fixed_cost(results: list[dict]) -> list[dict]:
    """Per latency with two sizes: seconds per item and fixed seconds, runs against script."""
    found = []
    for latency in sorted({r["latency_ms"] for r in results}):
        at = sorted((r for r in results if r["latency_ms"] == latency), key=lambda r: r["items"])
        if len(at) < 2 or at[0]["items"] == at[-1]["items"]:
            continue
        small, large = at[0], at[-1]
        items = large["items"] - small["items"]
        runs = (large["runs_less_heldout_s"] - small["runs_less_heldout_s"]) / items
        script = (large["script_same_steps_s"] - small["script_same_steps_s"]) / items
        runs_fixed = small["runs_less_heldout_s"] - runs * small["items"]
        script_fixed = small["script_same_steps_s"] - script * small["items"]
        found.append({
            "latency_ms": latency, "sizes": [small["items"], large["items"]],
            "runs_per_item_s": round(runs, 4), "script_per_item_s": round(script, 4), "slope_ratio": ratio_of(runs, script),
            "runs_fixed_s": round(runs_fixed, 2), "script_fixed_s": round(script_fixed, 2),
            "extra_fixed_s": round(runs_fixed - script_fixed, 2),
        })
    return found


def use_domain(args, workdir: Path) -> None:
    """Both sides on another FeedbackQA domain: the script reads ``data/feedbackqa/WHO`` beside
    its tools folder, so a private shared folder holds copies of the tools and that domain's file
    under the WHO name; judgeloop reads the same folder."""
    global TOOLS
    private = workdir / "shared"
    (private / "tools").mkdir(parents=True)
    for name in ("seed_baseline.py", "fake_openai.py"):
        shutil.copy(TOOLS / name, private / "tools" / name)
    target = private / "data" / "feedbackqa" / "WHO"
    target.mkdir(parents=True)
    shutil.copy(SHARED / "data" / "feedbackqa" / args.domain / "feedback_valid.json", target / "feedback_valid.json")
    TOOLS = private / "tools"
    args.feedbackqa = str(private / "data" / "feedbackqa")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency-ms", default="0,200", help="comma-separated LLM latencies")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--n", type=int, default=40, help="FeedbackQA items (both sides)")
    parser.add_argument("--sizes", help="comma-separated item counts, e.g. 40,400: per-item slope and fixed cost "
                                        "of the two runs against the script (overrides --n; labels = 2 per item)")
    parser.add_argument("--domain", default="WHO", help="FeedbackQA domain both sides read (WHO has 129 items; "
                                                         "UK 540, CDC 405 in the shared data)")
    parser.add_argument("--labels", type=int, default=80, help="expert labels judgeloop releases")
    parser.add_argument("--gepa-budget", type=int, default=20)
    parser.add_argument("--feedbackqa", help="JUDGELOOP_FEEDBACKQA_PATH for judgeloop (default: its own)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    args = parser.parse_args()
    if not (TOOLS / "seed_baseline.py").exists():
        print(f"no baseline script at {TOOLS}: set JUDGELOOP_BENCH_SHARED to the shared folder")
        return 0

    workdir = Path(tempfile.mkdtemp(prefix="judgeloop-bench-overhead-"))
    load = os.getloadavg()
    results = []
    sizes = [int(x) for x in args.sizes.split(",")] if args.sizes else [args.n]
    if args.domain != "WHO":
        use_domain(args, workdir)
    try:
        for n, latency in [(n, float(x)) for n in sizes for x in args.latency_ms.split(",")]:
            if args.sizes:
                args.n, args.labels = n, 2 * n
            server, api_base, llm = start_fake_server(workdir, latency)
            scripts, graphs = [], []
            try:
                for rep in range(args.reps):
                    # Alternate who goes first so drifting machine load hits both sides alike.
                    order = ["script", "graph"] if rep % 2 == 0 else ["graph", "script"]
                    for side in order:
                        where = workdir / f"{args.n}items-{int(latency)}ms-{rep}-{side}"
                        where.mkdir()
                        print(f"[{args.n} items, {latency:.0f} ms, repeat {rep + 1}/{args.reps}] {side} ...", flush=True)
                        if side == "script":
                            scripts.append(run_script(args, api_base, llm, where))
                            print(f"    {scripts[-1]['wall_s']} s ({scripts[-1]['exit']})", flush=True)
                        else:
                            graphs.append(run_graph(args, api_base, llm, where))
                            print(f"    {graphs[-1]['wall_s']} s {graphs[-1]['processes']}", flush=True)
            finally:
                server.terminate()
                server.wait(timeout=5)
            results.append(summarize(latency, scripts, graphs, args.n))
            print_summary(results[-1])
    finally:
        if args.keep:
            print(f"work folder kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)

    print(f"\nload average before: {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}; after: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    for result in results:
        if not result["all_ok"]:
            print(f"FAIL  {result['latency_ms']:.0f} ms: a run failed (see --keep logs)")
        if result["latency_ms"] == 200:
            verdict = "PASS" if result["ratio_less_heldout"] is not None and result["ratio_less_heldout"] <= GOAL_RATIO else "FAIL"
            print(f"{verdict}  at 200 ms judgeloop less the held-out measurement is {result['ratio_less_heldout']}x the script (goal <= {GOAL_RATIO}x)")
    two_sizes = slope_and_fixed_cost(results)
    for found in two_sizes:
        verdict = "PASS" if found["slope_ratio"] is not None and found["slope_ratio"] <= GOAL_SLOPE else "FAIL"
        print(f"{verdict}  at {found['latency_ms']:.0f} ms, {found['sizes'][0]} -> {found['sizes'][1]} items: per item the two runs "
              f"take {found['runs_per_item_s']} s, the script {found['script_per_item_s']} s = {found['slope_ratio']}x "
              f"(goal <= {GOAL_SLOPE}x); fixed cost {found['runs_fixed_s']} s vs {found['script_fixed_s']} s "
              f"(+{found['extra_fixed_s']} s per workflow)")
    for result in results:
        if result["latency_ms"] == 200 and result["items"] >= 400:
            ratio = result["runs_vs_script_steps_ratio"]
            verdict = "PASS" if ratio is not None and ratio <= GOAL_RATIO else "FAIL"
            print(f"{verdict}  at 200 ms and {result['items']} items the two Dagster runs less the held-out measurement "
                  f"are {ratio}x the script's same steps (goal <= {GOAL_RATIO}x)")
    print(json.dumps({"bench": "overhead", "load_avg": [round(x, 2) for x in load],
                      "load_avg_after": [round(x, 2) for x in os.getloadavg()], "results": results, "two_sizes": two_sizes}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
