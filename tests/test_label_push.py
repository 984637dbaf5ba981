"""The label path pushes a re-alignment instead of waiting for the sensor's poll, and the label
sensor takes the pushed run as its own: one run per batch, its labels used once."""

import shutil

import dagster as dg
import pytest

from judgeloop.judging import judges
from judgeloop.sme_labels import labels
from judgeloop.sme_labels.notify import decide_notify
from judgeloop.settings import load_settings
from judgeloop.stack.store import connect
from tests.test_realign_runs import add_run, tick


@pytest.fixture
def store(home, template, monkeypatch):
    shutil.copytree(template[0], home)
    # Six traces: any split of them must leave something to align on.
    monkeypatch.setenv("JUDGELOOP_MIN_ALIGNMENT_LABELS", "1")
    monkeypatch.setenv("JUDGELOOP_MIN_HELDOUT_LABELS", "0")
    settings = load_settings()
    assert connect(settings) == template[1]
    judges.record_lineage(template[1], 1, {"kind": "base"})
    judges.promote(template[1], 1)
    return settings, template[1], template[2]


def write(trace_ids, value=3, reviewer="rater-1"):
    return [labels.log_label(tid, "answer_quality", value, reviewer, "because") for tid in trace_ids]


def finish(instance, run):
    """The pushed run ends SUCCESS, as the run worker would record it."""
    instance.delete_run(run.run_id)
    instance.add_run(run.with_status(dg.DagsterRunStatus.SUCCESS))


@pytest.mark.parametrize("status", [dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.SUCCESS])
def test_the_sensor_takes_a_pushed_run_as_its_own(store, instance, status):
    settings, experiment_id, trace_ids = store
    write(trace_ids[:5])
    decision = decide_notify(settings, experiment_id)
    assert decision.launch and decision.new_labels == 5
    pushed = add_run(instance, status, decision.tags)  # as `labels notify` or a label import launches it

    result = tick(instance, None)
    assert not result.run_requests, "a second run for the labels the pushed run took"
    # Reported as the sensor reports a batch it requests a run for, once.
    assert [event.metadata["new_labels"].value for event in result.asset_events] == [5]
    if status == dg.DagsterRunStatus.STARTED:
        assert f"re-alignment run {pushed.run_id[:8]} is started" in result.skip_message
        finish(instance, pushed)
        result = tick(instance, result.cursor)
        assert not result.run_requests
    assert "0 new SME label(s) waiting" in result.skip_message

    # Labels after the pushed run's count toward the next batch, on their own.
    write(trace_ids[5:6])
    assert "1 new SME label(s) waiting" in tick(instance, result.cursor).skip_message


def test_a_failed_pushed_run_leaves_its_labels_waiting(store, instance):
    settings, experiment_id, trace_ids = store
    write(trace_ids[:5])
    add_run(instance, dg.DagsterRunStatus.FAILURE, decide_notify(settings, experiment_id).tags)
    result = tick(instance, None)
    assert len(result.run_requests) == 1  # the sensor re-aligns them itself


def test_writing_a_whole_batch_pushes_a_run_and_less_does_not(store, monkeypatch):
    from judgeloop_assets.label_push import push_after_writing
    from tests.test_label_import_export import FakeDagster

    settings, experiment_id, trace_ids = store
    said = []
    assert push_after_writing(settings, experiment_id, say=said.append) is None  # no Dagster known: the sensor's job
    write(trace_ids[:4])
    with FakeDagster() as dagster:
        monkeypatch.setenv("JUDGELOOP_DAGSTER_URL", dagster.url)
        assert push_after_writing(load_settings(), experiment_id, say=said.append) is None  # 4 of 5
        assert dagster.launches() == []
        write(trace_ids[4:5])
        assert push_after_writing(load_settings(), experiment_id, say=said.append) == "run-1234"
    (launch,) = dagster.launches()
    tags = {t["key"]: t["value"] for t in launch["variables"]["executionParams"]["executionMetadata"]["tags"]}
    assert tags["judgeloop/trigger"] == "notify" and tags["dagster/run_key"].startswith("pushed-")
    assert said == ["launched realign_judge run run-1234: 5 usable label(s) newer than what judge v1 was aligned on"]


def test_labels_written_after_the_push_wait_for_the_next_run(store, instance):
    """The pushed run was handed its label range; labels that arrive before the sensor looks are
    not counted as taken by it (nor twice): they wait, and the next request hands them on."""
    settings, experiment_id, trace_ids = store
    write(trace_ids[:4])
    pushed = add_run(instance, dg.DagsterRunStatus.STARTED, decide_notify(settings, experiment_id).tags)
    write(trace_ids[4:6])  # after the push, before the sensor's tick

    result = tick(instance, None)
    assert [event.metadata["new_labels"].value for event in result.asset_events] == [4]
    assert "2 new SME label(s) waiting" in result.skip_message
    finish(instance, pushed)
    result = tick(instance, result.cursor)
    assert "2 new SME label(s) waiting" in result.skip_message


def test_a_run_pushed_while_the_sensor_counts_is_taken_not_doubled(store, instance, monkeypatch):
    """The label path's push and the sensor's poll race: a run launched after the tick looked for
    runs but before it requests one is seen, and the next tick takes it as its own."""
    from judgeloop.sme_labels import waiting

    settings, experiment_id, trace_ids = store
    monkeypatch.setenv("JUDGELOOP_LABEL_THRESHOLD", "5")
    write(trace_ids[:5])
    decision = decide_notify(settings, experiment_id)
    counted = waiting.noticed_backdated
    pushed = []

    def push_meanwhile(*args, **kwargs):  # runs after the tick read the labels
        if not pushed:
            pushed.append(add_run(instance, dg.DagsterRunStatus.QUEUED, decision.tags))
        return counted(*args, **kwargs)

    monkeypatch.setattr(waiting, "noticed_backdated", push_meanwhile)
    result = tick(instance, None)
    assert pushed and not result.run_requests, "the sensor requested a second run for the pushed run's labels"
    result = tick(instance, result.cursor)
    assert not result.run_requests
    assert [event.metadata["new_labels"].value for event in result.asset_events] == [5]  # taken as its own
