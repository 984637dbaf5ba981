"""Benchmark: what one tick of the SME-label sensor costs as the MLflow store grows.

The sensor calls ``judgeloop.sme_labels.labels.changed_since(settings, experiment_id, cursor)`` on every
tick. This script builds synthetic sqlite MLflow stores of 1k / 10k / 100k traces (every trace
carries an LLM_JUDGE feedback named like the judge, a fraction also a HUMAN label), then times:

- the idle tick: cursor at the newest label, nothing new (median of --reps calls);
- the tick after k = 5, 50, 500 new HUMAN labels written after the cursor with
  ``judgeloop.sme_labels.labels.log_label`` (the normal ``mlflow.log_feedback`` path, one call per label);
- the full read from an empty cursor (first tick ever / ``current_labels``), for context;
- one more idle tick after --judge-burst LLM_JUDGE scores were written after the newest label
  (an evaluate run between two labels; bulk-inserted), for context;
- the REST fallback ``changed_since_via_api`` (pages through every trace with feedback of the
  judge's name), in a child process stopped after --api-budget seconds.

Besides wall time it reports the rows the call returned, and for the SQL path SQLite's own
measure of work done (virtual-machine steps of the exact statements ``changed_since`` sent,
replayed in a separate untimed run) plus the index the query planner chose. VM steps do not
depend on machine noise, so "flat in store size" can be read from them directly.

Usage:
    .venv/bin/python bench/sensor_tick.py                  # 1k, 10k, 100k
    .venv/bin/python bench/sensor_tick.py --quick          # 1k, 10k
    .venv/bin/python bench/sensor_tick.py --sizes 1000,5000 --workdir /tmp/ticks --keep

It prints a plain-text table, one PASS/FAIL line per goal (the exit status is 0 either way) and,
last, one JSON line with every number.
"""

import argparse
import base64
import hashlib
import json
import math
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

# Quiet, offline-friendly MLflow before it is imported (judgeloop.stack.store sets the same defaults).
os.environ.setdefault("MLFLOW_MODEL_CATALOG_URI", "")
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("MLFLOW_ENABLE_ASYNC_TRACE_LOGGING", "false")
os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from judgeloop.sme_labels import labels as jl_labels  # noqa: E402
from judgeloop.mlflow_internals import label_rows  # noqa: E402
from judgeloop.sme_labels.labels import Cursor, changed_since, log_label  # noqa: E402
from judgeloop.settings import load_settings  # noqa: E402
from judgeloop.stack.store import connect  # noqa: E402

JUDGE_SOURCE_ID = "openai:/gpt-4.1-mini"
REVIEWERS = ["sme-ana", "sme-bo", "sme-chen"]
DAY_MS = 86_400_000
FLAT_EXPONENT = 0.25  # "flat": cost grows at most like size**0.25 (x3.2 over 1k -> 100k; linear is 1.0) ...
FLAT_SLACK_S = 0.005  # ... or, for times, stays within 5 ms (sub-millisecond medians are mostly noise)
FLAT_SLACK_STEPS = 1000  # ... or, for SQLite VM steps, within 1,000 steps (a handful of rows)
IDLE_GOAL_S = 1.0


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- data generation


def _b64(value: int, nbytes: int) -> str:
    return base64.b64encode(value.to_bytes(nbytes, "big")).decode()


