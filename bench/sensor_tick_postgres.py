"""Benchmark: one tick of the SME-label sensor on a PostgreSQL MLflow store, next to sqlite's.

Same synthetic stores as ``bench/sensor_tick.py`` (its generator, with MLflow's own migrations
creating the schema in PostgreSQL), one fresh database per size, then ``ANALYZE`` (what
autovacuum does after a bulk load). It times the idle tick (cursor at the newest label), the
tick after k new labels, and the full read, and replays each statement ``changed_since`` sent
with ``EXPLAIN (ANALYZE, BUFFERS)``: the buffers it touched are PostgreSQL's measure of work
done (independent of machine noise) and the plan must be an index scan on
``last_updated_timestamp``.

Usage:
    .venv/bin/python bench/sensor_tick_postgres.py                 # 1k, 10k, 100k on a throwaway server
    .venv/bin/python bench/sensor_tick_postgres.py --sizes 1000,10000
    .venv/bin/python bench/sensor_tick_postgres.py --server-url postgresql://user@host:5432/postgres

Without --server-url it starts a throwaway server (tests/postgres.py: initdb into a temp folder,
removed at the end). Prints a table, PASS/FAIL lines (exit status 0 either way), one JSON line.
"""

import argparse
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

import sensor_tick as sqlite_bench  # noqa: E402  (sets MLflow's quiet defaults before importing it)

from judgeloop.mlflow_internals import label_rows  # noqa: E402
from judgeloop.sme_labels.labels import Cursor, changed_since, log_label  # noqa: E402
from judgeloop.mlflow_internals.mlflow_schema import RELIED_ON_INDEX  # noqa: E402

IDLE_GOAL_S = 1.0


def explain(engine, statements) -> dict:
    """Buffers touched and index used by the statements, replayed with EXPLAIN (ANALYZE, BUFFERS)."""
    buffers, indexes, node_types = 0, set(), set()
    with engine.connect() as conn:
        for statement, parameters in statements:
            plan = conn.exec_driver_sql("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + statement, parameters).scalar()
            root = plan[0]["Plan"]
            buffers += root.get("Shared Hit Blocks", 0) + root.get("Shared Read Blocks", 0)
            stack = [root]
            while stack:
                node = stack.pop()
                node_types.add(node["Node Type"])
                if node.get("Relation Name") == "assessments" and node.get("Index Name"):
                    indexes.add(node["Index Name"])
                if node.get("Relation Name") == "assessments" and node["Node Type"] == "Seq Scan":
                    indexes.add("SEQ SCAN")
                stack.extend(node.get("Plans", []))
    return {"queries": len(statements), "buffers": buffers, "indexes": sorted(indexes), "nodes": sorted(node_types)}


class Spy:
    def __init__(self, engine):
        import sqlalchemy as sa

        self.statements = []
        sa.event.listen(engine, "before_cursor_execute", self._capture)

    def _capture(self, conn, cursor, statement, parameters, context, executemany):
        if "FROM assessments" in statement and "EXPLAIN" not in statement:
            self.statements.append((statement, parameters))

    def work_of(self, engine, call) -> dict:
        self.statements = []
        call()
        return explain(engine, list(self.statements))


def timed(fn, reps):
    times, result = [], None
    for _ in range(reps):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), result


