"""The calls aligned_judge reports are the calls the provider received: stored scores read back
are counted apart, never as calls, and a judge scored on no trace is unmeasured, not kappa 0."""

import pytest

from judgeloop.tracing import demo
from judgeloop.stand_in_models.fake_llm import FakeOpenAIServer
from judgeloop.settings import load_settings
from judgeloop.stack.store import connect
from tests.support import accept_any_split, materialize, metadata

FOUNDATION = ["base_judge", "tagged_traces", "eval_dataset", "labeling_session"]


@pytest.fixture
def every_role_over_http(home, monkeypatch):
    for key in ("OPENAI_API_BASE", "OPENAI_BASE_URL", "OPENAI_API_KEY", "OPENAI_ORGANIZATION", "OPENAI_API_TYPE"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("JUDGELOOP_DEMO_ITEMS", "24")
    monkeypatch.setenv("JUDGELOOP_GATE_MARGIN", "2.0")  # about counting, not the gate
    accept_any_split(monkeypatch)
    with FakeOpenAIServer(port=0) as server:
        monkeypatch.setenv("OPENAI_API_BASE", server.base_url)
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-dummy-for-the-fake-server")
        monkeypatch.setenv("JUDGELOOP_JUDGE_MODEL", "openai:/fake-judge")
        monkeypatch.setenv("JUDGELOOP_REFLECTION_MODEL", "openai:/fake-reflection")
        monkeypatch.setenv("JUDGELOOP_EMBEDDING_MODEL", "openai:/text-embedding-3-small")
        yield server


def test_reported_calls_equal_the_calls_the_server_received(every_role_over_http, instance):
    server = every_role_over_http
    settings = load_settings()
    experiment_id = connect(settings)
    demo.seed(settings, experiment_id)
    assert materialize(instance, FOUNDATION).success
    assert demo.release_labels(settings, experiment_id, 32).written == 32

    def received() -> int:
        return server.requests["/v1/chat/completions"] + server.requests["/v1/embeddings"]

    before = received()
    result = materialize(instance, ["aligned_judge"])
    assert result.success
    meta = metadata(result, "aligned_judge")
    made = received() - before
    assert made > 0
    assert meta["llm_calls"] == made, (meta["llm_calls"], dict(server.requests))
    # The base judge's scores from tagged_traces were read back, not paid for: reported apart.
    details = {row.data["name"]: row.data["value"] for row in meta["details"].records}
    assert int(details["judge_scores_reused"]) > 0
    assert int(details["llm_measure_judge_calls"]) == meta["traces_heldout_sample"]  # only the new judge paid


def test_a_judge_scored_on_no_trace_is_unmeasured(home, monkeypatch):
    from judgeloop.judging import alignment, scores

    settings = load_settings()
    nothing = alignment.agreement_of(settings, scores.Scores(invalid_answers={"t1": "answer 'x' is not a number"}), {})
    assert nothing.n == 0 and nothing.kappa is None and nothing.exact is None
    assert "unmeasured" in alignment.kappa_text(nothing)