def generate_store(home: Path, n_traces: int, human_fraction: float, judge_name: str, seed: int) -> dict:
    """A fresh sqlite MLflow store under ``home`` holding ``n_traces`` synthetic evaluated traces.

    The schema comes from MLflow itself (``judgeloop.stack.store.connect`` creates the store and the
    experiment through the normal client); the rows are then bulk-inserted with SQLAlchemy Core
    ``executemany`` into MLflow's own ORM tables (trace_info, trace_tags, trace_request_metadata,
    spans, assessments), shaped exactly like the rows ``@mlflow.trace`` + ``log_feedback``
    write: spans stored in the tracking store (``mlflow.trace.spansLocation=TRACKING_STORE``),
    the span JSON in OTel-dict form, assessments with the denormalised experiment_id /
    trace_timestamp_ms / aggregate_value columns filled in.
    """
    import sqlalchemy as sa

    from mlflow_rows import check_revision, insert

    timings = {}
    t0 = time.perf_counter()
    settings = load_settings(home=home, experiment_name="judgeloop-bench", judge_name=judge_name)
    experiment_id = connect(settings)  # creates mlflow.db (MLflow's migrations) + the experiment
    timings["schema_s"] = time.perf_counter() - t0

    t1 = time.perf_counter()
    rng = random.Random(seed)
    now_ms = int(time.time() * 1000)
    start_ms = now_ms - 30 * DAY_MS
    span_ms = 29 * DAY_MS  # traces spread over 29 days, the newest a day old
    exp_int = int(experiment_id)
    artifact_root = settings.artifact_location

    traces, tags, metadata, spans, assessments = [], [], [], [], []
    n_human = 0
    for i in range(n_traces):
        otel_trace_id = rng.getrandbits(128)
        otel_span_id = rng.getrandbits(64) or 1
        trace_id = f"tr-{otel_trace_id:032x}"
        span_id = f"{otel_span_id:016x}"
        ts_ms = start_ms + (i * span_ms) // max(n_traces, 1)
        duration_ms = rng.randint(200, 4000)
        question = f"Synthetic question #{i}: how do I reset my {rng.choice(['password', 'router', 'account', 'card'])}?"
        answer = f"Synthetic answer #{i}: open settings and follow the reset steps."
        inputs_json = json.dumps({"question": question})
        outputs_json = json.dumps(answer)
        start_ns = ts_ms * 1_000_000 + rng.randint(0, 999_999)
        end_ns = start_ns + duration_ms * 1_000_000
        span_content = json.dumps(
            {
                "trace_id": _b64(otel_trace_id, 16),
                "span_id": _b64(otel_span_id, 8),
                "parent_span_id": None,
                "name": "agent",
                "start_time_unix_nano": start_ns,
                "end_time_unix_nano": end_ns,
                "events": [],
                "status": {"code": "STATUS_CODE_OK", "message": ""},
                "attributes": {
                    "mlflow.traceRequestId": json.dumps(trace_id),
                    "mlflow.spanType": json.dumps("CHAIN"),
                    "mlflow.spanFunctionName": json.dumps("agent"),
                    "mlflow.spanInputs": inputs_json,
                    "mlflow.spanOutputs": outputs_json,
                },
                "links": [],
            }
        )
        size = len(span_content) + 300
        traces.append(
            {
                "request_id": trace_id,
                "experiment_id": exp_int,
                "timestamp_ms": ts_ms,
                "execution_time_ms": duration_ms,
                "status": "OK",
                "client_request_id": None,
                "request_preview": inputs_json[:1000],
                "response_preview": outputs_json[:1000],
                "db_payload_generation": 1,
                "trace_name": "agent",
            }
        )
        for key, value in (
            ("mlflow.artifactLocation", f"{artifact_root}/traces/{trace_id}/artifacts"),
            ("mlflow.trace.spansLocation", "TRACKING_STORE"),
            ("eval", "complete"),
            ("judgeloop.question_id", hashlib.sha256(inputs_json.encode()).hexdigest()[:16]),
        ):
            tags.append({"request_id": trace_id, "key": key, "value": value})
        for key, value in (
            ("mlflow.trace_schema.version", "3"),
            ("mlflow.traceInputs", inputs_json),
            ("mlflow.traceOutputs", outputs_json),
            ("mlflow.trace.sizeBytes", str(size)),
            (
                "mlflow.trace.sizeStats",
                json.dumps({"total_size_bytes": size, "num_spans": 1, "max": size, "p25": size, "p50": size, "p75": size}),
            ),
            ("mlflow.trace.infoFinalized", "true"),
            ("mlflow.source.type", "LOCAL"),
            ("mlflow.source.name", "bench/sensor_tick.py"),
            ("mlflow.user", "bench"),
        ):
            metadata.append({"request_id": trace_id, "key": key, "value": value})
        spans.append(
            {
                "trace_id": trace_id,
                "experiment_id": exp_int,
                "span_id": span_id,
                "parent_span_id": None,
                "name": "agent",
                "type": "CHAIN",
                "status": "OK",
                "start_time_unix_nano": start_ns,
                "end_time_unix_nano": end_ns,
                "content": span_content,
            }
        )
        judge_ms = ts_ms + duration_ms + rng.randint(500, 5000)
        score = rng.randint(1, 4)
        assessments.append(
            _assessment_row(trace_id, exp_int, ts_ms, judge_name, score, "LLM_JUDGE", JUDGE_SOURCE_ID,
                            judge_ms, f"The answer rates {score}: synthetic judge rationale.")
        )
        if rng.random() < human_fraction:
            n_human += 1
            label_ms = judge_ms + rng.randint(60_000, 3 * DAY_MS)  # an SME gets to it within 3 days ...
            if label_ms > now_ms - 3_600_000:  # ... but all synthetic labels are at least an hour old
                label_ms = rng.randint(judge_ms + 60_000, now_ms - 3_600_000)
            assessments.append(
                _assessment_row(trace_id, exp_int, ts_ms, judge_name, rng.randint(1, 4), "HUMAN",
                                rng.choice(REVIEWERS), label_ms, "synthetic SME comment")
            )
    timings["build_rows_s"] = time.perf_counter() - t1

    t2 = time.perf_counter()
    engine = sa.create_engine(settings.resolved_tracking_uri)
    check_revision(engine)
    with engine.begin() as conn:
        for table_name, rows in (
            ("trace_info", traces),
            ("trace_tags", tags),
            ("trace_request_metadata", metadata),
            ("spans", spans),
            ("assessments", assessments),
        ):
            insert(conn, table_name, rows)
    engine.dispose()
    timings["insert_s"] = time.perf_counter() - t2
    row_counts = {
        "trace_info": len(traces),
        "trace_tags": len(tags),
        "trace_request_metadata": len(metadata),
        "spans": len(spans),
        "assessments": len(assessments),
    }
    return {
        "settings": settings,
        "experiment_id": experiment_id,
        "n_traces": n_traces,
        "n_human": n_human,
        "trace_ids": [t["request_id"] for t in traces],
        "trace_ts": {t["request_id"]: t["timestamp_ms"] for t in traces},
        "human_trace_ids": {a["trace_id"] for a in assessments if a["source_type"] == "HUMAN"},
        "rows": row_counts,
        "timings": timings,
        "db_bytes": (home / "mlflow.db").stat().st_size if (home / "mlflow.db").exists() else None,  # None: not sqlite
    }


