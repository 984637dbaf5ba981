"""agent_prompt and optimized_prompt: GEPA with the aligned judge, lineage tags, promotion."""

import dagster as dg
import pytest

from judgeloop.prompt_optimization import gepa_budget, optimization, prompts
from judgeloop.tracing import demo
from judgeloop.stand_in_models.fake_llm import CALLS, QUOTE_INSTRUCTION, reset_calls
from judgeloop.settings import load_settings
from judgeloop.stack.store import connect
from tests.support import accept_any_split, materialize, metadata

FOUNDATION = ["base_judge", "tagged_traces", "eval_dataset", "labeling_session", "agent_prompt"]


def run(instance, selection):
    return materialize(instance, selection)


md = metadata


@pytest.fixture
def aligned_store(home, instance, monkeypatch):
    monkeypatch.setenv("JUDGELOOP_DEMO_ITEMS", "24")
    monkeypatch.setenv("JUDGELOOP_GEPA_MAX_METRIC_CALLS", "40")
    # These tests are about the prompt, not the gate: let any re-alignment through, and keep the
    # stand-in judge's generic rule (a better answer scores higher) instead of its memory.
    monkeypatch.setenv("JUDGELOOP_GATE_MARGIN", "2.0")
    monkeypatch.setenv("JUDGELOOP_JUDGE_MODEL", "fake:/judge-generic")
    accept_any_split(monkeypatch)
    settings = load_settings()
    experiment_id = connect(settings)
    demo.seed(settings, experiment_id)
    monkeypatch.setenv("JUDGELOOP_EXPECTATIONS_PATH", str(demo.write_expectations(settings)))
    assert run(instance, FOUNDATION).success
    demo.release_labels(settings, experiment_id, 48)
    assert run(instance, ["aligned_judge"]).success
    return load_settings(), experiment_id


def _trace_count(experiment_id: str) -> int:
    from judgeloop.tracing.traces import search_all

    return len(search_all(experiment_id))


def test_gepa_improves_and_promotes_with_lineage(aligned_store, instance):
    settings, experiment_id = aligned_store
    production_traces = _trace_count(experiment_id)
    result = run(instance, ["optimized_prompt"])
    assert result.success
    meta = md(result, "optimized_prompt")
    assert meta["promoted"] is True, meta["decision"]
    assert meta["heldout_score_new"] > meta["heldout_score_production"]
    assert meta["prompt_version"] == 2 and meta["judge_version"] == 2
    # GEPA checks its budget before each iteration, so the last one may overshoot by its two
    # reflection minibatches (3 records each: parent and child) plus one full evaluation.
    overshoot = 2 * 3 + meta["train_records"]
    assert 0 < meta["metric_calls_spent"] <= meta["metric_calls_budget"] + overshoot
    # The records were fitted to the budget, so GEPA got past its first evaluation.
    assert meta["train_records"] == gepa_budget.records_for_budget(40, meta["train_records_available"])
    assert meta["train_records"] <= meta["train_records_available"]  # the demo dataset is small; sampling is tested below
    assert meta["gepa_rounds"] >= 1 and meta["gepa_rounds_accepted"] >= 1 and "budget_warning" not in meta
    assert QUOTE_INSTRUCTION in meta["new_prompt"] and f"+{QUOTE_INSTRUCTION}" in meta["diff_vs_production"]
    # The page leads with the decision, the prompt in production and the candidate's diff to it.
    assert list(meta)[:4] == ["promoted", "decision", "prompt_in_production", "diff_vs_production"]
    assert meta["prompt_in_production"].startswith("v2:") and QUOTE_INSTRUCTION in meta["prompt_in_production"]
    assert result.get_asset_check_evaluations()[0].passed

    production = prompts.production(settings)
    assert int(production.version) == 2
    tags = prompts.version_tags(settings.prompt_name, 2)
    assert tags["judgeloop.judge_version"] == "2"
    assert tags["judgeloop.dataset_id"] == meta["dataset_id"]
    assert tags["judgeloop.parent_version"] == "1"

    # GEPA's agent and judge calls are traced in their own experiment, linked from the version.
    optimizer = tags[optimization.OPTIMIZATION_EXPERIMENT_TAG]
    assert optimizer != experiment_id
    assert _trace_count(experiment_id) == production_traces
    assert _trace_count(optimizer) >= meta["metric_calls_spent"]
    assert tags[optimization.OPTIMIZATION_TRACES_TAG].endswith(f"/#/experiments/{optimizer}/traces")
    assert meta["optimizer_traces"] == tags[optimization.OPTIMIZATION_TRACES_TAG]

    # A restart that relaunches the foundation job neither tags optimizer traffic, nor merges it
    # into the dataset, nor queues it for the experts.
    from judgeloop.tracing import traces

    tagged_before = set(traces.tagged_trace_ids(experiment_id))
    restart = run(instance, FOUNDATION)
    assert restart.success
    assert set(traces.tagged_trace_ids(experiment_id)) == tagged_before
    assert md(restart, "tagged_traces")["traces_evaluated"] == 0
    assert md(restart, "eval_dataset")["records_added"] == 0 and md(restart, "labeling_session")["items_added"] == 0

    # Re-running with the same judge and dataset is a no-op.
    again = run(instance, ["optimized_prompt"])
    assert again.success and "already optimized" in md(again, "optimized_prompt")["no_change"]
    # The no-op still shows the prompt in use and its diff, carried from the run that made it.
    assert md(again, "optimized_prompt")["result_from_run"] == result.run_id
    assert md(again, "optimized_prompt")["diff_vs_production"] == meta["diff_vs_production"]
    assert md(again, "optimized_prompt")["prompt_in_production"] == meta["prompt_in_production"]
    assert prompts.latest(settings.prompt_name).version == 2


