"""aligned_judge on real FeedbackQA ratings, the blocking gate, and promotion."""

import pytest

from judgeloop.judging import judges
from judgeloop.sme_labels import experts, labels
from judgeloop.tracing import demo
from judgeloop.stand_in_models.fake_llm import CALLS
from judgeloop.settings import load_settings
from judgeloop.stack.store import connect
from tests.support import accept_any_split, materialize, metadata


def run(instance, selection):
    return materialize(instance, selection)


md = metadata


FOUNDATION = ["base_judge", "tagged_traces", "eval_dataset", "labeling_session"]


@pytest.fixture
def demo_store(home, instance, monkeypatch):
    monkeypatch.setenv("JUDGELOOP_DEMO_ITEMS", "24")
    settings = load_settings()
    experiment_id = connect(settings)
    demo.seed(settings, experiment_id)
    # Expectations on every record, so optimized_prompt downstream could succeed: a test that the
    # gate blocks it must not pass merely because it would have failed anyway.
    monkeypatch.setenv("JUDGELOOP_EXPECTATIONS_PATH", str(demo.write_expectations(settings)))
    assert run(instance, FOUNDATION).success
    return load_settings(), experiment_id


def label_like_the_base_judge(settings, experiment_id, disagree_on=lambda trace_id: False) -> dict:
    """Label every tagged trace with the base judge's own score (or another value where
    ``disagree_on``); returns {trace id: label value}."""
    from mlflow import MlflowClient

    from judgeloop.tracing import traces

    client = MlflowClient()
    written = {}
    for trace_id in traces.tagged_trace_ids(experiment_id):
        judged = [a for a in client.get_trace(trace_id).info.assessments if a.source.source_type == "LLM_JUDGE"]
        value = int(judged[-1].value)
        if disagree_on(trace_id):
            value = settings.scale_max if value == settings.scale_min else settings.scale_min
        labels.log_label(trace_id, settings.judge_name, value, "rater-1", "rated")
        written[trace_id] = value
    return written


