"""An expert corrects a label the judge already learned from: at the next alignment, the
guidelines drawn from the old value are withdrawn and the current value is learned again."""

import shutil

import mlflow
import pytest
from mlflow.entities import AssessmentSource

from judgeloop.judging import alignment, judges, split
from judgeloop.sme_labels import labels
from judgeloop.sme_labels.labels import log_label
from judgeloop.settings import load_settings
from judgeloop.stack.store import connect


@pytest.fixture
def store(home, template, monkeypatch):
    state, experiment_id, trace_ids = template
    shutil.copytree(state, home)
    # Exactly three of the six traces held out, whatever ids the store gave them.
    scores = sorted(split.heldout_score(t) for t in trace_ids)
    monkeypatch.setenv("JUDGELOOP_HELDOUT_FRACTION", str((scores[2] + scores[3]) / 2))
    monkeypatch.setenv("JUDGELOOP_MIN_ALIGNMENT_LABELS", "3")
    monkeypatch.setenv("JUDGELOOP_GATE_MARGIN", "2.0")
    settings = load_settings()
    assert connect(settings) == experiment_id
    judges.ensure_base_judge(settings, experiment_id, settings.judge_model)
    return settings, experiment_id, trace_ids


def _rates(guidelines: list[str], value: int) -> list[str]:
    return [g for g in guidelines if g.startswith(f"The expert rates {value} ")]


def test_a_corrected_label_withdraws_the_guideline_learned_from_its_old_value(store):
    settings, experiment_id, trace_ids = store
    aligned_ids, heldout_ids = split.split(trace_ids, settings.heldout_fraction)
    for tid in aligned_ids:
        log_label(tid, settings.judge_name, 4, "alice", "complete and correct")
    for tid, value in zip(heldout_ids, (1, 3, 4)):
        log_label(tid, settings.judge_name, value, "alice", "rated")
    first = alignment.align(settings, experiment_id)
    judges.promote(experiment_id, first.new_version)
    assert _rates(first.guidelines, 4), first.guidelines

    # Alice changes her mind on every alignment trace, in the UI (an override of the old label).
    current, _ = labels.current_labels(settings, experiment_id)
    for old in [l for l in current if l.trace_id in aligned_ids]:
        mlflow.override_feedback(
            trace_id=old.trace_id, assessment_id=old.assessment_id, value=1, rationale="misses the point",
            source=AssessmentSource(source_type="HUMAN", source_id="alice"),
        )

    second = alignment.align(settings, experiment_id)
    assert second.new_version == first.new_version + 1
    # What the old value taught is gone; the current value is learned.
    assert not _rates(second.guidelines, 4), second.guidelines
    assert _rates(second.guidelines, 1), second.guidelines
    assert second.guidelines_withdrawn == _rates(first.guidelines, 4)
    assert judges.lineage(experiment_id, second.new_version)["guidelines_withdrawn"] == len(second.guidelines_withdrawn)
    # The judge in use was not changed by the withdrawal: it still holds its own guidelines.
    assert _rates(alignment.guidelines_of(alignment.load_judge(settings, experiment_id, first.new_version, current)), 4)


def test_a_deleted_label_withdraws_its_guideline_too(store):
    settings, experiment_id, trace_ids = store
    aligned_ids, heldout_ids = split.split(trace_ids, settings.heldout_fraction)
    written = {tid: log_label(tid, settings.judge_name, 4 if i == 0 else 2, "alice", "rated") for i, tid in enumerate(aligned_ids)}
    for tid, value in zip(heldout_ids, (1, 3, 4)):
        log_label(tid, settings.judge_name, value, "alice", "rated")
    first = alignment.align(settings, experiment_id)
    judges.promote(experiment_id, first.new_version)
    assert _rates(first.guidelines, 4)

    mlflow.delete_assessment(trace_id=aligned_ids[0], assessment_id=written[aligned_ids[0]])
    second = alignment.align(settings.model_copy(update={"min_alignment_labels": 2}), experiment_id)
    assert not _rates(second.guidelines, 4), second.guidelines
