"""Optimization waits for expectations: a re-alignment on traffic without reference answers
succeeds, promotes the judge, skips the prompt with one sentence, and nothing retries it."""

import time

from judgeloop.judging import judges, unfinished
from judgeloop.prompt_optimization import prompts
from judgeloop.tracing import demo
from judgeloop.stand_in_models.fake_llm import CALLS, reset_calls
from judgeloop.settings import load_settings
from judgeloop.stack.store import connect
from sensors import sme_labels_sensor as sensor_module
from tests.support import accept_any_split, materialize, metadata

FOUNDATION = ["base_judge", "tagged_traces", "eval_dataset", "labeling_session", "agent_prompt"]
REALIGN = ["live_agreement", "aligned_judge", "optimized_prompt"]


def test_a_realignment_without_expectations_succeeds_and_the_prompt_waits(home, instance, monkeypatch):
    monkeypatch.setenv("JUDGELOOP_DEMO_ITEMS", "24")
    monkeypatch.setenv("JUDGELOOP_GATE_MARGIN", "2.0")  # about waiting, not the gate
    accept_any_split(monkeypatch)
    settings = load_settings()
    experiment_id = connect(settings)
    demo.seed(settings, experiment_id)
    assert materialize(instance, FOUNDATION).success
    demo.release_labels(settings, experiment_id, 48)
    reset_calls()

    realigned = materialize(instance, REALIGN)
    assert realigned.success  # the run counts as a success for the labels it used
    assert judges.promoted_version(experiment_id) == 2
    skipped = metadata(realigned, "optimized_prompt")["skipped"]
    assert skipped.startswith("not optimized, waiting for expectations: none of the ")
    assert "JUDGELOOP_EXPECTATIONS_PATH" in skipped and "judgeloop traces import" in skipped
    assert CALLS["reflection"] == 0 and prompts.latest(settings.prompt_name).version == 1
    check = realigned.get_asset_check_evaluations()
    assert all(c.passed for c in check if c.check_name == "prompt_beats_production")

    # The label sensor requests nothing more for it: no "finish" runs that would only skip again.
    assert unfinished.unfinished_optimization(settings, experiment_id) is None
    request, why = sensor_module._finish_request(settings, experiment_id, instance, time.time(), 5.0)
    assert request is None and why is None

    # Expectations arrive: now the promoted judge's prompt is unfinished work the sensor picks up.
    monkeypatch.setenv("JUDGELOOP_EXPECTATIONS_PATH", str(demo.write_expectations(settings)))
    assert materialize(instance, ["eval_dataset"]).success
    settings = load_settings()
    assert unfinished.unfinished_optimization(settings, experiment_id)[0] == 2
    request, _ = sensor_module._finish_request(settings, experiment_id, instance, time.time(), 5.0)
    assert request is not None
