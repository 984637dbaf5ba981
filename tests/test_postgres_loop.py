"""The whole loop on PostgreSQL: `judgeloop up` with a pasted postgresql:// URL runs MLflow (3
workers) and Dagster's storage on that database; SME labels written concurrently from several
threads through the server's workers are each counted once by the sensor, which re-aligns once
per threshold, promotes and optimizes the prompt; the stack restarted mid-way loses nothing."""

import threading
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from judgeloop.sme_labels import labels
from judgeloop.stack import database_url
from judgeloop.tracing import demo, feedbackqa
from tests.conftest import feedbackqa_root
from tests.e2e_support import materializations, processes_mentioning, runs, sensor_ticks, start_up, wait_until

pytestmark = pytest.mark.slow

TERMINAL = {"SUCCESS", "FAILURE", "CANCELED"}
THRESHOLD = 20
BATCH = 24  # between one and two thresholds: one run per batch, whatever a tick's timing
WRITER_THREADS = 4
SETTINGS = {
    "JUDGELOOP_LABEL_THRESHOLD": str(THRESHOLD),
    "JUDGELOOP_HELDOUT_FRACTION": "0.5",
    "JUDGELOOP_MIN_ALIGNMENT_LABELS": "1",
    "JUDGELOOP_MIN_HELDOUT_LABELS": "1",
    "JUDGELOOP_MIN_SCORED_HELDOUT": "1",  # a split with 1-2 held-out traces must not fail the gate either
    "JUDGELOOP_GATE_MARGIN": "2.0",  # the gate has its own tests; here every re-alignment promotes
    "JUDGELOOP_GEPA_MAX_METRIC_CALLS": "20",
}


