"""sme_labels_sensor: threshold, cursor, and one run per batch of labels."""

import time

import dagster as dg
import mlflow
import pytest
from mlflow.entities import AssessmentSource

from judgeloop.sme_labels import labels, waiting
from judgeloop.tracing import feedbackqa, production
from judgeloop.settings import load_settings
from judgeloop.stack.store import connect
from judgeloop_assets.definitions import defs
from judgeloop_assets.resources import JudgeloopConfig
from tests.conftest import feedbackqa_root
from tests.support import restamp


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
    return defs.resolve_sensor_def("sme_labels_sensor").evaluate_tick(context)


def finish(instance, result, status=dg.DagsterRunStatus.SUCCESS):
    """Record the runs ``result`` requested as the daemon would have launched them, ended in ``status``."""
    import uuid

    for request in result.run_requests:
        tags = {**request.tags, "dagster/run_key": request.run_key}
        instance.add_run(dg.DagsterRun(job_name="realign_judge", run_id=str(uuid.uuid4()), tags=tags, status=status))


def write(trace_ids, value=3, reviewer="rater-1"):
    return [labels.log_label(tid, "answer_quality", value, reviewer, "because") for tid in trace_ids]


def _positions(state: waiting.RealignState):
    """What a state says about used labels (the back-dated check's bookkeeping aside)."""
    return state.base, state.inflight, state.failures, state.backdated


def test_threshold_cursor_and_one_run_per_batch(store, instance):
    settings, experiment_id, trace_ids = store
    assert settings.label_threshold == 5

    empty = tick(instance, None)
    assert not empty.run_requests and "0 new SME label(s) waiting" in empty.skip_message
    assert _positions(waiting.RealignState.decode(empty.cursor)) == _positions(waiting.RealignState())

    write(trace_ids[:4])
    below = tick(instance, None)
    assert not below.run_requests and "4 new SME label(s) waiting, 5 needed" in below.skip_message
    assert _positions(waiting.RealignState.decode(below.cursor)) == _positions(waiting.RealignState())  # not consumed: they count toward the next batch

    fifth = write(trace_ids[4:5])[0]
    fired = tick(instance, None)
    assert len(fired.run_requests) == 1
    request = fired.run_requests[0]
    assert request.tags["judgeloop/new_labels"] == "5"
    assert [e.asset_key.to_user_string() for e in fired.asset_events] == ["sme_labels"]
    # The cursor moved exactly past the newest label processed.
    state = waiting.RealignState.decode(fired.cursor)
    assert state.inflight.cursor.assessment_id == fifth and state.inflight.label_count == 5

    # Ticking again on the same labels requests nothing: no duplicate run.
    finish(instance, fired)
    again = tick(instance, fired.cursor)
    assert not again.run_requests and "0 new" in again.skip_message
    # The finished run's labels are used: the position moved to where the run's labels ended.
    assert _positions(waiting.RealignState.decode(again.cursor)) == _positions(waiting.RealignState(base=state.inflight.cursor))
    assert tick(instance, again.cursor).cursor == again.cursor
    fired = again

    # More than the threshold at once: one run covering all of them.
    newest = write(trace_ids[5:13], value=2, reviewer="rater-2")[-1]
    more = tick(instance, fired.cursor)
    assert len(more.run_requests) == 1 and more.run_requests[0].tags["judgeloop/new_labels"] == "8"
    assert waiting.RealignState.decode(more.cursor).inflight.cursor.assessment_id == newest
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
    # Exactly the aligned judge and what depends on it: the prompt re-optimized with the new judge.
    assert {key.to_user_string() for key in job.asset_layer.executable_asset_keys} == {"aligned_judge", "optimized_prompt"}
    assert defs.resolve_sensor_def("sme_labels_sensor").default_status == dg.DefaultSensorStatus.RUNNING