def measure(server_url: str, n: int, args, workdir: Path) -> dict:
    import sqlalchemy as sa

    from judgeloop.stack.database_url import for_sqlalchemy
    from tests.postgres import create_database

    db_url = for_sqlalchemy(create_database(server_url))
    os.environ["JUDGELOOP_DATABASE_URL"] = db_url  # generate_store's settings then use this database
    store = sqlite_bench.generate_store(workdir / f"store-{n}", n, args.human_fraction, args.judge_name, args.seed + n)
    store["timings"].update(sqlite_bench.verify_store(store, args.judge_name))
    settings, eid = store["settings"], store["experiment_id"]
    assert settings.resolved_tracking_uri == db_url, settings.resolved_tracking_uri
    admin = sa.create_engine(db_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql("ANALYZE")
        db_bytes = conn.exec_driver_sql("SELECT pg_database_size(current_database())").scalar()
    out = {"generation": {**store["timings"], "n_human": store["n_human"], "rows": store["rows"], "db_bytes": db_bytes}}

    newest = changed_since(settings, eid, Cursor()).cursor
    engine = label_rows.engine_for(db_url)
    spy = Spy(engine)
    t0 = time.perf_counter()
    assert changed_since(settings, eid, newest).labels == []
    out["idle_first_call_s"] = time.perf_counter() - t0
    median, batch = timed(lambda: changed_since(settings, eid, newest), args.reps)
    out["idle"] = {"median_s": median, "rows_read": batch.rows_read, **spy.work_of(admin, lambda: changed_since(settings, eid, newest))}
    median, full = timed(lambda: changed_since(settings, eid, Cursor()), 3)
    assert full.rows_read == store["n_human"], (full.rows_read, store["n_human"])
    out["full_read"] = {"median_s": median, "rows_read": full.rows_read}

    import random

    rng = random.Random(args.seed)
    unlabelled = [t for t in store["trace_ids"] if t not in store["human_trace_ids"]]
    rng.shuffle(unlabelled)
    cursor, out["k"] = newest, {}
    for k in args.ks:
        targets, unlabelled = unlabelled[:k], unlabelled[k:]
        t0 = time.perf_counter()
        for trace_id in targets:
            log_label(trace_id, args.judge_name, rng.randint(1, 4), "sme-new", "benchmark label")
        write_s = time.perf_counter() - t0
        median, batch = timed(lambda: changed_since(settings, eid, cursor), args.reps)
        assert {label.trace_id for label in batch.labels} == set(targets), (k, batch.rows_read)
        out["k"][str(k)] = {"median_s": median, "rows_read": batch.rows_read, "write_per_label_s": write_s / k,
                            **spy.work_of(admin, lambda: changed_since(settings, eid, cursor))}
        cursor = batch.cursor
    admin.dispose()
    engine.dispose()
    label_rows._ENGINES.pop(db_url, None)
    return out


def report(results: dict) -> None:
    sizes = sorted(int(s) for s in results["sizes"])
    by = {n: results["sizes"][str(n)] for n in sizes}
    ks = results["ks"]
    print("Sensor tick cost: judgeloop.sme_labels.labels.changed_since on a PostgreSQL MLflow store (times in seconds)")
    header = ["traces", "idle tick s", "rows", "buffers", "index", "1st call s", "full read s (rows)"]
    header += [f"k={k}: s (rows, buffers)" for k in ks]
    print(" | ".join(header))
    for n in sizes:
        e = by[n]
        row = [f"{n:,}", f"{e['idle']['median_s']:.6f}", str(e["idle"]["rows_read"]), str(e["idle"]["buffers"]),
               ",".join(e["idle"]["indexes"]), f"{e['idle_first_call_s']:.4f}",
               f"{e['full_read']['median_s']:.4f} ({e['full_read']['rows_read']:,})"]
        row += [f"{e['k'][str(k)]['median_s']:.6f} ({e['k'][str(k)]['rows_read']}, {e['k'][str(k)]['buffers']})" for k in ks]
        print(" | ".join(row))
    idle = [by[n]["idle"] for n in sizes]
    print()
    print(("PASS" if all(i["median_s"] < IDLE_GOAL_S for i in idle) else "FAIL") + f": idle tick under {IDLE_GOAL_S:g} s at every size")
    index = RELIED_ON_INDEX[0]
    on_index = all(by[n][part]["indexes"] == [index] for n in sizes for part in ("idle",))
    on_index = on_index and all(by[n]["k"][str(k)]["indexes"] == [index] for n in sizes for k in ks)
    print(("PASS" if on_index else "FAIL") + f": every tick is an index scan on {index}, never a sequential scan")
    b = [i["buffers"] for i in idle]
    print(("PASS" if b[-1] <= b[0] + 10 else "FAIL") + f": idle tick work flat in store size (buffers {b[0]} -> {b[-1]})")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--ks", default="5,50,500")
    parser.add_argument("--reps", type=int, default=15)
    parser.add_argument("--human-fraction", type=float, default=0.05)
    parser.add_argument("--judge-name", default="answer_quality")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--server-url", help="an existing server (a database per size is created on it)")
    args = parser.parse_args(argv)
    args.ks = [int(k) for k in args.ks.split(",") if k.strip()]
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    import mlflow

    results = {"benchmark": "sensor_tick_postgres", "mlflow": mlflow.__version__, "reps": args.reps, "ks": args.ks, "sizes": {}}
    started = time.perf_counter()
    with contextlib.ExitStack() as stack:
        server_url = args.server_url
        if not server_url:
            from tests.postgres import cluster

            server_url = stack.enter_context(cluster())
        results["server"] = "given" if args.server_url else "throwaway (tests/postgres.py, fsync off)"
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="judgeloop-bench-pg-")))
        for n in sizes:
            sqlite_bench.log(f"{n:,} traces: generating in PostgreSQL")
            results["sizes"][str(n)] = measure(server_url, n, args, workdir)
            sqlite_bench.log(f"{n:,} traces: idle tick {results['sizes'][str(n)]['idle']['median_s']:.6f} s")
    results["total_s"] = time.perf_counter() - started
    report(results)
    print(json.dumps(results, default=str, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
