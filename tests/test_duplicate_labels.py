"""Two valid labels for one (trace, reviewer), as concurrent writers leave them: read as one, repaired to one.

The two-process version (two ``labels import`` runs against one server) is in
tests/test_concurrent_label_imports.py.
"""

from mlflow import MlflowClient

from judgeloop.sme_labels import duplicate_labels, labels, waiting
from judgeloop.cli import main
from judgeloop.sme_labels.labels import log_label


def valid_labels(settings, trace_ids) -> list:
    client = MlflowClient()
    return [
        a for tid in trace_ids for a in client.get_trace(tid).info.assessments or []
        if a.name == settings.judge_name and a.source.source_type == "HUMAN" and a.valid is not False
    ]


def test_a_duplicate_counts_once_as_the_newest(template_store):
    settings, experiment_id, (t1, t2, *_) = template_store
    log_label(t1, settings.judge_name, 2, "rater-1", "first writer")
    newest = log_label(t1, settings.judge_name, 4, "rater-1", "second writer")
    log_label(t2, settings.judge_name, 3, "rater-1")
    assert len(valid_labels(settings, [t1])) == 2  # the store holds the duplicate

    current, _ = labels.current_labels(settings, experiment_id)
    assert [(label.trace_id, label.value) for label in current if label.trace_id == t1] == [(t1, 4)]
    assert {label.assessment_id for label in current} >= {newest}
    assert len(current) == 2
    # The sensor's count (and `judgeloop status`'s): current labels only.
    assert waiting.waiting_labels(settings, experiment_id, labels.Cursor()).count == 2


def test_repair_invalidates_all_but_the_newest(template_store):
    settings, experiment_id, (t1, t2, *_) = template_store
    log_label(t1, settings.judge_name, 1, "rater-1")
    log_label(t1, settings.judge_name, 2, "rater-1")
    newest = log_label(t1, settings.judge_name, 3, "rater-1")
    other = log_label(t1, settings.judge_name, 4, "rater-2")  # another reviewer: not a duplicate

    assert duplicate_labels.repair(settings, experiment_id) == 2
    assert sorted(a.assessment_id for a in valid_labels(settings, [t1])) == sorted([newest, other])
    assert duplicate_labels.repair(settings, experiment_id) == 0  # nothing left to repair
    markers = [a for a in MlflowClient().get_trace(t1).info.assessments if a.name == duplicate_labels.SUPERSEDED]
    assert {m.value for m in markers} == {newest}
    # The marker is no label: export and the sensor see one label per reviewer.
    assert len(labels.current_labels(settings, experiment_id)[0]) == 2


def test_an_import_repairs_duplicates_another_writer_left(template_store, tmp_path, capsys):
    settings, experiment_id, (t1, t2, *_) = template_store
    log_label(t1, settings.judge_name, 2, "rater-1")
    log_label(t1, settings.judge_name, 4, "rater-1")
    path = tmp_path / "labels.csv"
    path.write_text(f"trace_id,value,comment,reviewer\n{t2},3,,rater-1\n")
    assert main(["labels", "import", str(path)]) == 0, capsys.readouterr().err
    assert [a.value for a in valid_labels(settings, [t1])] == [4]
    assert len(valid_labels(settings, [t2])) == 1
