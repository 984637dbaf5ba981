"""Every LLM call is bounded (timeout, retries with back-off), every run has a maximum run time,
and a failing provider ends a run with a message naming the provider, the role and what to check.
The faults come from a fake OpenAI-compatible provider on loopback (tests/faulty_provider.py)."""

import pytest

from judgeloop.model_calls import llm_limits
from judgeloop.settings import load_settings
from tests.faulty_provider import FaultyProvider
from tests.support import openai_judge_and_agent, failure_text, materialize, materialized

QUESTIONS = ["How does the virus spread between people?"]


@pytest.fixture
def openai_env(monkeypatch, home, tmp_path):
    openai_judge_and_agent(monkeypatch, tmp_path, QUESTIONS)
    monkeypatch.setenv("JUDGELOOP_LLM_TIMEOUT_SECONDS", "2")
    monkeypatch.setenv("JUDGELOOP_LLM_MAX_RETRIES", "1")
    # What apply() sets for MLflow is process-wide: put it back after the test.
    for key in ("MLFLOW_GATEWAY_ROUTE_TIMEOUT_SECONDS", "MLFLOW_GENAI_EVAL_MAX_RETRIES"):
        monkeypatch.setenv(key, "unset-by-test")
        monkeypatch.delenv(key)

    def point_at(base_url: str):
        monkeypatch.setenv("OPENAI_API_BASE", base_url)
        monkeypatch.setenv("OPENAI_BASE_URL", base_url)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-dummy-for-the-fake-server")

    yield point_at
    llm_limits.apply(load_settings())  # back to the defaults for the tests that follow


@pytest.mark.parametrize("fault", ["429", "hang"])
def test_a_failing_judge_provider_fails_the_run_in_bounded_time_with_a_named_message(openai_env, instance, fault):
    with FaultyProvider({"judge": fault}) as provider:
        openai_env(provider.base_url)
        result = materialize(instance, selection=["base_judge", "tagged_traces"])
        requests, span = provider.requests["judge"], provider.span("judge")
    assert not result.success and not materialized(result, "tagged_traces")
    message = failure_text(result, "tagged_traces")
    assert "judge model openai:/fake-judge" in message and "provider openai" in message
    assert "OPENAI_API_BASE" in message and provider.base_url in message
    assert "JUDGELOOP_LLM_TIMEOUT_SECONDS" in message
    # Unbounded, MLflow sends 11 requests per call over about three minutes (back-off up to 30 s).
    # Bounded: 1 + 1 retry per call, evaluate's own rate-limit retry at most doubling that, and
    # the client gives up on a hanging request after 2 s. Timed at the server, so a loaded
    # machine's slow imports do not count.
    assert 2 <= requests <= len(QUESTIONS) * 2 * 2, requests
    assert span < 30, span


def test_judge_client_retries_are_clamped_to_the_setting(monkeypatch, home):
    """Contract with the pinned MLflow: its judge adapters take their retry count from this input."""
    from mlflow.genai.judges.adapters.base_adapter import AdapterInvocationInput

    monkeypatch.setenv("JUDGELOOP_LLM_MAX_RETRIES", "1")
    llm_limits.apply(load_settings())
    try:
        clamped = AdapterInvocationInput(model_uri="openai:/m", prompt="p", assessment_name="a", num_retries=10)
        assert clamped.num_retries == 1
    finally:
        monkeypatch.delenv("JUDGELOOP_LLM_MAX_RETRIES")
        llm_limits.apply(load_settings())


def test_every_job_carries_a_maximum_run_time(monkeypatch):
    from judgeloop_assets.definitions import defs

    for job in defs.resolve_all_job_defs():
        if job.name.startswith("__"):
            continue
        assert job.tags.get("dagster/max_runtime") == str(load_settings().max_run_seconds), job.name


def test_dagster_instance_enforces_run_time_limits(tmp_path):
    from judgeloop.stack.servers import write_dagster_yaml

    write_dagster_yaml(tmp_path)
    assert "run_monitoring:\n  enabled: true" in (tmp_path / "dagster.yaml").read_text()


def test_litellm_gets_the_limits_when_something_imports_it_later(tmp_path):
    """Putting the limits in place does not import litellm (seconds a run with natively called
    models never needs); whoever imports it afterwards finds them set."""
    import os
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from judgeloop.model_calls import llm_limits\n"
        "from judgeloop.settings import load_settings\n"
        "llm_limits.apply(load_settings())\n"
        "print('litellm' in sys.modules)\n"
        "import litellm\n"
        "print(litellm.request_timeout, litellm.embedding._judgeloop_bounded)\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("JUDGELOOP_")}
    env.update(JUDGELOOP_HOME=str(tmp_path / "state"), JUDGELOOP_LLM_TIMEOUT_SECONDS="7", JUDGELOOP_LLM_MAX_RETRIES="1")
    done = subprocess.run([sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[:2] == ["False", "7.0 True"]
