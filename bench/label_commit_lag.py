"""Benchmark: do concurrent label writers through a multi-worker MLflow server slip past the
sensor's cursor? Measures the commit lag that sizes ``labels.LOOKBACK_MS``.

MLflow stamps a label's ``last_updated_timestamp`` in the worker before the row is committed, so
with several workers a label can become visible after a newer one was already read. The sensor
re-reads ``LOOKBACK_MS`` before its cursor for that. This script starts ``mlflow server
--workers W`` on a throwaway PostgreSQL (tests/postgres.py), writes labels from T threads
through it, and meanwhile:

- a watcher polls the assessments table every few ms and records, for each label, when it first
  became visible and how far its timestamp lay *behind* the newest timestamp already visible
  then (the "late by" that the look-back window must cover);
- a reader runs ``changed_since`` in a tight loop from its own cursor, like a sensor ticking
  continuously (the worst case: a slow sensor reads fewer, larger batches).

At the end every label must have been returned by the reader exactly once (0 missed, 0 twice).
Prints numbers, PASS/FAIL lines (exit status 0 either way), and one JSON line.

    .venv/bin/python bench/label_commit_lag.py                       # 3 workers, 8 threads, 400 labels
    .venv/bin/python bench/label_commit_lag.py --workers 4 --threads 16 --labels 1000
"""

