"""Benchmark: `judgeloop labels import` of a large file into a fresh local sqlite store.

Generates N traces (bulk-inserted, as bench/sensor_tick.py does) and a CSV of N labels, one per
trace, whose comments hold the characters that make CSV hard (quotes, commas, line breaks,
leading ``=+-@``, non-ASCII). Then, through judgeloop's own import code:

1. a dry run: read, validate and plan every row (judgeloop's own work, no writes);
2. the import: the same plus writing every label, with the progress lines a user sees;
3. the same file again: every row must come back unchanged (0 written).

Goals (PASS/FAIL, exit status 0 either way):
- rate: the import writes at least ``--target`` labels/s end to end. Default 150: MLflow writes
  each label in its own transaction (a locking read of the trace, an insert, a commit that syncs
  the sqlite file), which costs 3-4 ms on a 2-core machine, so about 250-300 labels/s is the
  ceiling of MLflow's public API here; 150/s leaves room for a busy machine and still imports
  200k rows in under 25 minutes, with progress all the way.
- own share: reading, validating and planning (what judgeloop adds) take at most 20% of the
  import's time, so the store's writes, not judgeloop, set the pace.
- progress: one progress line per batch of ``importing.BATCH_SIZE`` labels.
- idempotent: the re-import writes nothing.

    .venv/bin/python bench/label_import.py                  # 20,000 rows, through a server then direct
    .venv/bin/python bench/label_import.py --rows 5000 --through server
    .venv/bin/python bench/label_import.py --rows 200000 --through direct    # about 15-25 minutes
"""

import argparse
import contextlib
import csv
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("MLFLOW_MODEL_CATALOG_URI", "")
os.environ.setdefault("MLFLOW_ENABLE_ASYNC_TRACE_LOGGING", "false")
os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

COMMENTS = ['says "yes", then no', "a, b\nand c", "=SUM(A1:A9)", "+1 for this", "@team look", "ünïcødé ✓", "plain"]
REVIEWERS = ("sme-ana", "sme-bo", "sme-chen")
JUDGE_NAME = "answer_quality"


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def write_file(path: Path, trace_ids: list[str]) -> None:
    with path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["trace_id", "value", "comment", "reviewer"])
        for i, trace_id in enumerate(trace_ids):
            writer.writerow([trace_id, 1 + i % 4, f"{COMMENTS[i % len(COMMENTS)]} #{i}", REVIEWERS[i % 3]])


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def mlflow_server(home: Path, workers: int):
    """``judgeloop up``'s MLflow server (same command, same worker count) in front of the store."""
    from judgeloop.stack import servers
    from judgeloop.mlflow_internals import sqlite_store

    port = free_port()
    backend = f"sqlite:///{home / 'mlflow.db'}"
    sqlite_store.use_wal(backend)
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    stack = servers.Stack()
    process = stack.start(
        "mlflow", servers.mlflow_command("127.0.0.1", port, backend, home / "mlartifacts", False, workers=workers), env, home / "logs"
    )
    try:
        servers.wait_for_http(f"http://127.0.0.1:{port}/health", process, timeout=300)
        yield f"http://127.0.0.1:{port}", backend
    finally:
        stack.stop()


