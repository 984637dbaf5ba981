"""Live agreement is off the path from an expert's label to the promoted judge: a re-alignment
runs only what decides the promotion, and live agreement is measured in its own run afterwards,
on the judge that was in use when the labels arrived."""

import threading

import dagster as dg
import pytest

from judgeloop.judging import judges, live_agreement
from judgeloop.tracing import demo
from judgeloop.settings import load_settings
from judgeloop.stack.store import connect
from judgeloop_assets.definitions import defs
from sensors import live_agreement_sensor
from tests.support import materialize, metadata

FOUNDATION = ["base_judge", "tagged_traces", "eval_dataset", "labeling_session", "agent_prompt"]


@pytest.fixture
def labelled_store(home, instance, monkeypatch):
    monkeypatch.setenv("JUDGELOOP_DEMO_ITEMS", "24")
    # The gate's own rules are tested elsewhere; here every re-alignment is let through.
    monkeypatch.setenv("JUDGELOOP_GATE_MARGIN", "2.0")
    # Random trace ids decide the held-out split: any split of 24 traces must do.
    monkeypatch.setenv("JUDGELOOP_MIN_HELDOUT_LABELS", "1")
    monkeypatch.setenv("JUDGELOOP_MIN_SCORED_HELDOUT", "1")
    monkeypatch.setenv("JUDGELOOP_GEPA_MAX_METRIC_CALLS", "1")  # GEPA is not what this is about: not started
    settings = load_settings()
    experiment_id = connect(settings)
    demo.seed(settings, experiment_id)
    monkeypatch.setenv("JUDGELOOP_EXPECTATIONS_PATH", str(demo.write_expectations(settings)))
    assert materialize(instance, FOUNDATION).success
    released = demo.release_labels(load_settings(), experiment_id, 48).written
    return load_settings(), experiment_id, released


def test_the_realign_job_runs_only_what_decides_the_promotion_and_what_follows_it():
    job = defs.resolve_job_def("realign_judge")
    assert {key.to_user_string() for key in job.asset_layer.executable_asset_keys} == {"aligned_judge", "optimized_prompt"}
    assert defs.resolve_job_def("measure_live_agreement").asset_layer.executable_asset_keys == {dg.AssetKey("live_agreement")}
    for status in ("success", "failure"):
        sensor = defs.resolve_sensor_def(f"live_agreement_after_realign_{status}")
        assert sensor.default_status == dg.DefaultSensorStatus.RUNNING


def test_a_hanging_or_failing_live_agreement_neither_delays_nor_blocks_promotion(labelled_store, instance, monkeypatch):
    settings, experiment_id, released = labelled_store
    in_use = judges.promoted_version(experiment_id)
    hang = threading.Event()
    entered = []

    def broken(*args, **kwargs):
        # Broken on purpose: hangs (a provider that never answers), then fails.
        entered.append(threading.current_thread().name)
        hang.wait(30)
        raise RuntimeError("live agreement broken on purpose")

    working = live_agreement.measure
    monkeypatch.setattr(live_agreement, "measure", broken)
    realign = defs.resolve_job_def("realign_judge").execute_in_process(instance=instance, raise_on_error=False)
    assert entered == [], "the re-alignment waited for live agreement"
    assert realign.success, realign.all_events
    promoted = judges.promoted_version(experiment_id)
    assert promoted is not None and promoted > in_use
    assert metadata(realign, "aligned_judge")["promoted"] is True

    # Afterwards, its own run is requested for the finished re-alignment; it fails on its own.
    run = instance.get_run_by_id(realign.run_id)
    context = dg.build_run_status_sensor_context(
        sensor_name="live_agreement_after_realign_success", dagster_instance=instance, dagster_run=run,
        dagster_event=realign.get_run_success_event(),
    )
    request = live_agreement_sensor.request_after(context)
    assert isinstance(request, dg.RunRequest) and request.run_key == f"live-after-{realign.run_id}"
    hang.set()
    measured = defs.resolve_job_def("measure_live_agreement").execute_in_process(instance=instance, raise_on_error=False)
    assert not measured.success and entered
    assert judges.promoted_version(experiment_id) == promoted  # the promotion stands

    # Working again, it measures the judge in use when the labels arrived, not the one aligned on them.
    monkeypatch.setattr(live_agreement, "measure", working)
    measured = materialize(instance, ["live_agreement"])
    assert measured.success
    meta = metadata(measured, "live_agreement")
    assert meta["judge_version"] == in_use and meta["live_labels_batch"] == released