import argparse
import contextlib
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("MLFLOW_MODEL_CATALOG_URI", "")
os.environ.setdefault("MLFLOW_ENABLE_ASYNC_TRACE_LOGGING", "false")
os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def percentile(values, q):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--labels", type=int, default=400)
    parser.add_argument("--traces", type=int, default=100)
    parser.add_argument("--server-url", help="an existing PostgreSQL server (default: a throwaway one)")
    args = parser.parse_args(argv)

    import mlflow
    import sqlalchemy as sa

    from judgeloop.sme_labels import labels
    from judgeloop.stack import servers
    from judgeloop.stack.database_url import for_sqlalchemy
    from judgeloop.settings import load_settings
    from tests.postgres import cluster, create_database

    with contextlib.ExitStack() as stack:
        server_url = args.server_url or stack.enter_context(cluster())
        db_url = for_sqlalchemy(create_database(server_url))
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="judgeloop-lag-")))
        port = servers.free_port()
        env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
        stack_ = servers.Stack()
        stack.callback(stack_.stop)
        process = stack_.start("mlflow", servers.mlflow_command("127.0.0.1", port, db_url, workdir / "artifacts", False,
                                                                 workers=args.workers), env, workdir)
        url = f"http://127.0.0.1:{port}"
        servers.wait_for_http(f"{url}/health", process, timeout=300)
        log(f"mlflow server with {args.workers} workers on PostgreSQL at {url}")

        settings = load_settings(home=workdir / "home", tracking_uri=url, backend_store_uri=db_url, experiment_name="lag")
        mlflow.set_tracking_uri(url)
        experiment_id = mlflow.create_experiment("lag")
        mlflow.set_experiment(experiment_id=experiment_id)
        trace_ids = []
        for i in range(args.traces):
            with mlflow.start_span(name="agent") as span:
                span.set_inputs({"question": f"q{i}"})
                span.set_outputs(f"a{i}")
                trace_ids.append(span.trace_id)
        log(f"{len(trace_ids)} traces logged")

        engine = sa.create_engine(db_url)
        table = sa.table("assessments", sa.column("assessment_id"), sa.column("last_updated_timestamp"), sa.column("source_type"))
        first_seen: dict[str, tuple[float, int, int]] = {}  # id -> (seen at ms, its timestamp, newest visible before)
        returned: list[str] = []
        done = threading.Event()

        def watch():
            newest = 0
            with engine.connect() as conn:
                while not done.is_set() or len(first_seen) < args.labels:
                    rows = conn.execute(sa.select(table.c.assessment_id, table.c.last_updated_timestamp)
                                        .where(table.c.source_type == "HUMAN")).all()
                    conn.rollback()  # a fresh snapshot next time
                    now = time.time() * 1000
                    batch_newest = newest
                    for assessment_id, ts in rows:
                        if assessment_id not in first_seen:
                            first_seen[assessment_id] = (now, ts, newest)
                            batch_newest = max(batch_newest, ts)
                    newest = batch_newest
                    time.sleep(0.005)
                    if done.is_set() and time.time() - done_at[0] > 30:
                        break

        def read():
            cursor = labels.Cursor()
            while True:
                batch = labels.changed_since(settings, experiment_id, cursor)
                returned.extend(label.assessment_id for label in batch.labels)
                cursor = batch.cursor
                if done.is_set() and len(set(returned)) >= args.labels:
                    return
                if done.is_set() and time.time() - done_at[0] > 30:
                    return
                time.sleep(0.01)

        written, errors = [], []

        def write(share):
            try:
                for j in range(share):
                    written.append(labels.log_label(trace_ids[(len(written) + j) % len(trace_ids)], settings.judge_name,
                                                    1 + j % 4, f"sme-{threading.get_ident() % 97}"))
            except Exception as exc:
                errors.append(repr(exc))

        done_at = [0.0]
        watcher, reader = threading.Thread(target=watch), threading.Thread(target=read)
        watcher.start()
        reader.start()
        started = time.perf_counter()
        shares = [args.labels // args.threads + (1 if i < args.labels % args.threads else 0) for i in range(args.threads)]
        writers = [threading.Thread(target=write, args=(n,)) for n in shares]
        for thread in writers:
            thread.start()
        for thread in writers:
            thread.join()
        write_s = time.perf_counter() - started
        done_at[0] = time.time()
        done.set()
        watcher.join()
        reader.join()
        engine.dispose()

    late_by = [max(0, before - ts) for _, ts, before in first_seen.values()]
    visible_after = [seen - ts for seen, ts, _ in first_seen.values()]
    missed = set(written) - set(returned)
    twice = len(returned) - len(set(returned))
    results = {
        "benchmark": "label_commit_lag", "workers": args.workers, "threads": args.threads, "labels": len(written),
        "write_errors": errors[:5], "write_s": write_s, "labels_per_s": len(written) / write_s,
        "visible_after_ms": {"median": statistics.median(visible_after) if visible_after else None,
                             "p99": percentile(visible_after, 0.99), "max": max(visible_after, default=0)},
        "late_by_ms": {"count_late": sum(1 for x in late_by if x > 0), "p99": percentile(late_by, 0.99), "max": max(late_by, default=0)},
        "lookback_ms": labels.LOOKBACK_MS, "missed": len(missed), "returned_twice": twice,
    }
    print(f"{len(written)} labels from {args.threads} threads through {args.workers} MLflow workers on PostgreSQL "
          f"in {write_s:.1f} s ({results['labels_per_s']:.0f}/s)")
    print(f"visible after its timestamp: median {results['visible_after_ms']['median']:.0f} ms, "
          f"p99 {results['visible_after_ms']['p99']:.0f} ms, max {results['visible_after_ms']['max']:.0f} ms")
    print(f"became visible behind a newer label: {results['late_by_ms']['count_late']} labels, "
          f"by up to {results['late_by_ms']['max']:.0f} ms (p99 {results['late_by_ms']['p99']:.0f} ms); look-back window {labels.LOOKBACK_MS} ms")
    print(("PASS" if not errors else "FAIL") + f": every write succeeded ({len(errors)} errors)")
    print(("PASS" if not missed and not twice else "FAIL") + f": the cursor returned every label once ({len(missed)} missed, {twice} twice)")
    print(("PASS" if results["late_by_ms"]["max"] < labels.LOOKBACK_MS / 2 else "FAIL")
          + ": the look-back window is at least twice the largest lateness seen")
    print(json.dumps(results, default=str, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