def _assessment_row(trace_id, experiment_id, trace_ts_ms, name, value, source_type, source_id, at_ms, rationale):
    return {
        "assessment_id": f"a-{uuid.uuid4().hex}",
        "trace_id": trace_id,
        "name": name,
        "assessment_type": "feedback",
        "value": json.dumps(value),
        "error": None,
        "created_timestamp": at_ms,
        "last_updated_timestamp": at_ms,
        "experiment_id": experiment_id,
        "trace_timestamp_ms": trace_ts_ms,
        "aggregate_value": float(value),
        "is_numeric_value": True,
        "source_type": source_type,
        "source_id": source_id,
        "run_id": None,
        "span_id": None,
        "rationale": rationale,
        "overrides": None,
        "valid": True,
        "assessment_metadata": None,
    }


def verify_store(store: dict, judge_name: str) -> dict:
    """MLflow's own readers must accept the synthetic rows: search_traces + get_trace on a sample."""
    import mlflow
    from mlflow import MlflowClient

    t0 = time.perf_counter()
    eid = store["experiment_id"]
    found = mlflow.search_traces(
        locations=[eid], filter_string=f"feedback.`{judge_name}` IS NOT NULL", max_results=25, return_type="list"
    )
    assert len(found) == 25, f"search_traces returned {len(found)} traces"
    for trace in found:
        assert trace.data.spans and isinstance(trace.data.spans[0].inputs, dict), trace.info.trace_id
        assert any(a.name == judge_name and a.source.source_type == "LLM_JUDGE" for a in trace.info.assessments)
    frame = mlflow.search_traces(locations=[eid], filter_string="tag.eval = 'complete'", max_results=10)
    assert len(frame) == 10, f"search_traces (DataFrame) returned {len(frame)} rows"
    client = MlflowClient()
    human = sorted(store["human_trace_ids"])
    rng = random.Random(7)
    sample = rng.sample(store["trace_ids"], min(10, len(store["trace_ids"]))) + human[:5]
    for trace_id in sample:
        trace = client.get_trace(trace_id)
        assert trace.info.state.value == "OK"
        assert trace.data.spans[0].outputs and "question" in trace.data.spans[0].inputs
        sources = sorted(a.source.source_type for a in trace.info.assessments)
        expected = ["HUMAN", "LLM_JUDGE"] if trace_id in store["human_trace_ids"] else ["LLM_JUDGE"]
        assert sources == expected, (trace_id, sources)
    return {"verified_traces": len(found) + len(frame) + len(sample), "verify_s": time.perf_counter() - t0}


