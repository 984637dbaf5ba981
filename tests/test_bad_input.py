"""Bad input and bad configuration: clear errors, raised before anything is written, or counted
per trace when only some traces fail."""

import dagster as dg
import pytest
from pydantic import ValidationError

from judgeloop.stand_in_models.fake_llm import CALLS
from judgeloop.tracing.questions import BadInputError
from judgeloop.settings import load_settings
from judgeloop.stack.store import connect
from judgeloop.tracing.traces import tagged_trace_ids
from tests.support import failure_text, materialize, materialized, metadata, trace_count


def write_questions(path, questions):
    path.write_text("".join(f'{{"question": "{q}"}}\n' for q in questions))
    return path


@pytest.fixture
def agent(monkeypatch, tmp_path):
    """Point the agent at a fresh questions file; returns a function that sets agent + questions."""

    def use(spec, questions):
        monkeypatch.setenv("JUDGELOOP_AGENT", spec)
        monkeypatch.setenv("JUDGELOOP_QUESTIONS_PATH", str(write_questions(tmp_path / "questions.jsonl", questions)))

    return use


def test_empty_question_fails_naming_the_record_and_writes_no_traces(home, instance, agent):
    agent(
        "tests.agents:echo_agent",
        ["How does the virus spread?", "Should I wear a mask?", "   ", "Can pets carry it?"],
    )
    result = materialize(instance)

    assert not result.success
    assert materialized(result, "base_judge")
    assert not materialized(result, "tagged_traces")
    assert not materialized(result, "eval_dataset") and not materialized(result, "labeling_session")
    error = failure_text(result, "tagged_traces")
    assert "BadInputError" in error
    assert "questions.jsonl record 3: field 'question' is empty" in error
    # Only the bad record is named.
    assert "record 1" not in error and "record 2" not in error and "record 4" not in error

    assert trace_count(connect(load_settings())) == 0
    assert CALLS["judge"] == 0 and CALLS["total"] == 0


def test_non_object_record_is_named(home, instance, monkeypatch, tmp_path):
    path = tmp_path / "questions.jsonl"
    path.write_text('{"question": "How does the virus spread?"}\n["not", "an", "object"]\n{"text": "no question"}\n')
    monkeypatch.setenv("JUDGELOOP_AGENT", "tests.agents:echo_agent")
    monkeypatch.setenv("JUDGELOOP_QUESTIONS_PATH", str(path))
    result = materialize(instance, selection=["base_judge", "tagged_traces"])
    error = failure_text(result, "tagged_traces")
    assert "questions.jsonl record 2: expected an object with a 'question' field, got list" in error
    assert "questions.jsonl record 3: field 'question' is empty or missing" in error
    assert trace_count(connect(load_settings())) == 0


def test_broken_jsonl_line_is_named(home, instance, monkeypatch, tmp_path):
    path = tmp_path / "questions.jsonl"
    path.write_text('{"question": "How does the virus spread?"}\n{"question": "unterminated\n')
    monkeypatch.setenv("JUDGELOOP_AGENT", "tests.agents:echo_agent")
    monkeypatch.setenv("JUDGELOOP_QUESTIONS_PATH", str(path))
    with pytest.raises(BadInputError, match=r"questions.jsonl line 2: not valid JSON"):
        materialize(instance, selection=["base_judge", "tagged_traces"], raise_on_error=True)
    assert trace_count(connect(load_settings())) == 0
    assert CALLS["total"] == 0


def test_agent_errors_are_counted_and_those_traces_not_tagged(home, instance, agent):
    questions = [
        "How does the virus spread between people?",
        "What happens if the lab samples explode?",
        "Should I wear a mask when I am sick?",
        "Will the vaccine explode in my arm?",
    ]
    agent("tests.agents:flaky_agent", questions)
    result = materialize(instance, selection=["base_judge", "tagged_traces"])
    assert result.success

    md = metadata(result, "tagged_traces")
    assert md["traces_evaluated"] == 4
    assert md["agent_errors"] == 2
    assert md["judge_errors"] == 0
    assert md["traces_tagged"] == 2
    assert "agent failed on 'What happens if the lab samples explode?'" in md["first_errors"]
    assert "agent failed on 'Will the vaccine explode in my arm?'" in md["first_errors"]
    assert "the agent cannot answer" in md["first_errors"]  # the exception's own message

    from mlflow import MlflowClient

    experiment_id = connect(load_settings())
    client = MlflowClient()
    tagged_questions = sorted(
        client.get_trace(tid).data.spans[0].inputs["question"] for tid in tagged_trace_ids(experiment_id)
    )
    assert tagged_questions == sorted(q for q in questions if "explode" not in q)

    # The failed questions are asked again on the next run (they never completed); the others not.
    again = metadata(materialize(instance, selection=["tagged_traces"]), "tagged_traces")
    assert (again["traces_evaluated"], again["agent_errors"], again["traces_tagged"]) == (2, 2, 0)
    assert again["traces_tagged_total"] == 2