def measure(args, through: str) -> dict:
    import sensor_tick

    from judgeloop.sme_labels.label_files import importing
    from judgeloop.settings import load_settings
    from judgeloop.stack.store import connect

    with tempfile.TemporaryDirectory(prefix="judgeloop-import-") as tmp, contextlib.ExitStack() as stack:
        home = Path(tmp) / "state"
        log(f"[{through}] generating a store with {args.rows:,} traces")
        store = sensor_tick.generate_store(home, args.rows, 0.0, JUDGE_NAME, seed=7)
        options = {}
        if through == "server":
            url, backend = stack.enter_context(mlflow_server(home, args.workers))
            # What `judgeloop up` hands other shells (running.json): write through the server,
            # read labels from the database behind it.
            options = {"tracking_uri": url, "backend_store_uri": backend}
        settings = load_settings(home=home, experiment_name="judgeloop-bench", judge_name=JUDGE_NAME, **options)
        experiment_id = connect(settings)
        # Beside a server whose database is known, labels go into the database (store.writing_into_the_database).
        writers = importing.writers_for(settings.resolved_backend_store_uri or settings.resolved_tracking_uri)
        path = Path(tmp) / "labels.csv"
        write_file(path, store["trace_ids"])
        log(f"[{through}] label file: {path.stat().st_size / 1e6:.1f} MB, {writers} writer(s)")

        started = time.perf_counter()
        dry = importing.import_labels(settings, experiment_id, path, dry_run=True)
        dry_s = time.perf_counter() - started
        log(f"[{through}] dry run (read, validate, plan): {dry_s:.1f} s, {dry.count(importing.WRITE):,} to write")

        lines: list[tuple[float, str]] = []
        started = time.perf_counter()

        def progress(message: str) -> None:
            lines.append((time.perf_counter() - started, message))
            log(f"[{through}] progress: {message}")

        report = importing.import_labels(settings, experiment_id, path, progress=progress)
        import_s = time.perf_counter() - started
        started = time.perf_counter()
        again = importing.import_labels(settings, experiment_id, path)
        again_s = time.perf_counter() - started
        stored = len(importing.existing_labels(settings, experiment_id))

    rate = report.written / import_s if import_s else 0.0
    own_share = dry_s / import_s if import_s else 1.0
    write_lines = [m for _, m in lines if m.startswith("written ")]
    expected_lines = -(-report.written // importing.BATCH_SIZE)
    goals = {
        "rate": rate >= args.target,
        "own_share": own_share <= args.own_share,
        "progress": report.written > importing.BATCH_SIZE and len(write_lines) == expected_lines,
        "idempotent": again.written == 0 and again.edited == 0 and again.unchanged == args.rows,
        "none lost or duplicated": stored == args.rows,
    }
    print(f"label import {'through an MLflow server (judgeloop up)' if through == 'server' else 'into the sqlite store directly'}, "
          f"{args.rows:,} rows (batch {importing.BATCH_SIZE}, {writers} writer(s))")
    print(f"  dry run (read + validate + plan)   {dry_s:8.1f} s   {args.rows / dry_s:8.0f} rows/s")
    print(f"  import (the same + write)          {import_s:8.1f} s   {rate:8.0f} labels/s   {report.summary()}")
    print(f"  re-import (all unchanged)          {again_s:8.1f} s   {args.rows / again_s:8.0f} rows/s   {again.summary()}")
    print(f"  progress lines while writing: {len(write_lines)} (first: {write_lines[0] if write_lines else '-'})")
    print(f"{'PASS' if goals['rate'] else 'FAIL'} [{through}] rate: {rate:.0f} labels/s (target >= {args.target:.0f})")
    print(f"{'PASS' if goals['own_share'] else 'FAIL'} [{through}] own share: read+validate+plan {own_share:.0%} of the import (target <= {args.own_share:.0%})")
    print(f"{'PASS' if goals['progress'] else 'FAIL'} [{through}] progress: {len(write_lines)} line(s) for {expected_lines} batch(es)")
    print(f"{'PASS' if goals['idempotent'] else 'FAIL'} [{through}] idempotent: re-import wrote {again.written}, edited {again.edited}")
    print(f"{'PASS' if goals['none lost or duplicated'] else 'FAIL'} [{through}] stored: {stored:,} current label(s) for {args.rows:,} rows")
    result = {
        "bench": "label_import", "through": through, "rows": args.rows, "batch_size": importing.BATCH_SIZE,
        "writers": writers, "dry_run_s": round(dry_s, 2), "import_s": round(import_s, 2),
        "reimport_s": round(again_s, 2), "labels_per_s": round(rate, 1), "own_share": round(own_share, 3),
        "written": report.written, "stored": stored, "progress_lines": len(write_lines), "target_labels_per_s": args.target,
        "goals": goals, "load_avg": [round(x, 2) for x in os.getloadavg()],
    }
    print(json.dumps(result), flush=True)
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--through", choices=["server", "direct", "both"], default="both",
                        help="an MLflow server in front of the store (as under judgeloop up), the sqlite file, or both")
    parser.add_argument("--workers", type=int, default=2, help="MLflow server workers (judgeloop up's default)")
    parser.add_argument("--target", type=float, default=150.0, help="labels/s the import must reach")
    parser.add_argument("--own-share", type=float, default=0.20, help="largest share of time judgeloop's own work may take")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(REPO / "bench"))
    log(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    for through in (["server", "direct"] if args.through == "both" else [args.through]):
        measure(args, through)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
