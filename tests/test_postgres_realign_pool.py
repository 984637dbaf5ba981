"""Two re-alignment runs launched at once on a PostgreSQL-backed Dagster instance promote one
after the other: the realign pool admits one promotion step at a time, across processes."""

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from judgeloop.judging import judges
from judgeloop.stack import database_url, servers
from judgeloop.tracing import demo
from judgeloop.settings import load_settings
from judgeloop.stack.store import connect
from judgeloop_assets.metadata import NO_CHANGE
from judgeloop.run_names import REALIGN_POOL
from judgeloop_assets.realign_pool import ensure_realign_pool
from tests.conftest import REPO
from tests.support import materialize

pytestmark = pytest.mark.slow

FOUNDATION = ["base_judge", "tagged_traces", "eval_dataset", "labeling_session"]
# aligned_judge reads the promoted judge, aligns and promotes; optimized_prompt (same pool) is
# left out to keep the test short: the pool admits its steps the same way.
REALIGN = ["aligned_judge"]


@pytest.fixture
def postgres_instance(home, postgres_url, tmp_path, monkeypatch):
    """MLflow's store and Dagster's storage in one PostgreSQL database, configured the way
    `judgeloop up` does it (the dagster.yaml it writes, the URL as a user pastes it)."""
    monkeypatch.setenv("JUDGELOOP_DATABASE_URL", postgres_url)
    settings = load_settings()
    assert settings.database_url.startswith("postgresql+psycopg2://")
    dagster_home = tmp_path / "dagster"
    servers.write_dagster_yaml(dagster_home, settings.database_url)
    database_url.create_dagster_schema(settings.database_url)
    monkeypatch.setenv(servers.DAGSTER_STORAGE_URL_VARIABLE, database_url.dagster_storage_url(settings.database_url))
    monkeypatch.setenv("DAGSTER_HOME", str(dagster_home))
    with dg.DagsterInstance.get() as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        # As `judgeloop up` does before Dagster starts (deploy/README: once per deployment).
        assert ensure_realign_pool(instance)
        yield instance


def _step_window(instance, run_id: str, step: str) -> tuple[float, float]:
    events = instance.all_logs(run_id)
    start = [e.timestamp for e in events if e.is_dagster_event and e.dagster_event.step_key == step
             and e.dagster_event.event_type == dg.DagsterEventType.STEP_START]
    end = [e.timestamp for e in events if e.is_dagster_event and e.dagster_event.step_key == step
           and e.dagster_event.event_type in (dg.DagsterEventType.STEP_SUCCESS, dg.DagsterEventType.STEP_FAILURE)]
    assert start and end, f"{step} did not run in {run_id}"
    return start[0], end[-1]


def test_two_realign_runs_on_postgres_never_interleave(postgres_instance, monkeypatch):
    monkeypatch.setenv("JUDGELOOP_DEMO_ITEMS", "24")
    monkeypatch.setenv("JUDGELOOP_GATE_MARGIN", "2.0")  # about ordering, not the gate: let it pass
    # Few labels keep each alignment short; the minimums let any split of them through.
    # The gate's floor of scored held-out traces is lowered to match (8 labelled traces, about 4 held out).
    for key, value in {"HELDOUT_FRACTION": "0.5", "MIN_ALIGNMENT_LABELS": "1", "MIN_HELDOUT_LABELS": "1",
                       "MIN_SCORED_HELDOUT": "1"}.items():
        monkeypatch.setenv(f"JUDGELOOP_{key}", value)
    settings = load_settings()
    experiment_id = connect(settings)
    demo.seed(settings, experiment_id)
    assert materialize(postgres_instance, FOUNDATION).success
    assert demo.release_labels(settings, experiment_id, 16).written == 16

    # Two separate processes on one instance, as two hosts (or a sensor and a person) would.
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    dagster = Path(sys.executable).with_name("dagster")
    command = [str(dagster), "asset", "materialize", "-m", "judgeloop_assets.definitions", "--select", ",".join(REALIGN)]
    launched = [subprocess.Popen(command, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT) for _ in range(2)]
    outputs = [p.communicate(timeout=1500)[0].decode(errors="replace") for p in launched]
    for process, output in zip(launched, outputs):
        assert process.returncode == 0, output[-3000:]

    runs = postgres_instance.get_runs(filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.SUCCESS]))
    realigns = [run for run in runs if "aligned_judge" in {k.to_user_string() for k in (run.asset_selection or [])}]
    assert len(realigns) == 2
    for step in REALIGN:
        first, second = sorted(_step_window(postgres_instance, run.run_id, step) for run in realigns)
        # One promotion step ends before the other run's starts: never interleaved.
        assert first[1] <= second[0], f"{step} ran in both runs at once: {first} / {second}"
    # The second re-alignment read the judge the first one promoted, not the one before it: v2 is
    # aligned on these very labels, so it changed nothing. Had it read v1 (interleaved), it would
    # have aligned v1 again and registered a v3 of its own.
    materializations = sorted(
        (event.timestamp, run.run_id, event.asset_materialization.metadata)
        for run in realigns for event in postgres_instance.all_logs(run.run_id)
        if event.is_dagster_event and event.dagster_event.event_type == dg.DagsterEventType.ASSET_MATERIALIZATION
        and event.asset_materialization.asset_key == dg.AssetKey("aligned_judge")
    )
    (_, first_run, first_meta), (_, _, second_meta) = materializations
    assert first_meta["previous_version"].value == 1 and first_meta["promoted_version"].value == 2
    assert "judge v2 is already aligned on these labels" in second_meta[NO_CHANGE].value, second_meta
    assert second_meta["result_from_run"].value == first_run
    assert judges.promoted_version(experiment_id) == 2
    assert judges.latest_version(experiment_id, settings.judge_name) == 2
    assert REALIGN_POOL in postgres_instance.event_log_storage.get_concurrency_keys()