def test_an_override_by_another_reviewer_counts_once(store, instance):
    _, _, trace_ids = store
    first, *_ = write(trace_ids[:4])
    mlflow.override_feedback(
        trace_id=trace_ids[0], assessment_id=first, value=1, rationale="the lead's correction",
        source=AssessmentSource(source_type="HUMAN", source_id="rater-2"),
    )
    # Three untouched labels and the override: the overridden label is history, not a fifth label.
    result = tick(instance, None)
    assert not result.run_requests and "4 new SME label(s) waiting, 5 needed" in result.skip_message


def test_deleting_an_override_brings_the_old_label_back(store, instance, monkeypatch):
    monkeypatch.setenv("JUDGELOOP_LABEL_THRESHOLD", "1")
    _, _, trace_ids = store
    original = write(trace_ids[:1])[0]
    first = tick(instance, None)
    finish(instance, first)
    cursor = tick(instance, first.cursor).cursor  # settles the finished run
    override = mlflow.override_feedback(
        trace_id=trace_ids[0], assessment_id=original, value=1, rationale="second thoughts",
        source=AssessmentSource(source_type="HUMAN", source_id="rater-2"),
    )
    edited = tick(instance, cursor)
    assert edited.run_requests and edited.run_requests[0].tags["judgeloop/new_labels"] == "1"
    finish(instance, edited)
    # MLflow marks the original valid again without touching its update time.
    mlflow.delete_assessment(trace_id=trace_ids[0], assessment_id=override.assessment_id)
    restored = tick(instance, edited.cursor)
    assert restored.run_requests, restored.skip_message
    assert restored.run_requests[0].tags["judgeloop/new_labels"] == "1"
    finish(instance, restored)
    assert "0 new" in tick(instance, restored.cursor).skip_message


def test_a_label_stamped_in_the_future_does_not_hide_later_labels(store, instance, monkeypatch):
    monkeypatch.setenv("JUDGELOOP_LABEL_THRESHOLD", "1")
    settings, _, trace_ids = store
    ahead = write(trace_ids[:1])[0]
    restamp(settings, ahead, int(time.time() * 1000) + 24 * 3600 * 1000)  # a reviewer's clock a day fast
    first = tick(instance, None)
    assert first.run_requests and first.run_requests[0].tags["judgeloop/new_labels"] == "1"
    assert waiting.RealignState.decode(first.cursor).consumed.updated_ms <= int(time.time() * 1000)
    finish(instance, first)
    write(trace_ids[1:4])
    later = tick(instance, first.cursor)
    assert later.run_requests and later.run_requests[0].tags["judgeloop/new_labels"] == "3"  # counted, and only once
    finish(instance, later)
    assert "0 new" in tick(instance, later.cursor).skip_message


def test_a_label_stamped_in_the_past_is_counted_as_waiting(store, instance, monkeypatch):
    """A label written now but stamped a day ago (a reviewer's slow clock, an import of old labels)
    lies before the incremental read's look-back window: the sensor's count of older labels
    notices it, it waits, the next run's label range takes it, and it is counted once."""
    monkeypatch.setenv("JUDGELOOP_LABEL_THRESHOLD", "1")
    monkeypatch.setattr(waiting, "BACKDATED_CHECK_SECONDS", 0)  # count on every tick, not once a minute
    settings, _, trace_ids = store
    write(trace_ids[:1])
    first = tick(instance, None)
    assert first.run_requests
    finish(instance, first)
    settled = tick(instance, first.cursor)  # the run succeeded: the boundary moves past its labels
    assert "0 new SME label(s) waiting" in settled.skip_message

    behind = write(trace_ids[1:2])[0]
    restamp(settings, behind, int(time.time() * 1000) - 24 * 3600 * 1000)
    noticed = tick(instance, settled.cursor)
    assert noticed.run_requests, noticed.skip_message
    request = noticed.run_requests[0]
    assert request.tags["judgeloop/new_labels"] == "1"
    taken, _ = labels.current_labels(settings, store[1], up_to=labels.decode_key(request.tags[labels.LABELS_UP_TO_TAG]))
    assert behind in {label.assessment_id for label in taken}, "the run's range leaves the back-dated label out"
    finish(instance, noticed)
    assert "0 new SME label(s) waiting" in tick(instance, noticed.cursor).skip_message  # counted once