# --------------------------------------------------------------------------- measuring


class StatementSpy:
    """Records the assessments queries ``changed_since`` sends through its engine (one per page)."""

    def __init__(self, engine):
        import sqlalchemy as sa

        self.statements = []
        sa.event.listen(engine, "before_cursor_execute", self._capture)

    def _capture(self, conn, cursor, statement, parameters, context, executemany):
        if "FROM assessments" in statement:
            self.statements.append((statement, tuple(parameters) if parameters is not None else ()))

    def work_of(self, db_path: Path, call) -> dict:
        """Run ``call`` once more (untimed) and replay each statement it sent with SQLite's counters."""
        self.statements = []
        call()
        replays = [sqlite_work(db_path, statement, parameters) for statement, parameters in self.statements]
        return {
            "queries": len(replays),
            "vm_steps": sum(r["vm_steps"] for r in replays),
            "plan": replays[0]["plan"] if replays else [],
        }


def sqlite_work(db_path: Path, statement: str, parameters: tuple) -> dict:
    """SQLite's plan and virtual-machine step count for one statement (separate connection)."""
    import sqlite3

    conn = sqlite3.connect(str(db_path))
    try:
        plan = [row[-1] for row in conn.execute("EXPLAIN QUERY PLAN " + statement, parameters)]
        steps = [0]

        def tick():
            steps[0] += 1
            return 0

        conn.set_progress_handler(tick, 1)
        rows = len(conn.execute(statement, parameters).fetchall())
        conn.set_progress_handler(None, 0)
        return {"plan": plan, "vm_steps": steps[0], "rows": rows}
    finally:
        conn.close()


def time_calls(fn, reps: int) -> tuple[list[float], object]:
    times, result = [], None
    for _ in range(reps):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return times, result


def newest_label_cursor(db_uri: str, experiment_id: str) -> Cursor:
    """The cursor of the newest HUMAN feedback, found independently of changed_since."""
    import sqlalchemy as sa

    engine = sa.create_engine(db_uri)
    with engine.connect() as conn:
        row = conn.execute(
            sa.text(
                "SELECT last_updated_timestamp, assessment_id FROM assessments "
                "WHERE experiment_id = :e AND source_type = 'HUMAN' AND assessment_type = 'feedback' "
                "ORDER BY last_updated_timestamp DESC, assessment_id DESC LIMIT 1"
            ),
            {"e": int(experiment_id)},
        ).one()
    engine.dispose()
    return Cursor(int(row[0]), str(row[1]))