def _write_concurrently(up, pg_url: str, count: int) -> list[str]:
    """``count`` pending expert ratings as HUMAN labels, from several threads at once through the
    MLflow server (its workers commit them in whatever order they finish)."""
    import mlflow

    from judgeloop.settings import load_settings

    settings = load_settings(home=up.home, tracking_uri=up.mlflow_url, database_url=pg_url, feedbackqa_path=feedbackqa_root())
    mlflow.set_tracking_uri(up.mlflow_url)
    pending = demo.pending_labels(settings, up.experiment_id())[:count]
    assert len(pending) == count
    written, errors = [], []

    def write(chunk):
        try:
            for trace_id, rating in chunk:
                written.append(labels.log_label(trace_id, settings.judge_name, feedbackqa.to_scale(rating.rating, settings),
                                                reviewer=rating.reviewer, comment=rating.reason))
        except Exception as exc:  # reported below, with the others
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(pending[i::WRITER_THREADS],)) for i in range(WRITER_THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    return written


def _mlflow_server_args(port: int) -> list[str]:
    for entry in Path("/proc").iterdir():
        try:
            args = [a.decode() for a in (entry / "cmdline").read_bytes().split(b"\0") if a]
        except OSError:
            continue
        if "mlflow" in args and "server" in args and str(port) in args:
            return args
    raise AssertionError(f"no mlflow server on port {port}")


def _realign_runs(up) -> list[dict]:
    found = runs(up.dagster_url, "realign_judge")
    assert all(run["status"] not in {"FAILURE", "CANCELED"} for run in found), (found, up.logs())
    return found


def _wait_for_runs(up, count: int) -> list[dict]:
    def done():
        found = _realign_runs(up)
        assert len(found) <= count, f"more realign runs than label batches: {found}"
        return found if len(found) == count and all(run["status"] in TERMINAL for run in found) else None

    return wait_until(done, 420, interval=2, message=f"{count} realign_judge run(s) finished", on_timeout=up.logs)


def _tick_after(up, since: float) -> dict:
    """The first finished sensor tick that started after ``since`` (the newest tick may still be
    running: its status is STARTED until it decides)."""
    def finished():
        ticks = sensor_ticks(up.dagster_url)["sensorState"]["ticks"]
        done = [t for t in ticks if t["status"] != "STARTED" and t["timestamp"] > since]
        return done[-1] if done else None

    return wait_until(finished, 60, interval=2, message="a sensor tick after the runs", on_timeout=up.logs)


def _reported(up) -> list[int]:
    return [m["metadata"]["new_labels"] for m in materializations(up.dagster_url, "sme_labels") if not m["runId"]]


def test_loop_on_postgres_with_concurrent_labels_and_a_restart(postgres_url, tmp_path):
    home = tmp_path / "state"
    env = {**SETTINGS, "JUDGELOOP_DATABASE_URL": postgres_url}  # as pasted: postgresql://, no driver
    engine = sa.create_engine(database_url.for_sqlalchemy(postgres_url))

    # The test writes every label itself: the demo's own timed releases (which push re-alignments
    # of their own) are off, so each run and each reported count comes from these writes.
    up = start_up(home, tmp_path / "up-1", "--demo", "--release-every", "0", "--mlflow-workers", "3", env_extra=env)
    try:
        up.wait_ready(900)
        # MLflow's server runs 3 workers on the database; nothing went to sqlite files.
        server = _mlflow_server_args(up.mlflow_port)
        assert server[server.index("--workers") + 1] == "3", server
        assert server[server.index("--backend-store-uri") + 1].startswith("postgresql+psycopg2://"), server
        assert not (home / "mlflow.db").exists() and not list((home / "dagster").glob("**/*.db"))

        foundation = wait_until(lambda: [r for r in runs(up.dagster_url, "judgeloop_foundation") if r["status"] in TERMINAL],
                                420, interval=2, message="foundation run finished", on_timeout=up.logs)
        assert foundation[0]["status"] == "SUCCESS", up.logs()
        with engine.connect() as conn:  # Dagster's runs are in its schema of the same database
            assert conn.execute(sa.text("SELECT count(*) FROM dagster.runs")).scalar() >= 1
            assert conn.execute(sa.text("SELECT count(*) FROM public.trace_info")).scalar() >= BATCH

        first_ids = _write_concurrently(up, postgres_url, BATCH)
        first = _wait_for_runs(up, 1)[0]
        assert first["status"] == "SUCCESS", up.logs()
        judge = [m["metadata"] for m in materializations(up.dagster_url, "aligned_judge") if m["runId"] == first["runId"]]
        assert judge and judge[0]["promoted"] is True and judge[0]["promoted_version"] == 2
        assert [m for m in materializations(up.dagster_url, "optimized_prompt") if m["runId"] == first["runId"]]
    finally:
        up.shutdown(grace=120)
    assert processes_mentioning([str(home)]) == []

    # The same state folder and database, a new MLflow server and Dagster: nothing was lost.
    up = start_up(home, tmp_path / "up-2", "--demo", "--release-every", "0", "--mlflow-workers", "3", "--no-launch", env_extra=env)
    try:
        up.wait_ready(900)
        assert len(_realign_runs(up)) == 1  # Dagster's run history survived in PostgreSQL
        second_ids = _write_concurrently(up, postgres_url, BATCH)
        found = _wait_for_runs(up, 2)
        assert all(run["status"] == "SUCCESS" for run in found), up.logs()

        # Every label written (48, by 4 threads through 3 workers) counted exactly once: the
        # reported batches plus what the sensor says is still waiting add up to all of them.
        reported = _reported(up)
        assert len(reported) == 2 and all(count >= THRESHOLD for count in reported), reported
        skip = _tick_after(up, time.time())
        waiting = 2 * BATCH - sum(reported)
        assert skip["status"] == "SKIPPED" and skip["skipReason"].startswith(f"{waiting} new SME label(s) waiting"), skip
        with engine.connect() as conn:
            stored = set(conn.execute(sa.text("SELECT assessment_id FROM assessments WHERE source_type = 'HUMAN'")).scalars())
        assert set(first_ids) | set(second_ids) <= stored and len(set(first_ids) | set(second_ids)) == 2 * BATCH
        judge = materializations(up.dagster_url, "aligned_judge")[0]["metadata"]
        assert judge["previous_version"] == 2 and judge["promoted_version"] == 3
    finally:
        up.shutdown(grace=120)
        engine.dispose()