def test_an_unchanged_prompt_registers_no_version(aligned_store, instance, monkeypatch):
    settings, experiment_id = aligned_store
    monkeypatch.setenv("JUDGELOOP_REFLECTION_MODEL", "fake:/stubborn")  # GEPA returns the template as it was
    result = run(instance, ["optimized_prompt"])
    assert result.success  # a warning, not a failure
    meta = md(result, "optimized_prompt")
    assert meta["promoted"] is False and "unchanged" in meta["decision"]
    assert meta["prompt_in_production"].startswith("v1:") and "no change" in meta["diff_vs_production"]
    check = result.get_asset_check_evaluations()[0]
    assert not check.passed and check.severity == dg.AssetCheckSeverity.WARN
    assert int(prompts.production(settings).version) == 1
    assert prompts.latest(settings.prompt_name).version == 1  # no copy of production registered
    assert meta["gepa_rounds"] >= 1  # the records were fitted to the budget: GEPA got to reflect

    # The same judge and dataset do not run GEPA again.
    again = run(instance, ["optimized_prompt"])
    assert again.success and "unchanged" in md(again, "optimized_prompt")["no_change"]
    assert prompts.latest(settings.prompt_name).version == 1


def test_an_unchanged_prompt_after_failed_calls_is_not_remembered(aligned_store, instance, monkeypatch):
    """GEPA also hands back the template unchanged when its model calls fail (an outage): that is
    no verdict on the prompt, so the next run must optimize again."""
    settings, experiment_id = aligned_store
    monkeypatch.setenv("JUDGELOOP_REFLECTION_MODEL", "fake:/unavailable")
    monkeypatch.setenv("JUDGELOOP_LLM_MAX_RETRIES", "0")
    first = run(instance, ["optimized_prompt"])
    assert first.success and "not a result" in md(first, "optimized_prompt")["decision"]
    production = prompts.production(settings)
    assert int(production.version) == 1 and prompts.latest(settings.prompt_name).version == 1
    assert optimization.KEPT_TAG not in prompts.version_tags(settings.prompt_name, production.version)

    monkeypatch.setenv("JUDGELOOP_REFLECTION_MODEL", "fake:/reflection")  # the provider is back
    again = run(instance, ["optimized_prompt"])
    assert again.success and "no_change" not in md(again, "optimized_prompt")
    assert prompts.latest(settings.prompt_name).version > 1  # optimized this time: a new version