def measure_sql(store: dict, ks: list[int], reps: int, judge_name: str, seed: int, judge_burst: int = 0) -> dict:
    settings = store["settings"]
    eid = store["experiment_id"]
    db_uri = settings.resolved_tracking_uri
    db_path = settings.resolved_home / "mlflow.db"
    out = {}

    # The cursor a sensor holds after reading everything (it carries the ids of the look-back
    # window); its position is checked against an independent query.
    newest = changed_since(settings, eid, Cursor()).cursor
    assert newest.key == newest_label_cursor(db_uri, eid).key, (newest.key, newest_label_cursor(db_uri, eid).key)
    engine = label_rows.engine_for(db_uri)  # the engine changed_since will use; created here, unused yet
    spy = StatementSpy(engine)

    # First tick against this store in this process: new engine, first connection.
    t0 = time.perf_counter()
    batch = changed_since(settings, eid, newest)
    out["idle_first_call_s"] = time.perf_counter() - t0
    assert batch.labels == [], batch  # rows_read may include the few rows of the look-back window

    times, batch = time_calls(lambda: changed_since(settings, eid, newest), reps)
    out["idle"] = {"median_s": statistics.median(times), "min_s": min(times), "max_s": max(times),
                   "reps": reps, "rows_read": batch.rows_read, "labels": len(batch.labels)}
    out["idle"].update(spy.work_of(db_path, lambda: changed_since(settings, eid, newest)))

    # Full read from an empty cursor (the first tick ever, or current_labels()).
    times, full = time_calls(lambda: changed_since(settings, eid, Cursor()), 3)
    out["full_read"] = {"median_s": statistics.median(times), "rows_read": full.rows_read, "labels": len(full.labels)}
    out["full_read"].update(spy.work_of(db_path, lambda: changed_since(settings, eid, Cursor())))
    assert full.cursor.key == newest.key, (full.cursor, newest)
    assert full.rows_read == store["n_human"], (full.rows_read, store["n_human"])

    # k new labels written the normal way, then one tick from the cursor before them.
    rng = random.Random(seed + 1)
    unlabelled = [t for t in store["trace_ids"] if t not in store["human_trace_ids"]]
    rng.shuffle(unlabelled)
    cursor = newest
    out["k"] = {}
    for k in ks:
        targets, unlabelled = unlabelled[:k], unlabelled[k:]
        t0 = time.perf_counter()
        for trace_id in targets:
            log_label(trace_id, judge_name, rng.randint(1, 4), "sme-new", "benchmark label")
        write_s = time.perf_counter() - t0
        times, batch = time_calls(lambda: changed_since(settings, eid, cursor), reps)
        entry = {"median_s": statistics.median(times), "min_s": min(times), "max_s": max(times), "reps": reps,
                 "rows_read": batch.rows_read, "labels": len(batch.labels), "write_s": write_s,
                 "write_per_label_s": write_s / max(k, 1)}
        entry.update(spy.work_of(db_path, lambda: changed_since(settings, eid, cursor)))
        assert len(batch.labels) == k and {l.trace_id for l in batch.labels} == set(targets), (k, batch.rows_read)
        out["k"][str(k)] = entry
        cursor = batch.cursor

    # Judge activity after the newest label: an evaluate run scoring ``judge_burst`` traces writes
    # LLM_JUDGE feedback newer than the cursor. Bulk-inserted (same row shape as the generator).
    if judge_burst:
        import sqlalchemy as sa

        from mlflow_rows import insert

        now_ms = int(time.time() * 1000)
        sample = rng.sample(store["trace_ids"], min(judge_burst, len(store["trace_ids"])))
        rows = [
            _assessment_row(trace_id, int(eid), store["trace_ts"][trace_id], judge_name, rng.randint(1, 4), "LLM_JUDGE", JUDGE_SOURCE_ID,
                            max(now_ms, cursor.updated_ms + 1) + i, "re-scored")
            for i, trace_id in enumerate(sample)
        ]
        engine = sa.create_engine(db_uri)
        with engine.begin() as conn:
            insert(conn, "assessments", rows)
        engine.dispose()
        times, batch = time_calls(lambda: changed_since(settings, eid, cursor), reps)
        out["idle_after_judge_burst"] = {"judge_rows": len(rows), "median_s": statistics.median(times),
                                         "rows_read": batch.rows_read}
        out["idle_after_judge_burst"].update(spy.work_of(db_path, lambda: changed_since(settings, eid, cursor)))
    return out


def measure_api(store: dict, reps: int, budget_s: float, judge_name: str) -> dict:
    """The REST fallback, ``changed_since_via_api``: page through every trace with feedback named
    like the judge. Runs in a child process stopped after ``budget_s`` seconds: MLflow pages
    search_traces by OFFSET, so its cost grows faster than linearly and is hard to extrapolate."""
    import subprocess

    settings = store["settings"]
    command = [sys.executable, str(Path(__file__).resolve()), "--api-child", str(settings.resolved_home),
               "--judge-name", judge_name, "--api-reps", str(reps), "--api-budget", str(budget_s)]
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ready = child.stdout.readline()  # the child imports MLflow first; the budget starts after that
    if not ready.startswith("ready"):
        child.wait()
        raise RuntimeError(f"REST fallback child failed:\n{child.stderr.read()[-3000:]}")
    try:
        out, err = child.communicate(timeout=budget_s)
    except subprocess.TimeoutExpired:
        child.kill()
        child.communicate()
        return {"timed_out": True, "budget_s": budget_s}
    if child.returncode != 0:
        raise RuntimeError(f"REST fallback child failed:\n{err[-3000:]}")
    return json.loads(out.strip().splitlines()[-1])


