"""What the expert's review form carries, and what labels written outside it do to the queue.

The form's rubric, the enforced scale, answers stored as text, queue items completed for
labels that arrive by file or from the demo, per-reviewer progress and agreement.
"""

import json

import pytest
from mlflow import MlflowClient

from judgeloop.judging import agreement
from judgeloop.sme_labels import experts, labeling, labels, review_progress
from judgeloop.tracing import demo
from judgeloop.sme_labels.label_files import importing
from judgeloop.settings import load_settings


@pytest.fixture
def store(template_store):
    return template_store


def _schema(settings, experiment_id):
    from mlflow.genai import label_schemas

    return label_schemas.get_label_schema(labeling.schema_name(settings), experiment_id=experiment_id)


def test_the_form_shows_the_judges_rubric_and_a_dropdown_of_the_scale(store, monkeypatch):
    settings, experiment_id, trace_ids = store
    monkeypatch.setenv(
        "JUDGELOOP_JUDGE_INSTRUCTIONS",
        "Penalise answers that cite no WHO source. Question: {{ inputs }}\nAnswer: {{outputs}}",
    )
    settings = load_settings()
    labeling.open_session(settings, experiment_id, trace_ids, "http://mlflow")
    schema = _schema(settings, experiment_id)
    assert "Penalise answers that cite no WHO source." in schema.instruction
    assert "Question: the question Answer: the answer" in schema.instruction
    assert "{{" not in schema.instruction and "as the judge" not in schema.instruction
    assert "1 (worst) to 4 (best)" in schema.instruction
    assert type(schema.input).__name__ == "InputCategorical"
    assert list(schema.input.options) == ["1", "2", "3", "4"]

    # New criteria reach the form on the next run; the queue keeps the same schema.
    monkeypatch.setenv("JUDGELOOP_JUDGE_INSTRUCTIONS", "Reward brevity in {{ outputs }}.")
    settings = load_settings()
    again = labeling.open_session(settings, experiment_id, trace_ids, "http://mlflow")
    assert _schema(settings, experiment_id).instruction.startswith("Reward brevity in the answer.")
    assert again.schema_id == schema.schema_id


def test_a_number_box_schema_from_an_older_run_becomes_a_dropdown(store):
    from mlflow.genai import label_schemas
    from mlflow.genai.label_schemas import InputNumeric

    settings, experiment_id, trace_ids = store
    label_schemas.create_label_schema(
        settings.judge_name, type="feedback", input=InputNumeric(min_value=1.0, max_value=4.0),
        instruction="Rate the answer as the judge should.", enable_comment=True, experiment_id=experiment_id,
    )
    report = labeling.open_session(settings, experiment_id, trace_ids, "http://mlflow")
    schema = _schema(settings, experiment_id)
    assert type(schema.input).__name__ == "InputCategorical" and schema.schema_id == report.schema_id
    from mlflow.genai import review_queues

    assert review_queues.get_review_queue(name=report.queue_name, experiment_id=experiment_id).schema_ids == [schema.schema_id]


def test_wide_scales_keep_a_number_box(monkeypatch, home):
    monkeypatch.setenv("JUDGELOOP_SCALE_MIN", "0")
    monkeypatch.setenv("JUDGELOOP_SCALE_MAX", "100")
    assert type(labeling.schema_input(load_settings())).__name__ == "InputNumeric"


@pytest.mark.parametrize(
    "value, reason",
    [("3", None), (" 4 ", None), (3.0, None), ("5", "outside 1-4"), ("2.5", "whole step"), ("good", "not a number"), ("nan", "not a number")],
)
def test_dropdown_values_read_back_as_ratings(home, value, reason):
    settings = load_settings()
    problem = labels.check_value(settings, value)
    assert (problem is None) if reason is None else (reason in problem), problem
    if reason is None:
        assert labels.normalize(settings, value) in (3, 4) and isinstance(labels.normalize(settings, value), int)


def test_dropdown_labels_count_everywhere(store):
    """A label as the form writes it ("3") counts as the rating 3 for agreement, export and
    MemAlign's cleaned traces."""
    from judgeloop.judging import alignment
    from judgeloop.sme_labels.label_files.exporting import export_rows

    settings, experiment_id, trace_ids = store
    labels.log_label(trace_ids[0], settings.judge_name, "3", reviewer="alice")
    labels.log_label(trace_ids[0], settings.judge_name, 3, reviewer="bob")
    labels.log_label(trace_ids[1], settings.judge_name, "5", reviewer="alice")
    used, rejected = labels.current_labels(settings, experiment_id)
    assert [label.value for label in used] == ["3", 3]
    assert [r.value for r in rejected] == ["5"] and "outside 1-4" in rejected[0].reason
    ceiling = experts.ceiling(settings, labels.by_trace(used))
    assert ceiling.traces == 1 and ceiling.estimates["exact"].value == 1.0
    assert [row["value"] for row in export_rows(settings, experiment_id)] == [3, 3]
    # MemAlign gets one consensus label per trace, as a number.
    cleaned = alignment.cleaned_traces(settings, experiment_id, [trace_ids[0]], used)[trace_ids[0]]
    assert [a.value for a in cleaned.info.assessments] == [3]


def test_demo_answers_are_stored_as_text_the_ui_renders(store):
    settings, experiment_id, trace_ids = store
    outputs = json.loads(MlflowClient().get_trace(trace_ids[0]).data.response)
    # An OpenAI-style completion: MLflow's review form renders its message as text; a bare
    # string output is printed as JSON with literal \n.
    message = outputs["choices"][0]["message"]
    assert message["role"] == "assistant" and message["content"].strip()


