"""Reading SME labels with a cursor, and which labels count."""

import mlflow
import pytest
from mlflow.entities import AssessmentSource

from judgeloop.sme_labels import labels
from judgeloop.tracing import feedbackqa, production
from judgeloop.sme_labels.labels import Cursor, log_label
from judgeloop.settings import load_settings
from judgeloop.stack.store import connect
from tests.conftest import feedbackqa_root
from tests.support import restamp


@pytest.fixture
def store(home):
    settings = load_settings()
    experiment_id = connect(settings)
    items = feedbackqa.load_items(feedbackqa_root(), "WHO", limit=6)
    trace_ids = list(production.seed_traces(experiment_id, items).values())
    return settings, experiment_id, trace_ids


def test_cursor_returns_only_what_changed(store):
    settings, experiment_id, (t1, t2, t3, *_) = store
    assert labels.changed_since(settings, experiment_id).labels == []
    a1 = log_label(t1, "answer_quality", 3, "rater-1", "clear answer")
    a2 = log_label(t2, "answer_quality", 1, "rater-2", "off topic")
    first = labels.changed_since(settings, experiment_id)
    assert [label.assessment_id for label in first.labels] == [a1, a2]
    assert first.labels[0].value == 3 and first.labels[0].comment == "clear answer"
    assert first.labels[0].reviewer == "rater-1" and first.labels[0].trace_id == t1
    assert first.cursor.key == first.labels[-1].key

    # Nothing new: nothing returned, cursor unchanged.
    again = labels.changed_since(settings, experiment_id, first.cursor)
    assert again.labels == [] and again.cursor.key == first.cursor.key
    assert again.rows_read <= 2  # only the look-back window is re-read

    a3 = log_label(t3, "answer_quality", 4, "rater-1")
    later = labels.changed_since(settings, experiment_id, first.cursor)
    assert [label.assessment_id for label in later.labels] == [a3]

    # A label committed late, stamped before the cursor (several server workers): still seen, once.
    late = log_label(t2, "answer_quality", 2, "rater-3", "slow writer")
    restamp(settings, late, later.cursor.updated_ms - 1000)
    caught = labels.changed_since(settings, experiment_id, later.cursor)
    assert [label.assessment_id for label in caught.labels] == [late]
    assert labels.changed_since(settings, experiment_id, caught.cursor).labels == []

    # Paging: a page size of 1 still returns all, in order.
    paged = labels.changed_since(settings, experiment_id, Cursor(), page_size=1)
    assert sorted(label.assessment_id for label in paged.labels) == sorted([a1, a2, a3, late])
    assert [label.key for label in paged.labels] == sorted(label.key for label in paged.labels)


def test_other_sources_and_names_are_ignored(store):
    settings, experiment_id, (t1, t2, *_) = store
    mlflow.log_feedback(trace_id=t1, name="answer_quality", value=2)  # source CODE
    mlflow.log_feedback(
        trace_id=t1, name="answer_quality", value=2, source=AssessmentSource(source_type="LLM_JUDGE", source_id="x")
    )
    log_label(t2, "politeness", 4, "rater-1")
    kept = log_label(t2, " Answer_Quality ", 4, "rater-1")  # MemAlign matches trimmed, case-insensitive
    batch = labels.changed_since(settings, experiment_id)
    assert [label.assessment_id for label in batch.labels] == [kept]


def test_overridden_and_updated_labels(store):
    settings, experiment_id, (t1, t2, *_) = store
    original = log_label(t1, "answer_quality", 1, "rater-1", "first thought")
    cursor = labels.changed_since(settings, experiment_id).cursor
    # An edit in the MLflow UI overrides: a new assessment, the old one kept as invalid.
    override = mlflow.override_feedback(
        trace_id=t1, assessment_id=original, value=4, rationale="on reflection, excellent",
        source=AssessmentSource(source_type="HUMAN", source_id="rater-1"),
    )
    changed = labels.changed_since(settings, experiment_id, cursor)
    assert override.assessment_id in [label.assessment_id for label in changed.labels]
    current, _ = labels.current_labels(settings, experiment_id)
    assert [(label.trace_id, label.value) for label in current] == [(t1, 4)]

    # An in-place update is seen as changed too.
    second = log_label(t2, "answer_quality", 2, "rater-2")
    cursor = labels.changed_since(settings, experiment_id).cursor
    mlflow.update_assessment(
        trace_id=t2, assessment_id=second, assessment=mlflow.entities.Feedback(name="answer_quality", value=3)
    )
    changed = labels.changed_since(settings, experiment_id, cursor)
    assert [(label.assessment_id, label.value) for label in changed.labels] == [(second, 3)]


