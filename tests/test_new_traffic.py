"""Traffic keeps flowing in: traces logged after the foundation are scored and tagged (only
those), join the dataset and the review queue; an interrupted run leaves no judge feedback that
no version owns, and a re-run pays only for what is missing."""

import dagster as dg
import pytest

from judgeloop.tracing import traces
from judgeloop.stand_in_models.fake_llm import CALLS, reset_calls
from judgeloop_assets.definitions import defs
from judgeloop_assets.resources import JudgeloopConfig
from tests import autologged
from tests.support import materialize, metadata

FOUNDATION = ["base_judge", "tagged_traces", "eval_dataset", "labeling_session", "agent_prompt"]
TRAFFIC = ["tagged_traces", "eval_dataset", "labeling_session"]


def tick(instance, cursor=None):
    context = dg.build_sensor_context(
        instance=instance, cursor=cursor, resources={"judgeloop": JudgeloopConfig()}, definitions=defs
    )
    return defs.resolve_sensor_def("new_traffic_sensor").evaluate_tick(context)


def test_an_interrupted_tagging_run_leaves_nothing_orphaned_and_a_rerun_pays_only_for_the_rest(
    template_store, instance, monkeypatch
):
    settings, experiment_id, trace_ids = template_store
    assert materialize(instance, ["base_judge"]).success
    tag = traces._tag
    calls = {"n": 0}

    def stopped_after_two(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] > 2:
            raise KeyboardInterrupt("stopped")  # Ctrl-C, a killed run worker, MLflow gone
        return tag(*args, **kwargs)

    monkeypatch.setattr(traces, "_tag", stopped_after_two)
    with pytest.raises(KeyboardInterrupt):
        materialize(instance, ["tagged_traces"], raise_on_error=True)
    assert len(traces.tagged_trace_ids(experiment_id)) == 2
    assert traces.orphan_scores(experiment_id, settings.judge_name) == len(trace_ids) - 2

    monkeypatch.setattr(traces, "_tag", tag)
    reset_calls()
    rerun = materialize(instance, ["tagged_traces"])
    assert rerun.success
    assert CALLS["judge"] == 0  # every score the stopped run paid for is kept
    assert metadata(rerun, "tagged_traces")["traces_tagged_total"] == len(trace_ids)
    assert traces.orphan_scores(experiment_id, settings.judge_name) == 0


def test_failed_judge_feedback_is_not_kept(template_store, instance, monkeypatch):
    settings, experiment_id, trace_ids = template_store
    monkeypatch.setenv("JUDGELOOP_JUDGE_MODEL", "fake:/garbage")  # answers nothing usable
    assert materialize(instance, ["base_judge"]).success
    failed = materialize(instance, ["tagged_traces"])
    assert not failed.success  # no score at all: the provider is named
    assert traces.orphan_scores(experiment_id, settings.judge_name) == 0


def test_traffic_after_the_foundation_is_scored_incrementally_by_the_sensor(template_store, instance):
    settings, experiment_id, trace_ids = template_store
    assert "foundation job has not run yet" in tick(instance).skip_message
    assert materialize(instance, FOUNDATION).success
    quiet = tick(instance)
    assert not quiet.run_requests and "no new production traces" in quiet.skip_message

    for question, answer, request_id in autologged.support_exchanges(3):
        autologged.langchain_chain(question, answer, request_id)
    found = tick(instance, quiet.cursor)
    assert len(found.run_requests) == 1 and found.run_requests[0].tags["judgeloop/new_traces"] == "3"
    reset_calls()
    run = materialize(instance, TRAFFIC)  # what the requested score_new_traffic run materializes
    assert run.success
    assert CALLS["judge"] == 3  # only the new traces are scored
    assert metadata(run, "tagged_traces")["traces_tagged"] == 3
    assert metadata(run, "eval_dataset")["records_added"] == 3
    assert metadata(run, "labeling_session")["items_added"] == 3
    assert len(traces.tagged_trace_ids(experiment_id)) == len(trace_ids) + 3
    after = tick(instance, found.cursor)
    assert not after.run_requests and "no new production traces" in after.skip_message


def test_no_request_while_a_traffic_run_is_in_progress(template_store, instance):
    assert materialize(instance, FOUNDATION).success
    autologged.langchain_chain("Is there an outage in my street?", "No outage is known.", "req-x")
    instance.add_run(dg.DagsterRun(job_name="score_new_traffic", run_id="a" * 32, status=dg.DagsterRunStatus.STARTED))
    held = tick(instance)
    assert not held.run_requests and "score_new_traffic) is in progress" in held.skip_message
