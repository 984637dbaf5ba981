"""The first four assets, materialized with Dagster against a real sqlite MLflow store."""

import dagster as dg
import mlflow
import pytest

from judgeloop.judging import judges
from judgeloop.sme_labels import labeling
from judgeloop.tracing import traces
from judgeloop.stand_in_models.fake_llm import CALLS
from judgeloop.settings import load_settings
from judgeloop.stack.store import connect
from judgeloop_assets.definitions import FOUNDATION
from judgeloop_assets.resources import JudgeloopConfig


def materialize(instance, selection=None):
    return dg.materialize(
        FOUNDATION, selection=selection, resources={"judgeloop": JudgeloopConfig()}, instance=instance, raise_on_error=False
    )


def metadata(result, asset):
    mats = result.asset_materializations_for_node(asset)
    assert mats, f"{asset} was not materialized"
    return {k: v.value for k, v in mats[-1].metadata.items()}


@pytest.fixture
def agent_env(monkeypatch, questions_file):
    monkeypatch.setenv("JUDGELOOP_AGENT", "tests.agents:echo_agent")
    monkeypatch.setenv("JUDGELOOP_QUESTIONS_PATH", str(questions_file))
    monkeypatch.setenv("JUDGELOOP_REVIEWERS", "alice,bob")


def test_four_assets_land_in_mlflow(home, instance, agent_env):
    result = materialize(instance)
    assert result.success

    judge_md = metadata(result, "base_judge")
    assert judge_md["judge_name"] == "answer_quality"
    assert judge_md["judge_version"] == 1
    assert judge_md["model_uri"] == "fake:/judge"
    assert "{{ inputs }}" in judge_md["instructions"]

    traces_md = metadata(result, "tagged_traces")
    assert (traces_md["traces_evaluated"], traces_md["traces_tagged"]) == (4, 4)
    assert traces_md["agent_errors"] == traces_md["judge_errors"] == 0
    assert sum(r.data["traces"] for r in traces_md["score_distribution"].records) == 4

    dataset_md = metadata(result, "eval_dataset")
    assert dataset_md["record_count"] == 4 and dataset_md["records_added"] == 4

    label_md = metadata(result, "labeling_session")
    assert label_md["schema_name"] == "answer_quality"
    assert label_md["items_added"] == 4 and label_md["items_pending"] == 4
    assert "review-queue?selectedQueueId=" in label_md["labeling_url"]

    check = result.get_asset_check_evaluations()[0]
    assert check.passed

    # What landed in MLflow itself.
    settings = load_settings()
    experiment_id = connect(settings)
    assert judges.latest_version(experiment_id, "answer_quality") == 1
    tagged = traces.tagged_trace_ids(experiment_id)
    assert len(tagged) == 4
    items = labeling.queue_items(label_md["queue_id"])
    assert sorted(i.item_id for i in items) == sorted(tagged)
    from mlflow.genai import review_queues

    queue = review_queues.get_review_queue(queue_id=label_md["queue_id"])
    assert sorted(queue.users) == ["alice", "bob"]
    assert CALLS["judge"] == 4


def test_rematerializing_twice_creates_no_duplicates(home, instance, agent_env):
    assert materialize(instance).success
    judge_calls = CALLS["judge"]
    second = materialize(instance)
    third = materialize(instance)
    assert second.success and third.success
    for result in (second, third):
        assert metadata(result, "base_judge")["judge_version"] == 1
        assert metadata(result, "base_judge")["new_version"] is False
        assert metadata(result, "tagged_traces")["traces_evaluated"] == 0
        assert metadata(result, "tagged_traces")["traces_tagged_total"] == 4
        assert metadata(result, "eval_dataset")["records_added"] == 0
        assert metadata(result, "eval_dataset")["record_count"] == 4
        assert metadata(result, "labeling_session")["items_added"] == 0
    assert CALLS["judge"] == judge_calls  # nothing re-scored

    experiment_id = connect(load_settings())
    assert judges.latest_version(experiment_id, "answer_quality") == 1
    assert len(mlflow.search_traces(locations=[experiment_id], return_type="list")) == 4
    from mlflow.genai import datasets

    assert len(datasets.search_datasets(experiment_ids=[experiment_id], filter_string="name = 'judgeloop-eval'")) == 1


def test_changed_instructions_make_a_new_judge_version(home, instance, agent_env, monkeypatch):
    assert materialize(instance, selection=["base_judge"]).success
    monkeypatch.setenv("JUDGELOOP_JUDGE_INSTRUCTIONS", "Is {{ outputs }} a polite answer to {{ inputs }}?")
    result = materialize(instance, selection=["base_judge"])
    assert metadata(result, "base_judge")["judge_version"] == 2
    experiment_id = connect(load_settings())
    assert judges.promoted_version(experiment_id) == 2