def test_deleted_labels_stop_counting(store):
    settings, experiment_id, (t1, t2, *_) = store
    gone = log_label(t1, "answer_quality", 2, "rater-1")
    log_label(t2, "answer_quality", 3, "rater-1")
    mlflow.delete_assessment(trace_id=t1, assessment_id=gone)
    current, _ = labels.current_labels(settings, experiment_id)
    assert [label.trace_id for label in current] == [t2]


def test_out_of_range_and_unassigned_reviewers_are_reported(store, monkeypatch):
    monkeypatch.setenv("JUDGELOOP_REVIEWERS", "rater-1,rater-2")
    settings = load_settings()
    _, experiment_id, (t1, t2, t3, t4, *_) = store
    log_label(t1, "answer_quality", 7, "rater-1")  # the UI's number box allows this
    log_label(t2, "answer_quality", 3, "mallory")
    log_label(t3, "answer_quality", "great", "rater-2")
    log_label(t4, "answer_quality", 2, "rater-2")
    current, rejected = labels.current_labels(settings, experiment_id)
    assert [label.trace_id for label in current] == [t4]
    reasons = {r.trace_id: r.reason for r in rejected}
    assert "outside 1-4" in reasons[t1]
    assert "mallory" in reasons[t2] and "not assigned" in reasons[t2]
    assert "not a number" in reasons[t3]


@pytest.mark.parametrize(
    "kind,value,ok",
    [("pass_fail", True, True), ("pass_fail", 3, False), ("categorical", "Bad", True), ("categorical", "Meh", False),
     ("likert", 2.5, False), ("likert", 4, True)],
)
def test_value_rules_per_feedback_type(kind, value, ok, monkeypatch):
    monkeypatch.setenv("JUDGELOOP_FEEDBACK_TYPE", kind)
    assert (labels.check_value(load_settings(), value) is None) is ok


def test_override_by_another_reviewer_retires_the_old_label(store):
    """An override by a DIFFERENT reviewer leaves the old label stored as invalid: it must not
    survive as "the newest label of its own reviewer"."""
    settings, experiment_id, (t1, t2, *_) = store
    original = log_label(t1, "answer_quality", 1, "rater-1", "first thought")
    log_label(t2, "answer_quality", 3, "rater-1")
    override = mlflow.override_feedback(
        trace_id=t1, assessment_id=original, value=4, rationale="the lead's correction",
        source=AssessmentSource(source_type="HUMAN", source_id="rater-2"),
    )
    current, rejected = labels.current_labels(settings, experiment_id)
    assert sorted((label.trace_id, label.reviewer, label.value) for label in current) == sorted(
        [(t1, "rater-2", 4), (t2, "rater-1", 3)]
    )
    assert original not in {label.assessment_id for label in current} and not rejected
    assert override.assessment_id in {label.assessment_id for label in current}


def _label(assessment_id, reviewer, updated_ms, valid):
    return labels.HumanLabel(assessment_id, "tr-1", "answer_quality", 3, None, reviewer, updated_ms, valid)


def test_usable_never_keeps_an_invalid_label():
    keep, rejected = labels.usable(load_settings(), [_label("a-old", "rater-1", 1, False), _label("a-new", "rater-2", 2, True)])
    assert [label.assessment_id for label in keep] == ["a-new"] and rejected == []


def test_latest_per_reviewer_never_keeps_an_invalid_label():
    # The invalid label is the newer one of its reviewer: "newest wins" alone would keep it.
    latest = labels.latest_per_reviewer([_label("a-1", "rater-1", 1, True), _label("a-2", "rater-1", 2, False), _label("a-3", "rater-2", 3, False)])
    assert {key: label.assessment_id for key, label in latest.items()} == {("tr-1", "rater-1"): "a-1"}
