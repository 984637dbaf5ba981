"""sme_labels_sensor: threshold, cursor, and one run per batch of labels."""

import dagster as dg
import pytest

from judgeloop import feedbackqa, labels, production
from judgeloop.settings import load_settings
from judgeloop.store import connect
from judgeloop_assets.definitions import defs
from judgeloop_assets.resources import JudgeloopConfig
from sensors.sme_labels_sensor import sme_labels_sensor
from tests.conftest import feedbackqa_root


@pytest.fixture
def store(home):
    settings = load_settings()
    experiment_id = connect(settings)
    items = feedbackqa.load_items(feedbackqa_root(), "WHO", limit=20)
    return settings, experiment_id, list(production.seed_traces(experiment_id, items).values())


def tick(instance, cursor):
    context = dg.build_sensor_context(
        instance=instance, cursor=cursor, resources={"judgeloop": JudgeloopConfig()}, definitions=defs
    )
    return sme_labels_sensor.evaluate_tick(context)


def write(trace_ids, value=3, reviewer="rater-1"):
    return [labels.log_label(tid, "answer_quality", value, reviewer, "because") for tid in trace_ids]


def test_threshold_cursor_and_one_run_per_batch(store, instance):
    settings, experiment_id, trace_ids = store
    assert settings.label_threshold == 5

    empty = tick(instance, None)
    assert not empty.run_requests and "0 new SME label(s) waiting" in empty.skip_message
    assert empty.cursor is None

    write(trace_ids[:4])
    waiting = tick(instance, None)
    assert not waiting.run_requests and "4 new SME label(s) waiting, 5 needed" in waiting.skip_message
    assert waiting.cursor is None  # not consumed: they count toward the next batch

    fifth = write(trace_ids[4:5])[0]
    fired = tick(instance, None)
    assert len(fired.run_requests) == 1
    request = fired.run_requests[0]
    assert request.tags["judgeloop/new_labels"] == "5"
    assert [e.asset_key.to_user_string() for e in fired.asset_events] == ["sme_labels"]
    # The cursor moved exactly past the newest label processed.
    cursor = labels.Cursor.decode(fired.cursor)
    assert cursor.assessment_id == fifth

    # Ticking again on the same labels requests nothing: no duplicate run.
    again = tick(instance, fired.cursor)
    assert not again.run_requests and "0 new" in again.skip_message and again.cursor == fired.cursor

    # More than the threshold at once: one run covering all of them.
    newest = write(trace_ids[5:13], value=2, reviewer="rater-2")[-1]
    more = tick(instance, fired.cursor)
    assert len(more.run_requests) == 1 and more.run_requests[0].tags["judgeloop/new_labels"] == "8"
    assert labels.Cursor.decode(more.cursor).assessment_id == newest
    assert more.run_requests[0].run_key != request.run_key


def test_unusable_labels_do_not_count(store, instance, monkeypatch):
    monkeypatch.setenv("JUDGELOOP_REVIEWERS", "rater-1")
    _, _, trace_ids = store
    write(trace_ids[:3])
    write(trace_ids[3:6], reviewer="stranger")
    write(trace_ids[6:8], value=9)
    result = tick(instance, None)
    assert not result.run_requests
    assert "3 new SME label(s) waiting" in result.skip_message and "5 unusable" in result.skip_message


def test_sensor_targets_the_realign_job_with_everything_downstream():
    job = defs.resolve_job_def("realign_judge")
    assert "aligned_judge" in {key.to_user_string() for key in job.asset_layer.executable_asset_keys}
    assert defs.resolve_sensor_def("sme_labels_sensor").default_status == dg.DefaultSensorStatus.RUNNING