@pytest.mark.parametrize(
    "budget,available,expected",
    [
        (60, 177, 10),  # 10 + 3 rounds x (3 + 3 + 10) = 58
        (40, 16, 5),  # 5 + 3 x 11 = 38
        (60, 4, 4),  # fewer records than the budget allows: all of them
        (10, 50, 2),  # room for one round only: 2 + (3 + 3 + 2) = 10
        (9, 50, 0),  # not even one round
    ],
)
def test_records_are_fitted_to_the_gepa_budget(budget, available, expected):
    assert gepa_budget.records_for_budget(budget, available) == expected
    if expected:
        assert gepa_budget.cost(expected, 1) <= budget


def test_budget_sample_is_stable_and_order_free():
    records = [{"inputs": {"question": f"q{i}"}} for i in range(30)]
    first = gepa_budget.stable_sample(records, 7)
    assert first == gepa_budget.stable_sample(list(reversed(records)), 7)
    assert gepa_budget.stable_sample(records, 8)[:7] == first


def test_missing_expectations_named_before_any_llm_call_when_strict(home, instance, monkeypatch):
    monkeypatch.setenv("JUDGELOOP_DEMO_ITEMS", "24")
    monkeypatch.setenv("JUDGELOOP_GATE_MARGIN", "2.0")
    monkeypatch.setenv("JUDGELOOP_SKIP_RECORDS_WITHOUT_EXPECTATIONS", "false")
    accept_any_split(monkeypatch)
    settings = load_settings()
    experiment_id = connect(settings)
    demo.seed(settings, experiment_id)
    # Some records with expectations, some without: strict settings name every one without.
    with_some = demo.write_expectations(settings)
    lines = with_some.read_text().splitlines()
    with_some.write_text("\n".join(lines[: len(lines) // 2 + 2]) + "\n")
    monkeypatch.setenv("JUDGELOOP_EXPECTATIONS_PATH", str(with_some))
    assert run(instance, FOUNDATION).success
    demo.release_labels(settings, experiment_id, 48)
    assert run(instance, ["aligned_judge"]).success
    reset_calls()
    result = run(instance, ["optimized_prompt"])
    assert not result.success
    message = result.failure_data_for_node("optimized_prompt").error.to_string()
    assert "have no expectations" in message and "record " in message and "question" in message
    assert CALLS["total"] == 0
    assert prompts.latest(settings.prompt_name).version == 1

    # By default, records without expectations are counted and left out, not fatal.
    monkeypatch.delenv("JUDGELOOP_SKIP_RECORDS_WITHOUT_EXPECTATIONS")
    skipped = run(instance, ["optimized_prompt"])
    assert skipped.success, skipped.failure_data_for_node("optimized_prompt")
    assert md(skipped, "optimized_prompt")["records_skipped_without_expectations"] > 0


def test_rescale_keeps_scores_below_one_until_the_top():
    settings = load_settings()
    assert [optimization.rescale(settings, v) for v in (1, 2, 3, 4)] == [0.0, 1 / 3, 2 / 3, 1.0]


def test_agent_traces_record_the_prompt_version(home):
    import json

    import mlflow

    from judgeloop.tracing import agent

    settings = load_settings()
    experiment_id = connect(settings)
    prompts.ensure_registered(settings)
    agent.answer("How long is the incubation period?")
    mlflow.genai.register_prompt(name=settings.prompt_name, template="Be brief. " + settings.agent_system_prompt)
    prompts.promote(settings, 2)
    agent.answer("Can pets carry the virus?")
    found = mlflow.search_traces(locations=[experiment_id], return_type="list", order_by=["timestamp_ms ASC"])
    linked = [json.loads(t.info.tags["mlflow.linkedPrompts"]) for t in found]
    assert [entry[0]["version"] for entry in linked] == ["1", "2"]
