"""Tokens and estimated cost per LLM role, counted from the providers' usage fields."""

from types import SimpleNamespace

import pytest
from mlflow import MlflowClient

from judgeloop.judging import judges, scores
from judgeloop.model_calls import usage
from judgeloop.settings import load_settings


@pytest.fixture
def store(template_store):
    return template_store


def test_judge_tokens_through_the_fake_provider(store):
    settings, _, trace_ids = store
    judge = judges.build_judge(settings, settings.judge_model)
    traces = [MlflowClient().get_trace(t) for t in trace_ids[:3]]
    with usage.record(settings) as ledger:
        assert len(scores.call_judge(settings, judge, traces).values) == 3
    # The fake provider reports 10 prompt and 10 completion tokens per call; it has no price.
    assert ledger.rows() == [
        {"role": "judge", "model": "fake/judge", "calls": 3, "input_tokens": 30, "output_tokens": 30, "cost_usd": "unknown"}
    ]
    assert ledger.total_cost() is None
    # Outside the block nothing is recorded.
    scores.call_judge(settings, judge, traces[:1])
    assert ledger.rows()[0]["calls"] == 3


def test_known_prices_and_missing_usage(home):
    settings = load_settings(judge_model="openai:/gpt-4.1-mini")
    ledger = usage.Ledger(settings)
    ledger("completion", "openai/gpt-4.1-mini", SimpleNamespace(usage=SimpleNamespace(prompt_tokens=1000, completion_tokens=1000)))
    row = ledger.rows()[0]
    assert row["role"] == "judge" and row["input_tokens"] == 1000
    assert float(row["cost_usd"]) == pytest.approx(usage.price("gpt-4.1-mini", 1000, 1000)) and float(row["cost_usd"]) > 0
    # A provider that returns no usage: the tokens (and so the cost) are unknown, not zero.
    ledger("completion", "openai/gpt-4.1-mini", SimpleNamespace(usage=None))
    row = ledger.rows()[0]
    assert row["calls"] == 2 and row["input_tokens"] == "unknown" and row["cost_usd"] == "unknown"


def test_counting_calls_imports_no_litellm_yet_counts_once_something_imports_it():
    import subprocess
    import sys

    script = """
import sys
from judgeloop.model_calls import calls
with calls.count_litellm_calls() as counts:
    assert "litellm" not in sys.modules, "counting imported litellm"
    from judgeloop.stand_in_models.fake_llm import register_litellm_provider
    register_litellm_provider()  # imports litellm: the counting wrappers go in now
    import litellm
    litellm.completion(model="fake/judge", messages=[{"role": "user", "content": "hello"}])
    litellm.embedding(model="fake/embedding", input=["a", "b"])
print(counts["completion"], counts["embedding"])
"""
    env = {"LITELLM_LOCAL_MODEL_COST_MAP": "True", "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["1", "1"]
