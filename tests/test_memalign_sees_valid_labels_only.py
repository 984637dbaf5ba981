"""MemAlign never learns from an overridden (invalid) label."""

import dagster as dg
import mlflow
from mlflow.entities import AssessmentSource

from judgeloop.judging import alignment, judges, split
from judgeloop.sme_labels import labels
from judgeloop.tracing import demo
from judgeloop.settings import load_settings
from judgeloop.stack.store import connect
from judgeloop_assets.definitions import FOUNDATION
from judgeloop_assets.resources import JudgeloopConfig
from tests.support import accept_any_split


def test_edited_label_is_aligned_on_the_edited_value_only(home, instance, monkeypatch):
    monkeypatch.setenv("JUDGELOOP_DEMO_ITEMS", "20")
    accept_any_split(monkeypatch)  # 20 random trace ids hold out fewer than 3 about 1 run in 60
    settings = load_settings()
    experiment_id = connect(settings)
    demo.seed(settings, experiment_id)
    assert dg.materialize(FOUNDATION, resources={"judgeloop": JudgeloopConfig()}, instance=instance).success
    demo.release_labels(settings, experiment_id, 40)

    current, _ = labels.current_labels(settings, experiment_id)
    grouped = labels.by_trace(current)
    # A trace both raters rated above 1; its higher label is edited down to 1. Then the trace's
    # consensus (the lower middle value) is the edited label, while the overridden label, left in
    # place, would make the middle of three the other rater's value (> 1): this case shows
    # whether invalid labels leak. (Any split of random trace ids has such traces: about half.)
    target = next(
        max(group, key=lambda label: label.value)
        for tid, group in sorted(grouped.items())
        if not split.is_heldout(tid, settings.heldout_fraction) and len(group) == 2
        and min(label.value for label in group) > 1
    )
    stale_reason = target.comment
    assert sum(label.comment == stale_reason for label in current) == 1  # the reason is unique to that label
    new_value = 1
    # Edit as the MLflow UI does: a new assessment overrides, the old one stays stored as invalid.
    mlflow.override_feedback(
        trace_id=target.trace_id, assessment_id=target.assessment_id, value=new_value,
        rationale="EDITED-REASON after a second look",
        source=AssessmentSource(source_type="HUMAN", source_id=target.reviewer),
    )

    # Control: handed the raw trace, MemAlign would learn the overridden label.
    raw = mlflow.MlflowClient().get_trace(target.trace_id)
    assert any(a.rationale == stale_reason and a.valid is False for a in raw.info.assessments)

    result = alignment.align(settings, experiment_id)
    assert result.new_version == 2
    remembered = [ex for ex in result.judge._episodic_memory if ex._trace_id == target.trace_id]
    assert remembered, "the edited trace is in the aligned judge's memory"
    assert all(ex.rationale != stale_reason for ex in remembered)
    assert any(ex.rationale == "EDITED-REASON after a second look" and str(ex.result) == str(new_value) for ex in remembered)

    # What was registered: its guidelines never quote the overridden reason.
    stored = judges.load(experiment_id, settings.judge_name, 2)
    guidelines = " ".join(g.guideline_text for g in stored._semantic_memory)
    assert guidelines and stale_reason[:100] not in guidelines
    assert target.trace_id in stored._episodic_trace_ids