def _statuses(queue_id) -> dict:
    return {item.item_id: str(item.status.value) for item in labeling.queue_items(queue_id)}


def test_imported_labels_complete_their_queue_items(store, tmp_path):
    settings, experiment_id, trace_ids = store
    report = labeling.open_session(settings, experiment_id, trace_ids, "http://mlflow")
    path = tmp_path / "labels.jsonl"
    path.write_text(
        json.dumps({"trace_id": trace_ids[0], "value": 3, "reviewer": "alice"}) + "\n"
        + json.dumps({"trace_id": trace_ids[1], "value": 2, "reviewer": "bob"}) + "\n"
    )
    result = importing.import_labels(settings, experiment_id, path)
    assert result.written == 2 and result.completed_items == 2
    assert "2 review-queue item(s) marked complete" in result.summary()
    statuses = _statuses(report.queue_id)
    assert statuses[trace_ids[0]] == statuses[trace_ids[1]] == "complete"
    assert [statuses[t] for t in trace_ids[2:]] == ["pending"] * (len(trace_ids) - 2)
    completed_by = {i.item_id: i.completed_by for i in labeling.queue_items(report.queue_id)}
    assert completed_by[trace_ids[0]] == "alice"


def test_out_of_scale_labels_leave_their_item_pending(store):
    settings, experiment_id, trace_ids = store
    report = labeling.open_session(settings, experiment_id, trace_ids, "http://mlflow")
    labels.log_label(trace_ids[0], settings.judge_name, 7, reviewer="alice")
    assert labeling.complete_labelled_items(settings, experiment_id) == 0
    assert _statuses(report.queue_id)[trace_ids[0]] == "pending"


def test_released_demo_labels_complete_their_queue_items(store, monkeypatch):
    monkeypatch.setenv("JUDGELOOP_DEMO_ITEMS", "6")
    settings, experiment_id, trace_ids = store
    settings = load_settings()
    report = labeling.open_session(settings, experiment_id, trace_ids, "http://mlflow")
    release = demo.release_labels(settings, experiment_id, 4)
    assert release.written == 4 and release.completed_items >= 2
    complete = [t for t, s in _statuses(report.queue_id).items() if s == "complete"]
    labelled = {label.trace_id for label in labels.current_labels(settings, experiment_id)[0]}
    assert set(complete) == labelled


def test_per_reviewer_progress_and_pairwise_agreement(home, monkeypatch):
    monkeypatch.setenv("JUDGELOOP_REVIEWERS", "alice,bob,carol")
    settings = load_settings()

    def label(trace, reviewer, value):
        return labels.HumanLabel(f"a-{trace}-{reviewer}", trace, settings.judge_name, value, None, reviewer, 1)

    used = [label("t1", "alice", "4"), label("t1", "bob", 4), label("t2", "alice", 1), label("t2", "bob", 2),
            label("t3", "alice", 3)]
    rejected = [labels.Rejection("t4", "bob", 9, "value 9 is outside 1-4")]
    review = review_progress.report(settings, used, rejected, ["t1", "t2", "t3", "t4"])
    progress = {r.reviewer: (r.labelled, r.queued, r.rejected) for r in review.reviewers}
    assert progress == {"alice": (3, 4, 0), "bob": (2, 4, 1), "carol": (0, 4, 0)}
    [pair] = review.pairs
    assert (pair.first, pair.second, pair.shared_traces, pair.exact) == ("alice", "bob", 2, 0.5)
    assert pair.kappa == pytest.approx(agreement.measure(settings, [4, 1], [4, 2]).kappa)


def test_status_shows_the_queue_reviewers_and_their_agreement(store, capsys):
    from judgeloop.cli import main

    settings, experiment_id, trace_ids = store
    report = labeling.open_session(settings, experiment_id, trace_ids, "http://mlflow")
    labels.log_label(trace_ids[0], settings.judge_name, "4", reviewer="alice")
    labels.log_label(trace_ids[0], settings.judge_name, 4, reviewer="bob")
    labels.log_label(trace_ids[1], settings.judge_name, 2, reviewer="alice")
    labeling.complete_labelled_items(settings, experiment_id)
    assert main(["status"]) == 0
    out = capsys.readouterr().out
    assert f"review queue {report.queue_name!r}: 2 complete, {len(trace_ids) - 2} pending" in out
    assert f"selectedQueueId={report.queue_id}" in out
    assert f"reviewers: alice 2/{len(trace_ids)}, bob 1/{len(trace_ids)} labelled" in out
    assert "reviewer agreement: alice ~ bob kappa" in out and "on 1 shared trace(s)" in out
    assert main(["status", "--json"]) == 0
    review = json.loads(capsys.readouterr().out)["review"]
    assert review["agreement"][0]["reviewers"] == ["alice", "bob"] and review["queue"]["complete"] == 2


def test_up_prints_the_review_queue_link(store):
    from judgeloop.commands.up import _review_queue_link

    settings, experiment_id, _ = store
    link = _review_queue_link(settings, experiment_id, "http://127.0.0.1:5000")
    queue = labeling.find_queue(settings, experiment_id)
    assert link == (
        f"http://127.0.0.1:5000/#/experiments/{experiment_id}/review-queue?selectedQueueId={queue.queue_id}&startReview=true"
    )