def test_alignment_on_feedbackqa_ratings(demo_store, instance, monkeypatch):
    # The fake judge's agreement on real ratings depends on the random split; the gate's
    # decision is tested on its own below, so here it lets every re-alignment through.
    monkeypatch.setenv("JUDGELOOP_GATE_MARGIN", "2.0")
    # 16 traces with random ids hold out fewer than 3 about 1 run in 20.
    accept_any_split(monkeypatch)
    settings, experiment_id = demo_store
    # 16 of the 24 traces now; the other 8 come later, and all of them falling on the held-out
    # side (which would leave nothing new to align on) has a chance of 0.34**8 < 0.0002.
    release = demo.release_labels(settings, experiment_id, 32)
    assert release.written == 32
    result = run(instance, ["aligned_judge"])
    assert result.success
    meta = md(result, "aligned_judge")
    assert meta["previous_version"] == 1 and meta["judge_version"] == 2
    assert meta["labels_alignment"] + meta["labels_heldout"] == 32
    assert meta["labels_heldout"] > 0
    assert meta["guideline_count"] > 0 and "The expert rates" in meta["guidelines"]
    for key in ("kappa_before", "kappa_after", "exact_agreement_before", "exact_agreement_after", "mae_after"):
        assert isinstance(meta[key], float)
    assert meta["kappa_human_ceiling"] <= 1.0
    # One picture per version, intervals in a table, the gate's case and what the run cost.
    assert "data:image/svg+xml;base64," in meta["agreement_chart"] and meta["agreement_chart_file"].endswith("-agreement.svg")
    from pathlib import Path

    chart = Path(meta["agreement_chart_file"]).read_text()
    assert ">v1<" in chart and ">v2 (in use)<" in chart and "experts vs experts" in chart
    # The decision comes first: what a person opening the asset looks for.
    assert list(meta)[:3] == ["promoted", "gate", "gate_case"]
    assert meta["measured_on"].startswith("on ") and "held-out traces" in meta["measured_on"]
    assert meta["gate_case"] and meta["traces_heldout_sample"] == meta["traces_heldout"]
    assert {row.data["role"] for row in meta["llm_usage"].records} >= {"judge", "reflection"}
    assert meta["llm_cost_usd"] == "unknown"  # the fake provider has no price
    assert result.get_asset_check_evaluations()[-1].passed
    assert judges.promoted_version(experiment_id) == 2
    assert judges.latest_version(experiment_id, settings.judge_name) == 2
    lineage = judges.lineage(experiment_id, 2)
    assert lineage["previous_version"] == 1 and lineage["label_count"] == meta["labels_alignment"]

    # Incremental: with a few more labels MemAlign distils only the new alignment-side examples.
    from judgeloop.judging import split

    def align_side(current):
        # What MemAlign is given per alignment trace: one consensus label (an expert's own).
        grouped = labels.by_trace(current)
        return {
            tid: experts.consensus(settings, g).assessment_id
            for tid, g in grouped.items() if not split.is_heldout(tid, settings.heldout_fraction)
        }

    distilled = CALLS["guideline_examples"]
    first_side = align_side(labels.current_labels(settings, experiment_id)[0])
    assert len(first_side) == meta["labels_used_alignment"] == meta["traces_alignment"]
    assert distilled == len(first_side)  # one example per trace: MemAlign discards nothing
    changed = {}
    while not changed:  # release a trace's labels at a time until one lands on the alignment side
        assert demo.release_labels(settings, experiment_id, 2).written == 2
        second_side = align_side(labels.current_labels(settings, experiment_id)[0])
        changed = {tid: g for tid, g in second_side.items() if tid not in first_side or g != first_side[tid]}
    more = run(instance, ["aligned_judge"])
    assert more.success and md(more, "aligned_judge")["judge_version"] == 3
    # Only traces that are new (or whose labels changed) are distilled again, not all of them.
    assert CALLS["guideline_examples"] - distilled == len(changed)
    assert md(more, "aligned_judge")["llm_align_reflection_calls"] == (1 if changed else 0)

    # The same labels again: nothing new is registered, the promoted judge stays.
    again = run(instance, ["aligned_judge"])
    assert again.success and "already aligned" in md(again, "aligned_judge")["no_change"]
    # The no-op is the latest materialization, yet it still reads as the result in use: the
    # last real run's figures, carried over and marked as such (not "promoted: false").
    latest = md(again, "aligned_judge")
    assert latest["result_from_run"] == more.run_id
    for key in ("promoted", "judge_version", "kappa_after", "guidelines"):
        assert latest[key] == md(more, "aligned_judge")[key], key
    assert latest["promoted"] is True
    # The gate's sentence is this run's own, never the last change's text next to new numbers.
    assert latest["gate_case"] == "nothing_to_promote" and "already aligned" in latest["gate"]
    assert list(latest)[:3] == ["promoted", "gate", "gate_case"]
    # Its agreement is not carried over: the judge in use was measured again on the current
    # held-out labels (and reproduces the number recorded for it, since the labels did not change).
    assert "re-measured on the current held-out labels" in latest["agreement_measured"]
    assert judges.latest_version(experiment_id, settings.judge_name) == 3


def test_too_few_labels_is_a_clear_error(demo_store, instance):
    settings, experiment_id = demo_store
    demo.release_labels(settings, experiment_id, 3)
    result = run(instance, ["aligned_judge"])
    assert not result.success
    failure = result.failure_data_for_node("aligned_judge")
    assert "Need at least" in failure.error.to_string()
    assert judges.latest_version(experiment_id, settings.judge_name) == 1


