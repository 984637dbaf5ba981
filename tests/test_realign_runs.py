"""The runs the label sensor makes: never while one is in progress, labels of failed runs come
back (bounded back-off), and an interrupted re-alignment is finished."""

import shutil
import uuid
import time

import dagster as dg
import pytest

from judgeloop import workspace
from judgeloop.judging import judges, unfinished
from judgeloop.prompt_optimization import optimization, prompts
from judgeloop.sme_labels import labels, waiting
from judgeloop.settings import load_settings
from judgeloop.stack.store import connect
from judgeloop_assets.definitions import defs
from judgeloop_assets.resources import JudgeloopConfig
from sensors import sme_labels_sensor as sensor_module



@pytest.fixture
def store(home, template):
    shutil.copytree(template[0], home)
    settings = load_settings()
    assert connect(settings) == template[1]
    return settings, template[1], template[2]


def tick(instance, cursor):
    context = dg.build_sensor_context(
        instance=instance, cursor=cursor, resources={"judgeloop": JudgeloopConfig()}, definitions=defs
    )
    return defs.resolve_sensor_def("sme_labels_sensor").evaluate_tick(context)


def _origin():
    # Dagster stores where a queued run's code lives (the run queue launches it from there).
    from dagster._core.remote_origin import InProcessCodeLocationOrigin, RemoteJobOrigin, RemoteRepositoryOrigin
    from dagster._core.types.loadable_target_origin import LoadableTargetOrigin

    location = InProcessCodeLocationOrigin(LoadableTargetOrigin(module_name="judgeloop_assets.definitions"), location_name="judgeloop")
    return RemoteJobOrigin(RemoteRepositoryOrigin(location, "__repository__"), "realign_judge")


def add_run(instance, status, tags=None, run_key=None):
    """A realign_judge run in ``status``, stored in the instance as the daemon stores the runs it launches."""
    tags = {**(tags or {}), **({"dagster/run_key": run_key} if run_key else {})}
    run = dg.DagsterRun(
        job_name="realign_judge", run_id=str(uuid.uuid4()), tags=tags, status=status, remote_job_origin=_origin()
    )
    return instance.add_run(run)


def finish(instance, result, status):
    for request in result.run_requests:
        add_run(instance, status, request.tags, request.run_key)


def write(trace_ids, value=3, reviewer="rater-1"):
    return [labels.log_label(tid, "answer_quality", value, reviewer, "because") for tid in trace_ids]


@pytest.mark.parametrize("status", [dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.STARTED])
def test_no_request_while_a_realignment_is_queued_or_running(store, instance, status):
    _, _, trace_ids = store
    write(trace_ids[:5])
    busy = add_run(instance, status)  # launched by hand, `labels notify` or an earlier tick
    held = tick(instance, None)
    assert not held.run_requests
    assert f"re-alignment run {busy.run_id[:8]} is {status.value.lower()}" in held.skip_message
    assert "5 new SME label(s) waiting, 5 needed" in held.skip_message  # counted, not consumed
    assert waiting.RealignState.decode(held.cursor).consumed == labels.Cursor()
    # One more label while it runs, then the run ends: one request covering all six.
    write(trace_ids[5:6], reviewer="rater-2")
    instance.delete_run(busy.run_id)
    add_run(instance, dg.DagsterRunStatus.SUCCESS)
    fired = tick(instance, held.cursor)
    assert len(fired.run_requests) == 1 and fired.run_requests[0].tags["judgeloop/new_labels"] == "6"


def test_labels_of_a_failed_run_trigger_again_after_a_bounded_back_off(store, instance, monkeypatch):
    settings, _, trace_ids = store
    interval = settings.sensor_interval_seconds
    # The sensor drops a position ahead of its clock (a cursor from the future), so the test clock
    # starts at the real time the labels are stamped with and moves forward from there.
    clock = {"now": time.time()}
    monkeypatch.setattr(sensor_module, "_now", lambda: clock["now"])
    write(trace_ids[:5])
    first = tick(instance, None)
    assert first.run_requests
    finish(instance, first, dg.DagsterRunStatus.FAILURE)  # the gate failed, a crash, Ctrl-C...

    write(trace_ids[5:6], reviewer="rater-2")
    backing_off = tick(instance, first.cursor)
    assert not backing_off.run_requests
    # Its labels wait again, with the one written since: the same number status prints.
    assert "6 new SME label(s) waiting" in backing_off.skip_message and "failed, retrying after" in backing_off.skip_message
    state = waiting.RealignState.decode(backing_off.cursor)
    assert state.failures == 1 and state.retry_at == clock["now"] + interval and state.inflight is None

    clock["now"] += interval
    retry = tick(instance, backing_off.cursor)
    assert len(retry.run_requests) == 1 and retry.run_requests[0].tags["judgeloop/new_labels"] == "6"
    assert retry.run_requests[0].run_key.endswith("-retry1") and retry.run_requests[0].run_key != first.run_requests[0].run_key

    # A deterministic failure: each retry waits twice as long, never longer than the cap.
    finish(instance, retry, dg.DagsterRunStatus.FAILURE)
    again = waiting.RealignState.decode(tick(instance, retry.cursor).cursor)
    assert again.failures == 2 and again.retry_at == clock["now"] + 2 * interval
    assert waiting.backoff_seconds(30, interval) == waiting.MAX_BACKOFF_SECONDS

    # A success uses the labels: nothing waits, and failures are forgotten.
    clock["now"] = again.retry_at
    last = tick(instance, waiting.RealignState(base=again.base, failures=2, retry_at=again.retry_at).encode())
    assert last.run_requests
    finish(instance, last, dg.DagsterRunStatus.SUCCESS)
    settled = tick(instance, last.cursor)
    assert "0 new SME label(s) waiting" in settled.skip_message
    assert waiting.RealignState.decode(settled.cursor).failures == 0


