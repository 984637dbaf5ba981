"""The real openai:/ client path, against the fake OpenAI-compatible server on loopback."""

import dagster as dg
import socket

import pytest

from judgeloop.stand_in_models.fake_llm import CALLS, FakeOpenAIServer
from judgeloop.settings import load_settings
from judgeloop.stack.store import connect
from judgeloop.tracing.traces import tagged_trace_ids
from tests.support import openai_judge_and_agent, failure_text, materialize, materialized, metadata

QUESTIONS = [
    "How does the virus spread between people?",
    "Should I wear a mask when I am sick?",
    "How long is the incubation period?",
]


@pytest.fixture
def openai_env(monkeypatch, home, tmp_path):
    openai_judge_and_agent(monkeypatch, tmp_path, QUESTIONS)

    def point_at(base_url: str):
        monkeypatch.setenv("OPENAI_API_BASE", base_url)
        monkeypatch.setenv("OPENAI_BASE_URL", base_url)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-dummy-for-the-fake-server")

    return point_at


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_judge_calls_go_over_http(openai_env, home, instance):
    with FakeOpenAIServer(port=0) as server:
        openai_env(server.base_url)
        result = materialize(instance, selection=["base_judge", "tagged_traces"])
        requests = dict(server.requests)

    assert result.success
    judge_md = metadata(result, "base_judge")
    assert judge_md["model_uri"] == "openai:/fake-judge"
    traces_md = metadata(result, "tagged_traces")
    assert traces_md["judge_errors"] == 0, traces_md["first_errors"]
    assert traces_md["traces_tagged"] == len(QUESTIONS)

    # One chat completion per question, all of them through the HTTP server, none in-process.
    assert requests.get("/v1/chat/completions") == len(QUESTIONS), requests
    assert CALLS["judge"] == len(QUESTIONS)  # the server's brain answered them
    assert len(tagged_trace_ids(connect(load_settings()))) == len(QUESTIONS)


def test_unreachable_server_fails_before_anything_is_written(openai_env, home, instance):
    port = closed_port()
    openai_env(f"http://127.0.0.1:{port}/v1")

    with pytest.raises(dg.Failure, match="OPENAI_API_BASE") as raised:
        materialize(instance, selection=["base_judge"], raise_on_error=True)
    assert f"127.0.0.1:{port}" in str(raised.value)

    result = materialize(instance)
    assert not result.success
    assert "OPENAI_API_BASE" in failure_text(result, "base_judge")
    assert not materialized(result, "tagged_traces")
    assert not (home / "mlflow.db").exists()
    assert CALLS["total"] == 0