def test_gate_blocks_a_worse_judge(demo_store, instance, monkeypatch, capsys):
    settings, experiment_id = demo_store
    # SMEs who agree with the base judge exactly: its held-out kappa is 1, so a judge that
    # learned "Always rate 1" is worse by construction, whatever traces land in held-out.
    label_like_the_base_judge(settings, experiment_id)
    monkeypatch.setenv("JUDGELOOP_REFLECTION_MODEL", "fake:/saboteur")
    monkeypatch.setenv("JUDGELOOP_GEPA_MAX_METRIC_CALLS", "6")  # should the gate leak, GEPA stays short
    result = run(instance, ["aligned_judge", "agent_prompt", "optimized_prompt"])
    assert not result.success
    check = result.get_asset_check_evaluations()[0]
    reason = check.metadata["reason"].value
    # Either blocking case: how wide the interval is depends on the held-out split.
    assert not check.passed and ("measured worse" in reason or "worse with confidence" in reason), reason
    assert check.description == check.metadata["reason"].value  # the sentence the UI shows for the check
    assert check.metadata["kappa_before"].value > check.metadata["kappa_after"].value + settings.gate_margin
    # Nothing downstream ran, though it could have: agent_prompt (same run) and the dataset's
    # expectations are in place, so only the blocking check stops optimized_prompt.
    assert result.asset_materializations_for_node("agent_prompt")
    assert not result.asset_materializations_for_node("optimized_prompt")
    assert result.failure_data_for_node("optimized_prompt") is None
    # Registered for the record, never promoted.
    assert judges.latest_version(experiment_id, settings.judge_name) == 2
    assert judges.promoted_version(experiment_id) == 1

    # `judgeloop status --json` says why: the version, the gate's case, its sentence, what it stood on.
    import json

    from judgeloop import cli

    capsys.readouterr()
    assert cli.main(["status", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    v2 = next(v for v in report["judge"]["versions"] if v["version"] == 2)
    assert v2["state"] == "blocked" and v2["gate_case"] in ("measured_worse", "worse_with_confidence")
    assert ("measured worse" in v2["why"] or "worse with confidence" in v2["why"]) and "v1 stays in use" in v2["why"]
    assert v2["measured_on"].startswith("on ") and v2["measured_traces"] >= 1
    v1 = next(v for v in report["judge"]["versions"] if v["version"] == 1)
    assert v1["state"] == "in use"


def test_labels_stored_as_floats_like_the_mlflow_ui_writes_them(demo_store, instance, monkeypatch):
    """The review UI's number box stores 3 as 3.0: alignment and agreement must treat it as 3."""
    monkeypatch.setenv("JUDGELOOP_GATE_MARGIN", "2.0")
    accept_any_split(monkeypatch)  # 40 labels on 20 random trace ids hold out fewer than 3 about 1 run in 60
    settings, experiment_id = demo_store
    for trace_id, rating in demo.pending_labels(settings, experiment_id)[:40]:
        from judgeloop.tracing import feedbackqa

        labels.log_label(trace_id, settings.judge_name, float(feedbackqa.to_scale(rating.rating, settings)), rating.reviewer, rating.reason)
    result = run(instance, ["aligned_judge"])
    assert result.success, result.failure_data_for_node("aligned_judge")
    meta = md(result, "aligned_judge")
    assert meta["labels_total"] == 40 and meta["labels_rejected"] == 0
    assert "kappa_human_ceiling" in meta and "kappa_after" in meta


def test_agreement_is_measured_on_heldout_traces_only(demo_store, instance, monkeypatch):
    """SMEs agree with the base judge on every held-out trace and disagree on every alignment
    trace: measured on held-out, the base judge agrees exactly; on the alignment side, never."""
    monkeypatch.setenv("JUDGELOOP_GATE_MARGIN", "2.0")
    settings, experiment_id = demo_store
    from judgeloop.judging import split

    def on_alignment_side(trace_id):
        return not split.is_heldout(trace_id, settings.heldout_fraction)

    written = label_like_the_base_judge(settings, experiment_id, disagree_on=on_alignment_side)
    heldout = [t for t in written if not on_alignment_side(t)]
    assert heldout and len(heldout) < len(written)
    result = run(instance, ["aligned_judge"])
    assert result.success, result.failure_data_for_node("aligned_judge")
    meta = md(result, "aligned_judge")
    assert meta["heldout_pairs_before"] == len(heldout) == meta["labels_heldout"]
    assert meta["exact_agreement_before"] == 1.0
