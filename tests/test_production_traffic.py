"""Only production traffic becomes evaluation data, reaches the review queue or teaches the judge."""

import shutil

import pytest
from mlflow import MlflowClient

from judgeloop.judging import judges
from judgeloop.sme_labels import labels
from judgeloop.tracing import traces, traffic
from judgeloop.settings import load_settings
from judgeloop.stack.store import connect


@pytest.fixture
def store(home, template):
    shutil.copytree(template[0], home)
    settings = load_settings()
    assert connect(settings) == template[1]
    return settings, template[1], template[2]


def optimizer_call(question: str) -> str:
    """One agent run made while optimizing a prompt, traced as GEPA's are."""
    return traffic.marked_as_optimizer(lambda question: f"candidate answer to {question}")(question=question)


def last_trace_id(experiment_id: str) -> str:
    return max(traces.search_all(experiment_id), key=lambda t: t.info.timestamp_ms).info.trace_id


def test_optimizer_traffic_is_marked_and_never_tagged_or_queued(store):
    settings, experiment_id, production_ids = store
    optimizer_call("How does the virus spread?")
    marked = last_trace_id(experiment_id)
    assert traffic.optimizer_trace_ids(experiment_id) == {marked}
    # Even a trace tagged complete (by an older version, or by hand) stays out of the dataset and queue.
    MlflowClient().set_trace_tag(marked, traces.EVAL_TAG, traces.EVAL_COMPLETE)
    MlflowClient().set_trace_tag(production_ids[0], traces.EVAL_TAG, traces.EVAL_COMPLETE)
    assert traces.tagged_trace_ids(experiment_id) == [production_ids[0]]


def test_tagged_traces_scores_production_traffic_only(store):
    settings, experiment_id, production_ids = store
    optimizer_call("Should I wear a mask?")
    marked = last_trace_id(experiment_id)
    version = judges.ensure_base_judge(settings, experiment_id, settings.judge_model).version
    report = traces.evaluate_and_tag(experiment_id, judges.load(experiment_id, settings.judge_name, version))
    assert report.evaluated == len(production_ids)
    assert marked not in report.tagged_trace_ids
    assert sorted(traces.tagged_trace_ids(experiment_id)) == sorted(report.tagged_trace_ids)


def test_labels_count_on_production_traces_only(store):
    settings, experiment_id, production_ids = store
    optimizer_call("Can pets carry the virus?")
    marked = last_trace_id(experiment_id)
    # Neither trace is in a review queue or the dataset: a production trace's label still counts.
    labels.log_label(production_ids[0], settings.judge_name, 3, "rater-1")
    labels.log_label(marked, settings.judge_name, 4, "rater-1")
    current, rejected = labels.current_labels(settings, experiment_id)
    assert [label.trace_id for label in current] == [production_ids[0]]
    assert [(r.trace_id, r.reason) for r in rejected] == [(marked, "the trace is prompt-optimization traffic, not production")]
