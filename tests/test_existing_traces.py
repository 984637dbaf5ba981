"""No agent configured: the experiment's existing (production) traces are scored as they are."""

import pytest

from judgeloop.tracing import feedbackqa, production
from judgeloop.stand_in_models.fake_llm import CALLS
from judgeloop.settings import load_settings
from judgeloop.stack.store import connect
from judgeloop.tracing.traces import QUESTION_TAG, SOURCE_TAG, search_all, tagged_trace_ids
from tests.conftest import feedbackqa_root
from tests.support import materialize, metadata

ITEMS = 12


@pytest.fixture
def seeded(home):
    """12 FeedbackQA items logged as production traces; returns (experiment_id, items, trace ids)."""
    experiment_id = connect(load_settings())
    items = feedbackqa.load_items(feedbackqa_root(), "WHO", limit=ITEMS)
    assert len(items) == ITEMS
    by_key = production.seed_traces(experiment_id, items)
    return experiment_id, items, by_key


def test_seeding_twice_logs_no_duplicates(seeded):
    experiment_id, items, first = seeded
    assert sorted(first) == sorted(item.key for item in items)
    assert len(set(first.values())) == ITEMS
    second = production.seed_traces(experiment_id, items)
    assert second == first
    logged = search_all(experiment_id)
    assert len(logged) == ITEMS
    assert {t.info.tags[SOURCE_TAG] for t in logged} == {"feedbackqa"}
    assert {t.info.trace_id for t in logged} == set(first.values())


def test_existing_traces_are_scored_as_they_are(seeded, instance):
    experiment_id, items, by_key = seeded
    distinct_questions = {item.question for item in items}
    assert len(distinct_questions) < ITEMS  # FeedbackQA repeats questions: records merge below

    result = materialize(instance, selection=["base_judge", "tagged_traces", "eval_dataset", "labeling_session"])
    assert result.success

    traces_md = metadata(result, "tagged_traces")
    assert traces_md["traces_evaluated"] == ITEMS
    assert traces_md["traces_tagged"] == ITEMS
    assert traces_md["agent_errors"] == traces_md["judge_errors"] == 0
    assert sum(r.data["traces"] for r in traces_md["score_distribution"].records) == ITEMS
    assert CALLS["judge"] == ITEMS
    assert CALLS["agent"] == 0  # nothing was answered anew

    # The seeded traces themselves were tagged: no new traces, no copies.
    assert sorted(tagged_trace_ids(experiment_id)) == sorted(by_key.values())
    logged = search_all(experiment_id)
    assert len(logged) == ITEMS
    for trace in logged:
        assert trace.info.tags.get(QUESTION_TAG), trace.info.trace_id
    # Each tagged trace carries the judge's score as an assessment.
    from mlflow import MlflowClient

    client = MlflowClient()
    for trace_id in by_key.values():
        names = {a.name for a in client.get_trace(trace_id).info.assessments or []}
        assert "answer_quality" in names

    dataset_md = metadata(result, "eval_dataset")
    assert dataset_md["source_traces"] == ITEMS
    assert dataset_md["record_count"] == len(distinct_questions)
    assert dataset_md["records_added"] == len(distinct_questions)

    label_md = metadata(result, "labeling_session")
    assert label_md["items_added"] == ITEMS  # every trace is labelled, even repeated questions

    # Rematerializing evaluates nothing and calls no model.
    judge_calls = CALLS["judge"]
    again = materialize(instance, selection=["base_judge", "tagged_traces", "eval_dataset"])
    assert again.success
    again_md = metadata(again, "tagged_traces")
    assert again_md["traces_evaluated"] == 0
    assert again_md["traces_tagged"] == 0
    assert again_md["traces_tagged_total"] == ITEMS
    assert metadata(again, "eval_dataset")["records_added"] == 0
    assert metadata(again, "eval_dataset")["record_count"] == len(distinct_questions)
    assert CALLS["judge"] == judge_calls
    assert len(search_all(experiment_id)) == ITEMS


def test_new_production_traces_are_scored_incrementally(seeded, instance):
    experiment_id, items, _ = seeded
    assert metadata(materialize(instance, selection=["base_judge", "tagged_traces"]), "tagged_traces")["traces_tagged"] == ITEMS

    more = feedbackqa.load_items(feedbackqa_root(), "WHO", limit=ITEMS + 3)
    production.seed_traces(experiment_id, more)
    md = metadata(materialize(instance, selection=["tagged_traces"]), "tagged_traces")
    assert (md["traces_evaluated"], md["traces_tagged"], md["traces_tagged_total"]) == (3, 3, ITEMS + 3)
    assert len(search_all(experiment_id)) == ITEMS + 3