def test_unparseable_judge_answers_tag_nothing(home, instance, agent, monkeypatch):
    questions = ["How does the virus spread?", "Should I wear a mask?", "Can pets carry it?"]
    agent("tests.agents:echo_agent", questions)
    monkeypatch.setenv("JUDGELOOP_JUDGE_MODEL", "fake:/garbage")
    result = materialize(instance)

    # Not one usable score: tagged_traces fails naming the role, the model and the parse error,
    # and nothing downstream runs on an empty set.
    assert not result.success
    text = failure_text(result, "tagged_traces")
    assert "judge model fake:/garbage" in text and "JUDGELOOP_JUDGE_MODEL" in text
    assert PARSE_ERROR in text
    assert CALLS["garbage"] >= len(questions)
    assert tagged_trace_ids(connect(load_settings())) == []
    assert not materialized(result, "eval_dataset") and not materialized(result, "labeling_session")


# What MLflow's judge adapter reports when the model's answer is not the JSON it asked for.
PARSE_ERROR = "Failed to parse"


def test_unknown_feedback_type_fails_before_anything_is_written(home, instance, agent, monkeypatch):
    agent("tests.agents:echo_agent", ["How does the virus spread?"])
    monkeypatch.setenv("JUDGELOOP_FEEDBACK_TYPE", "bogus")
    result = materialize(instance)

    assert not result.success
    assert not any(materialized(result, a) for a in ("base_judge", "tagged_traces", "eval_dataset", "labeling_session"))
    error = failure_text(result, "base_judge")
    assert "feedback_type" in error
    assert "'bogus'" in error
    assert "'likert', 'pass_fail' or 'categorical'" in error
    assert not (home / "mlflow.db").exists()
    assert not home.exists()
    assert CALLS["total"] == 0

    with pytest.raises(ValidationError, match="feedback_type"):
        materialize(instance, selection=["base_judge"], raise_on_error=True)


def test_missing_judge_model_fails_naming_the_setting(home, instance, agent, monkeypatch):
    agent("tests.agents:echo_agent", ["How does the virus spread?"])
    monkeypatch.delenv("JUDGELOOP_JUDGE_MODEL")
    with pytest.raises(dg.Failure, match="JUDGELOOP_JUDGE_MODEL") as raised:
        materialize(instance, selection=["base_judge"], raise_on_error=True)
    assert "No judge model is configured" in str(raised.value)

    result = materialize(instance)
    assert not result.success
    assert "No judge model is configured" in failure_text(result, "base_judge")
    assert not materialized(result, "tagged_traces")
    assert not (home / "mlflow.db").exists()
    assert not home.exists()
    assert CALLS["total"] == 0


@pytest.mark.parametrize(
    ("feedback_type", "extra_env", "expected_input", "expected_scores"),
    [
        ("pass_fail", {}, "InputPassFail", {"True", "False"}),
        (
            "categorical",
            {"JUDGELOOP_CATEGORIES": "Wrong,Partly right,Right"},
            "InputCategorical['Wrong', 'Partly right', 'Right']",
            {"Wrong", "Partly right", "Right"},
        ),
    ],
)
def test_other_feedback_types_build_matching_schema(
    home, instance, agent, monkeypatch, feedback_type, extra_env, expected_input, expected_scores
):
    from mlflow.genai import label_schemas
    from mlflow.genai.label_schemas import InputCategorical, InputPassFail

    agent(
        "tests.agents:echo_agent",
        ["How does the virus spread between people?", "Should I wear a mask when I am sick?", "Can pets carry the virus?"],
    )
    monkeypatch.setenv("JUDGELOOP_FEEDBACK_TYPE", feedback_type)
    for key, value in extra_env.items():
        monkeypatch.setenv(key, value)
    result = materialize(instance)
    assert result.success

    judge_md = metadata(result, "base_judge")
    assert judge_md["feedback_type"] == feedback_type
    traces_md = metadata(result, "tagged_traces")
    assert traces_md["traces_tagged"] == 3 and traces_md["judge_errors"] == 0
    scores = {r.data["score"] for r in traces_md["score_distribution"].records}
    assert scores and scores <= expected_scores

    label_md = metadata(result, "labeling_session")
    assert label_md["schema_name"] == "answer_quality"
    assert label_md["items_added"] == 3

    [check] = result.get_asset_check_evaluations()
    assert check.check_name == "schema_matches_judge"
    assert check.passed
    assert check.metadata["schema_input"].value == expected_input

    schema = label_schemas.get_label_schema("answer_quality", experiment_id=connect(load_settings()))
    if feedback_type == "pass_fail":
        assert isinstance(schema.input, InputPassFail)
    else:
        assert isinstance(schema.input, InputCategorical)
        assert list(schema.input.options) == ["Wrong", "Partly right", "Right"]