def api_child(home: Path, judge_name: str, reps: int, budget_s: float) -> None:
    """Child process of ``measure_api``: times the fallback against the store in ``home``."""
    import judgeloop.tracing.traces as jl_traces

    settings = load_settings(home=home, experiment_name="judgeloop-bench", judge_name=judge_name)
    eid = connect(settings)
    newest = newest_label_cursor(settings.resolved_tracking_uri, eid)
    counted = {}
    original = jl_traces.search_all

    def counting_search_all(*args, **kwargs):
        found = original(*args, **kwargs)
        counted["traces"] = len(found)
        counted["assessments"] = sum(len(t.info.assessments or []) for t in found)
        return found

    jl_traces.search_all = counting_search_all  # changed_since_via_api imports it at call time
    print("ready", flush=True)
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        batch = jl_labels.changed_since_via_api(settings, eid, newest)
        times.append(time.perf_counter() - t0)
        if times[-1] > 20 or sum(times) + times[-1] > budget_s:  # one slow repetition makes the point
            break
    print(json.dumps({"median_s": statistics.median(times), "reps": len(times), "rows_read": batch.rows_read,
                      "traces_paged": counted.get("traces"), "assessments_inspected": counted.get("assessments")}))


# --------------------------------------------------------------------------- report


def fmt_s(seconds) -> str:
    if seconds is None:
        return "-"
    return f"{seconds:.6f}" if seconds < 10 else f"{seconds:.1f}"


def growth(values: list[float], sizes: list[int]) -> float:
    """Scaling exponent b in cost ~ size**b between the smallest and the largest store (1 = linear, 0 = flat)."""
    lo, hi = values[0], values[-1]
    if lo <= 0 or hi <= 0 or sizes[-1] == sizes[0]:
        return 0.0
    return math.log(hi / lo) / math.log(sizes[-1] / sizes[0])


def flat(values: list[float], sizes: list[int], slack: float = 0.0) -> tuple[bool, float, float]:
    """Flat: grows at most like size**FLAT_EXPONENT (or, for times, stays within ``slack`` seconds)."""
    b = growth(values, sizes)
    return (b <= FLAT_EXPONENT or values[-1] - values[0] <= slack), b, values[-1] / values[0] if values[0] else float("inf")


