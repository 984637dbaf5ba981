"""Every litellm call (MemAlign's and GEPA's reflection and embeddings, through dspy) is bounded by
the configured timeout and retries, whatever defaults litellm and dspy bring; a provider that
keeps failing ends the run with a sentence naming the model role and the setting to check.
Faults come from the OpenAI-compatible fault server on loopback (tests/faulty_provider.py)."""

import threading
import time

import pytest

from judgeloop.model_calls import llm_limits
from judgeloop.tracing import demo
from judgeloop.settings import load_settings
from judgeloop.stack.store import connect
from tests.faulty_provider import FaultyProvider
from tests.support import failure_text, materialize

TIMEOUT, RETRIES = 2, 2


@pytest.fixture
def limits(home, monkeypatch):
    monkeypatch.setenv("JUDGELOOP_LLM_TIMEOUT_SECONDS", str(TIMEOUT))
    monkeypatch.setenv("JUDGELOOP_LLM_MAX_RETRIES", str(RETRIES))
    for key in ("MLFLOW_GATEWAY_ROUTE_TIMEOUT_SECONDS", "MLFLOW_GENAI_EVAL_MAX_RETRIES"):
        monkeypatch.setenv(key, "unset-by-test")
        monkeypatch.delenv(key)
    llm_limits.apply(load_settings())
    yield
    monkeypatch.undo()
    llm_limits.apply(load_settings())  # back to the defaults for the tests that follow


def _in_thread(call, limit: float):
    """(seconds taken, exception) of ``call``; a call still running after ``limit`` s fails the test."""
    outcome = {}

    def run():
        started = time.monotonic()
        try:
            call()
        except Exception as exc:  # the provider fails: an exception is the expected outcome
            outcome["error"] = exc
        outcome["seconds"] = time.monotonic() - started

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(limit)
    assert not thread.is_alive(), f"the call was still waiting after {limit} s"
    return outcome["seconds"], outcome.get("error")


def test_an_embedding_request_that_never_answers_is_abandoned_at_the_timeout(limits):
    import litellm

    with FaultyProvider({"embeddings": "hang"}) as provider:
        seconds, error = _in_thread(
            lambda: litellm.embedding(model="openai/fake-embedding", input=["a passage"], api_base=provider.base_url, api_key="sk-x"),
            limit=60,  # litellm's own default would wait 600 s per attempt
        )
        requests = provider.requests["embeddings"]
    assert error is not None
    assert requests <= 1 + RETRIES, requests
    assert seconds < (1 + RETRIES) * (TIMEOUT + 8), seconds


def test_a_completion_is_tried_once_plus_the_configured_retries(limits):
    """dspy asks litellm for 3 retries on every call, and the OpenAI client retries on its own."""
    import litellm

    with FaultyProvider({"agent": "500"}) as provider:
        _, error = _in_thread(
            lambda: litellm.completion(
                model="openai/fake-agent", messages=[{"role": "user", "content": "hello"}],
                api_base=provider.base_url, api_key="sk-x", num_retries=3,
            ),
            limit=120,
        )
        requests = provider.requests["agent"]
    assert error is not None
    assert requests == 1 + RETRIES, requests


def test_a_rate_limited_embedding_model_fails_alignment_naming_the_role(limits, home, instance, monkeypatch):
    monkeypatch.setenv("JUDGELOOP_DEMO_ITEMS", "16")
    monkeypatch.setenv("JUDGELOOP_MIN_HELDOUT_LABELS", "1")
    settings = load_settings()
    experiment_id = connect(settings)
    demo.seed(settings, experiment_id)
    assert materialize(instance, ["base_judge", "tagged_traces", "eval_dataset", "labeling_session"]).success
    demo.release_labels(settings, experiment_id, 32)
    with FaultyProvider({"embeddings": "429"}) as provider:
        for key in ("OPENAI_API_BASE", "OPENAI_BASE_URL"):
            monkeypatch.setenv(key, provider.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-dummy-for-the-fake-server")
        monkeypatch.setenv("JUDGELOOP_EMBEDDING_MODEL", "openai:/fake-embedding")
        result = materialize(instance, ["aligned_judge"])
        requests = provider.requests["embeddings"]
    assert not result.success and requests >= 1
    failure = result.failure_data_for_node("aligned_judge")
    message = failure_text(result, "aligned_judge")
    assert failure.error.cls_name == "Failure", message  # a sentence, not a stack of wrapped errors
    assert "embeddings model openai:/fake-embedding" in message and "JUDGELOOP_EMBEDDING_MODEL" in message
    assert "reflection model" not in message  # the role that failed, not every role
    assert "RateLimitError" in message and "JUDGELOOP_LLM_MAX_RETRIES" in message