def test_a_cursor_from_before_the_state_still_reads(store):
    old = labels.Cursor(123, "a-1").encode()
    assert waiting.RealignState.decode(old) == waiting.RealignState(base=labels.Cursor(123, "a-1"))


@pytest.fixture
def promoted_aligned_judge(store):
    """Judge v2 promoted after an alignment, the prompt registered, the dataset known: the state a
    re-alignment interrupted between promotion and prompt optimization leaves behind."""
    settings, experiment_id, trace_ids = store
    prompts.ensure_registered(settings)
    dataset = workspace.for_settings(settings).dataset(experiment_id)
    # Records with expectations: without them optimization waits and nothing is unfinished.
    dataset.merge_records(
        [{"inputs": {"question": f"question {i}?"}, "expectations": {"expected_response": f"answer {i}"}} for i in range(12)]
    )
    dataset_id = dataset.dataset_id
    judges.record_lineage(experiment_id, 2, {"kind": "aligned", "previous_version": 1})
    judges.promote(experiment_id, 2)
    return settings, experiment_id, dataset_id


def test_the_prompt_never_optimized_for_the_promoted_judge_is_unfinished(promoted_aligned_judge):
    settings, experiment_id, dataset_id = promoted_aligned_judge
    assert unfinished.unfinished_optimization(settings, experiment_id)[0] == 2

    # A candidate identical to production (what an outage during GEPA yields) is no result.
    import mlflow

    production = prompts.production(settings)
    same = mlflow.genai.register_prompt(name=settings.prompt_name, template=production.template)
    tags = {optimization.JUDGE_TAG: 2, optimization.DATASET_TAG: dataset_id}
    prompts.tag_version(settings.prompt_name, same.version, tags)
    assert unfinished.unfinished_optimization(settings, experiment_id) is not None

    # A real candidate (promoted or not) finishes it.
    other = mlflow.genai.register_prompt(name=settings.prompt_name, template="Be brief. " + production.template)
    prompts.tag_version(settings.prompt_name, other.version, tags)
    assert unfinished.unfinished_optimization(settings, experiment_id) is None


def test_an_optimization_that_kept_the_prompt_unchanged_is_finished(promoted_aligned_judge, instance):
    # GEPA ran with judge v2 and kept production as it was: optimized_prompt would skip a rerun,
    # so the sensor must not request one either (it would skip, up to three times).
    settings, experiment_id, dataset_id = promoted_aligned_judge
    production = prompts.production(settings)
    prompts.tag_version(settings.prompt_name, production.version, {optimization.KEPT_TAG: f"2:{dataset_id}"})
    assert unfinished.unfinished_optimization(settings, experiment_id) is None
    assert not tick(instance, None).run_requests
    reason = optimization.already_optimized(settings, 2, dataset_id, prompts.production(settings))
    assert reason == f"GEPA already kept production prompt v{production.version} unchanged with judge v2"
    # Kept with another judge: the promoted one still has no optimization of its own.
    prompts.tag_version(settings.prompt_name, production.version, {optimization.KEPT_TAG: f"1:{dataset_id}"})
    assert unfinished.unfinished_optimization(settings, experiment_id)[0] == 2


def test_the_base_judge_needs_no_optimization(store):
    settings, experiment_id, _ = store
    prompts.ensure_registered(settings)
    judges.record_lineage(experiment_id, 1, {"kind": "base"})
    judges.promote(experiment_id, 1)
    assert unfinished.unfinished_optimization(settings, experiment_id) is None


def test_the_sensor_finishes_an_interrupted_realignment_a_bounded_number_of_times(promoted_aligned_judge, instance, monkeypatch):
    clock = {"now": 2_000_000.0}
    monkeypatch.setattr(sensor_module, "_now", lambda: clock["now"])
    result = tick(instance, None)
    assert len(result.run_requests) == 1, result.skip_message
    request = result.run_requests[0]
    assert request.asset_selection == [dg.AssetKey("optimized_prompt")]
    for attempt in range(1, sensor_module.MAX_FINISH_ATTEMPTS + 1):
        record = add_run(instance, dg.DagsterRunStatus.FAILURE, request.tags, request.run_key)
        clock["now"] = instance.get_run_record_by_id(record.run_id).create_timestamp.timestamp()
        held = tick(instance, result.cursor)
        assert not held.run_requests
        if attempt == sensor_module.MAX_FINISH_ATTEMPTS:
            assert "gave up after 3 failed tries" in held.skip_message
            break
        assert "retrying after" in held.skip_message
        clock["now"] += waiting.backoff_seconds(attempt, load_settings().sensor_interval_seconds)
        result = tick(instance, result.cursor)
        assert len(result.run_requests) == 1
        request = result.run_requests[0]
        assert request.run_key.endswith(f"-try{attempt}")


def test_runs_a_stopped_judgeloop_up_left_started_are_failed_before_dagster_starts(tmp_path):
    from judgeloop_assets.interrupted_runs import fail_interrupted_runs

    home = tmp_path / "dagster"
    home.mkdir()
    with dg.DagsterInstance.from_config(str(home)) as instance:
        started = add_run(instance, dg.DagsterRunStatus.STARTED)
        queued = add_run(instance, dg.DagsterRunStatus.QUEUED)
    assert fail_interrupted_runs(home) == [started.run_id]
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert instance.get_run_by_id(started.run_id).status == dg.DagsterRunStatus.FAILURE
        assert instance.get_run_by_id(queued.run_id).status == dg.DagsterRunStatus.QUEUED  # the queue launches it
    assert fail_interrupted_runs(tmp_path / "missing") == []