def report(results: dict, ks: list[int]) -> None:
    sizes = sorted(int(s) for s in results["sizes"])
    by = {n: results["sizes"][str(n)] for n in sizes}
    header = ["traces", "idle tick s", "rows", "vm steps", "1st call s", "full read s (rows)"]
    header += [f"k={k}: s (rows, vm steps)" for k in ks] + ["REST fallback s (traces paged)"]
    rows = []
    for n in sizes:
        sql = by[n]["sql"]
        row = [
            f"{n:,}",
            fmt_s(sql["idle"]["median_s"]),
            str(sql["idle"]["rows_read"]),
            f"{sql['idle']['vm_steps']:,}",
            fmt_s(sql["idle_first_call_s"]),
            f"{fmt_s(sql['full_read']['median_s'])} ({sql['full_read']['rows_read']:,})",
        ]
        for k in ks:
            e = sql["k"][str(k)]
            row.append(f"{fmt_s(e['median_s'])} ({e['rows_read']}, {e['vm_steps']:,})")
        api = by[n].get("api")
        if api and api.get("timed_out"):
            row.append(f"> {api['budget_s']:g} (stopped)")
        elif api:
            row.append(f"{fmt_s(api['median_s'])} ({api['traces_paged']:,})")
        else:
            row.append("skipped")
        rows.append(row)
    widths = [max(len(header[i]), *(len(row[i]) for row in rows)) for i in range(len(header))]
    line = "  ".join(h.ljust(w) for h, w in zip(header, widths))
    print()
    print("Sensor tick cost: judgeloop.sme_labels.labels.changed_since on a sqlite MLflow store (times in seconds)")
    print(f"idle = cursor at the newest label, nothing new; k = new HUMAN labels after the cursor; median of {results['reps']} calls")
    print("rows = rows changed_since returned (LabelBatch.rows_read); vm steps = SQLite VM steps of the statements it sent")
    print(line)
    print("-" * len(line))
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)))
    print()
    print("Query plan SQLite chose for the idle tick:")
    for n in sizes:
        print(f"  {n:>7,}: " + " | ".join(by[n]["sql"]["idle"]["plan"]))
    print()
    print("Data generation (per store; bulk inserts into MLflow's tables, schema by MLflow itself):")
    total = 0.0
    for n in sizes:
        g = by[n]["generation"]
        spent = g["schema_s"] + g["build_rows_s"] + g["insert_s"]
        total += spent
        print(
            f"  {n:>7,} traces: {spent:.1f} s (schema {g['schema_s']:.1f}, build rows {g['build_rows_s']:.1f}, "
            f"bulk insert {g['insert_s']:.1f}) + verify {g['verify_s']:.1f} s; {g['n_human']:,} HUMAN labels; "
            f"{sum(g['rows'].values()):,} rows; {g['db_bytes'] / 1e6:.0f} MB"
        )
    print(f"  total generation: {total:.1f} s")
    print("  new labels for the k ticks: judgeloop.sme_labels.labels.log_label (mlflow.log_feedback), one call each: "
          + ", ".join(f"{n:,} traces {statistics.mean(by[n]['sql']['k'][str(k)]['write_per_label_s'] for k in ks) * 1000:.1f} ms/label"
                      for n in sizes))

    print()
    goals = []
    idle = [by[n]["sql"]["idle"]["median_s"] for n in sizes]
    goals.append(("idle tick under 1 s at every size", max(idle) < IDLE_GOAL_S, f"slowest {fmt_s(max(idle))} s"))
    if len(sizes) > 1:
        span = f"{sizes[0]:,} -> {sizes[-1]:,} traces"
        t_ok, t_b, t_x = flat(idle, sizes, FLAT_SLACK_S)
        steps = [by[n]["sql"]["idle"]["vm_steps"] for n in sizes]
        s_ok, s_b, s_x = flat(steps, sizes, FLAT_SLACK_STEPS)
        goals.append((f"idle tick flat in store size ({span})", t_ok and s_ok,
                      f"time x{t_x:.1f} (size^{t_b:.2f}), vm steps x{s_x:.1f} (size^{s_b:.2f}, {steps[0]:,} -> {steps[-1]:,}); "
                      f"flat = at most size^{FLAT_EXPONENT:g} (or +{FLAT_SLACK_S * 1000:g} ms, +{FLAT_SLACK_STEPS:,} steps)"))
        for k in ks:
            es = [by[n]["sql"]["k"][str(k)] for n in sizes]
            # Exactly k labels returned; rows read may add the few rows of the 5 s look-back window
            # (labels already returned, re-read to catch late commits), never a share of the store.
            rows_ok = all(e["labels"] == k and e["rows_read"] <= k + 2 * k // 10 + 5 for e in es)
            t_ok, t_b, t_x = flat([e["median_s"] for e in es], sizes, FLAT_SLACK_S)
            s_ok, s_b, s_x = flat([e["vm_steps"] for e in es], sizes, FLAT_SLACK_STEPS)
            goals.append((f"k={k} tick returns k labels, does not grow with the store ({span})", rows_ok and t_ok and s_ok,
                          f"labels == {k}, rows read {[e['rows_read'] for e in es]}: {rows_ok}; time x{t_x:.1f} (size^{t_b:.2f}), "
                          f"vm steps x{s_x:.1f} (size^{s_b:.2f}, {es[0]['vm_steps']:,} -> {es[-1]['vm_steps']:,})"))
    if len(ks) > 1:
        for n in sizes:
            e = by[n]["sql"]["k"]
            grows = e[str(ks[-1])]["median_s"] > e[str(ks[0])]["median_s"]
            goals.append((f"tick grows with k at {n:,} traces", grows,
                          ", ".join(f"k={k} {fmt_s(e[str(k)]['median_s'])} s" for k in ks)))
    for name, ok, detail in goals:
        print(f"{'PASS' if ok else 'FAIL'}  {name}: {detail}")
    for n in sizes:
        burst = by[n]["sql"].get("idle_after_judge_burst")
        if burst:
            print(f"INFO  idle tick after {burst['judge_rows']:,} new LLM_JUDGE scores (no new label) at {n:,} traces: "
                  f"{fmt_s(burst['median_s'])} s, {burst['rows_read']} rows, {burst['vm_steps']:,} vm steps")
    for n in sizes:
        api = by[n].get("api")
        if api and api.get("timed_out"):
            print(f"INFO  REST fallback at {n:,} traces: stopped after {api['budget_s']:g} s (--api-budget)")
        elif api:
            print(f"INFO  REST fallback (changed_since_via_api, local store, no HTTP) at {n:,} traces: "
                  f"{fmt_s(api['median_s'])} s per idle tick ({api['traces_paged']:,} traces paged, "
                  f"{api['assessments_inspected']:,} assessments inspected) = x{api['median_s'] / by[n]['sql']['idle']['median_s']:,.0f} the SQL idle tick")
    results["goals"] = [{"goal": name, "pass": ok, "detail": detail} for name, ok, detail in goals]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1000,10000,100000", help="store sizes in traces, comma-separated")
    parser.add_argument("--quick", action="store_true", help="1k and 10k only")
    parser.add_argument("--ks", default="5,50,500", help="numbers of new labels per measured tick")
    parser.add_argument("--reps", type=int, default=15, help="repetitions per tick measurement (median)")
    parser.add_argument("--human-fraction", type=float, default=0.05)
    parser.add_argument("--judge-name", default="answer_quality")
    parser.add_argument("--api-budget", type=float, default=300.0,
                        help="stop the REST fallback measurement at a size after this many seconds (0: skip it)")
    parser.add_argument("--api-reps", type=int, default=3)
    parser.add_argument("--judge-burst", type=int, default=1000,
                        help="finally, LLM_JUDGE scores written after the newest label before one more idle tick (0: skip)")
    parser.add_argument("--workdir", type=Path, help="where the stores go (default: a temp dir, removed at the end)")
    parser.add_argument("--keep", action="store_true", help="keep the stores")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--api-child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.api_child:
        api_child(args.api_child, args.judge_name, args.api_reps, args.api_budget)
        return 0

    sizes = [1000, 10000] if args.quick else [int(s) for s in args.sizes.split(",") if s.strip()]
    ks = [int(k) for k in args.ks.split(",") if k.strip()]
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="judgeloop-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    import mlflow

    results = {"benchmark": "sensor_tick", "mlflow": mlflow.__version__, "python": sys.version.split()[0],
               "reps": args.reps, "ks": ks, "human_fraction": args.human_fraction, "sizes": {}}
    started = time.perf_counter()
    try:
        for n in sizes:
            home = workdir / f"store-{n}"
            if home.exists():
                shutil.rmtree(home)
            log(f"{n:,} traces: generating in {home}")
            store = generate_store(home, n, args.human_fraction, args.judge_name, args.seed + n)
            store["timings"].update(verify_store(store, args.judge_name))
            generation = {**store["timings"], "n_human": store["n_human"], "rows": store["rows"], "db_bytes": store["db_bytes"]}
            log(f"{n:,} traces: generated ({', '.join(f'{k} {v:.1f}' for k, v in store['timings'].items() if k.endswith('_s'))})")
            entry = {"generation": generation}
            entry["sql"] = measure_sql(store, ks, args.reps, args.judge_name, args.seed + n, args.judge_burst)
            log(f"{n:,} traces: idle tick {fmt_s(entry['sql']['idle']['median_s'])} s")
            if args.api_budget > 0:
                log(f"{n:,} traces: REST fallback (stopped after {args.api_budget:g} s)")
                entry["api"] = measure_api(store, args.api_reps, args.api_budget, args.judge_name)
                api = entry["api"]
                log(f"{n:,} traces: REST fallback " + (f"> {args.api_budget:g} s, stopped" if api.get("timed_out") else f"{fmt_s(api['median_s'])} s"))
            results["sizes"][str(n)] = entry
    finally:
        if not args.keep and args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    results["total_s"] = time.perf_counter() - started
    report(results, ks)
    print(f"\nTotal benchmark time: {results['total_s']:.0f} s" + (f"; stores kept in {workdir}" if args.keep or args.workdir else ""))
    print(json.dumps(results, default=str, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
