"""What anyone who reaches Dagster can set, and the loop does not let them use: a sensor cursor
from the future (Dagster's ``setSensorCursor``) and a run time limit raised at launch."""

import json

import pytest

from judgeloop.sme_labels import waiting
from judgeloop_assets.definitions import defs
from judgeloop.run_names import REALIGN_JOB
from tests.test_sme_labels_sensor import store, tick, write  # noqa: F401  (fixture)

YEAR_2100_MS = 4_102_444_800_000


def test_a_cursor_from_the_future_is_repaired_and_hides_no_label(store, instance):  # noqa: F811
    _, _, trace_ids = store
    write(trace_ids[:8])
    planted = waiting.RealignState(base=waiting.labels.Cursor(YEAR_2100_MS, "a-planted")).encode()
    result = tick(instance, planted)
    # All 8 labels count (5 are needed): the run is requested, nothing is hidden behind 2100.
    assert len(result.run_requests) == 1, result.skip_message
    assert result.run_requests[0].tags["judgeloop/new_labels"] == "8"
    assert waiting.RealignState.decode(result.cursor).consumed.updated_ms < YEAR_2100_MS


def test_a_retry_time_from_the_future_is_brought_back_to_the_longest_back_off(store, instance):  # noqa: F811
    _, _, trace_ids = store
    write(trace_ids[:8])
    planted = json.loads(waiting.RealignState(failures=1, retry_at=YEAR_2100_MS / 1000).encode())
    result = tick(instance, json.dumps(planted))
    state = waiting.RealignState.decode(result.cursor)
    assert state.retry_at <= waiting.MAX_BACKOFF_SECONDS + __import__("time").time() + 5, result.skip_message


@pytest.mark.parametrize("limit", ["999999999", "inf", "0", "-1", "an hour"])
def test_a_launch_cannot_raise_its_run_time_limit(limit, home, instance):
    result = defs.resolve_job_def(REALIGN_JOB).execute_in_process(
        instance=instance, tags={"dagster/max_runtime": limit}, raise_on_error=False
    )
    assert not result.success
    events = "\n".join(f"{record.user_message}{record.dagster_event!r}" for record in instance.all_logs(result.run_id))
    assert "exceeds the deployment's limit of 3600 s (JUDGELOOP_MAX_RUN_SECONDS)" in events
    assert not result.get_asset_materialization_events()
    assert not (home / "mlflow.db").exists()  # refused before anything ran


def test_a_launch_may_shorten_its_run_time_limit(home, instance):
    result = defs.resolve_job_def(REALIGN_JOB).execute_in_process(
        instance=instance, tags={"dagster/max_runtime": "60"}, raise_on_error=False
    )
    events = "\n".join(f"{record.user_message}{record.dagster_event!r}" for record in instance.all_logs(result.run_id))
    assert "exceeds the deployment's limit" not in events
