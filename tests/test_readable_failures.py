"""Expected failures show their own message first (a Dagster Failure); real bugs keep their traceback."""

import pytest

from judgeloop.judging import judges
from tests.support import materialize


def test_missing_model_fails_with_its_message_and_no_traceback(home, instance, monkeypatch):
    monkeypatch.delenv("JUDGELOOP_JUDGE_MODEL")
    result = materialize(instance, ["base_judge"])
    assert not result.success
    failure = result.failure_data_for_node("base_judge")
    # Dagster shows a Failure's description as the run's error, and its metadata beside it.
    assert failure.user_failure_data is not None
    assert failure.user_failure_data.description.startswith("No judge model is configured: set JUDGELOOP_JUDGE_MODEL")
    meta = failure.user_failure_data.metadata
    assert meta["reason"].value == "model not configured"
    assert "re-run" in meta["what to do"].value
    # No wrapped user exception under it: the sentence is not buried below a chain of frames.
    assert failure.error.cls_name == "Failure"
    assert failure.error.cause is None
    assert not (home / "mlflow.db").exists()  # and nothing was written


def test_not_enough_labels_is_a_failure_with_metadata(home, instance):
    assert materialize(instance, ["base_judge"]).success
    result = materialize(instance, ["aligned_judge"])
    failure = result.failure_data_for_node("aligned_judge")
    assert failure.user_failure_data.metadata["reason"].value == "not enough labels"
    assert "Label more traces" in failure.user_failure_data.description
    assert failure.error.cause is None


def test_a_real_bug_still_shows_its_traceback(home, instance, monkeypatch):
    def broken(*args, **kwargs):
        return {}["missing key"]  # a programming error, not an expected condition

    monkeypatch.setattr(judges, "ensure_base_judge", broken)
    result = materialize(instance, ["base_judge"])
    failure = result.failure_data_for_node("base_judge")
    assert failure.user_failure_data is None
    chain, error = [], failure.error
    while error is not None:
        chain.append(error)
        error = error.cause
    assert any(e.cls_name == "KeyError" for e in chain)
    assert any("ensure_base_judge" in "".join(e.stack) or "broken" in "".join(e.stack) for e in chain)


@pytest.mark.parametrize("name", ["APIConnectionError", "Timeout"])
def test_provider_unreachable_is_expected(name):
    from judgeloop_assets.failures import as_failure

    cls = type(name, (Exception,), {"__module__": "litellm.exceptions"})
    failure = as_failure(cls("Connection refused: http://127.0.0.1:9/v1"))
    assert failure is not None and failure.metadata["reason"].value == "provider unreachable"
    assert as_failure(KeyError("x")) is None
