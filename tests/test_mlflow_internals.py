"""Contract tests, against the pinned MLflow (and litellm), for what judgeloop relies on past their
public APIs and has no other contract test: the litellm call wrappers, the judge retry clamp, and
the prompt wording the offline stand-in model recognises. (MLflow's tables, the sqlite store,
MemAlign's memory members and the prompt override: tests/test_mlflow_schema.py, test_sqlite_store.py.)
"""

import dataclasses
import json
import os
import subprocess
import sys
from types import SimpleNamespace

import pytest


@pytest.fixture(autouse=True)
def offline_litellm(monkeypatch):
    # dspy imports litellm, which would otherwise spend seconds trying to download a price list.
    monkeypatch.setenv("LITELLM_LOCAL_MODEL_COST_MAP", "True")


def test_litellm_calls_are_counted_and_bounded_when_litellm_is_imported_after_both_asked(tmp_path):
    """Limits and counting are both asked for before anything imports litellm: one import hook
    installs both wrappers the moment litellm has loaded, and a call is counted once."""
    code = (
        "import sys\n"
        "from judgeloop.model_calls import calls, llm_limits\n"
        "from judgeloop.mlflow_internals import litellm_hooks\n"
        "from judgeloop.settings import load_settings\n"
        "llm_limits.apply(load_settings())\n"
        "with calls.count_litellm_calls() as counts:\n"
        "    hooks = sum(isinstance(f, type(litellm_hooks._HOOK)) for f in sys.meta_path)\n"
        "    print('litellm' in sys.modules, hooks)\n"
        "    import litellm\n"
        "    from judgeloop.stand_in_models import fake_llm\n"
        "    fake_llm.register_litellm_provider()\n"
        "    litellm.completion(model='fake/agent', messages=[{'role': 'user', 'content': 'Question: why? Passage: Because.'}])\n"
        "    for name in litellm_hooks.CALLS:\n"
        "        function = getattr(litellm, name)\n"
        "        assert function._judgeloop_bounded and function._judgeloop_counted, name\n"
        "    print(litellm.request_timeout, counts['completion'])\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("JUDGELOOP_")}
    env.update(JUDGELOOP_HOME=str(tmp_path / "state"), JUDGELOOP_LLM_TIMEOUT_SECONDS="7", JUDGELOOP_LLM_MAX_RETRIES="1")
    done = subprocess.run([sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[:2] == ["False 1", "7.0 1"]


def test_the_judge_retry_clamp_finds_its_field():
    from mlflow.genai.judges.adapters.base_adapter import AdapterInvocationInput

    assert dataclasses.is_dataclass(AdapterInvocationInput)
    assert "num_retries" in {field.name for field in dataclasses.fields(AdapterInvocationInput)}


def test_memalign_distillation_prompt_has_the_wording_the_stand_in_answers():
    """fake_llm answers a MemAlign distillation request by its wording and reads the examples'
    ids and results from it: rendered as MemAlign renders it, one guideline per distinct result."""
    import dspy
    from jinja2 import Template
    from mlflow.genai.judges.optimizers.memalign.prompts import DISTILLATION_PROMPT_TEMPLATE

    from judgeloop.stand_in_models import fake_llm

    # Built as trace_to_dspy_example builds an expert's example (result and rationale first).
    examples = [
        dspy.Example(result=result, rationale=why, inputs=q, outputs=a)
        for result, why, q, a in (("4", "complete", "q1", "a1"), ("1", "wrong", "q2", "a2"), ("4", "precise", "q3", "a3"))
    ]
    prompt = Template(DISTILLATION_PROMPT_TEMPLATE).render(
        judge_instructions="Rate {{ outputs }}.", existing_guidelines=[], zip=zip, len=len, ids=[0, 1, 2],
        feedback_records=[dict(example) for example in examples],
    )
    fake_llm.reset_calls()
    answer = json.loads(fake_llm.respond("reflect", [{"role": "user", "content": prompt}]))
    assert fake_llm.CALLS["guidelines"] == 1
    assert sorted(g["source_trace_ids"] for g in answer["guidelines"]) == [[0, 2], [1]]


def test_memalign_retrieved_examples_have_the_form_the_stand_in_reads():
    """fake_llm rates like the expert examples MemAlign puts into a judge's instructions."""
    import dspy
    from mlflow.genai.judges.instructions_judge.constants import JUDGE_BASE_PROMPT
    from mlflow.genai.judges.optimizers.memalign.optimizer import MemoryAugmentedJudge

    from judgeloop.stand_in_models import fake_llm

    assert "expert judge" in JUDGE_BASE_PROMPT  # how fake_llm tells a judge request from others
    example = dspy.Example(inputs="why is the sky blue", outputs="scattering", result="2", rationale="thin")
    owner = SimpleNamespace(_base_judge=SimpleNamespace(instructions="Rate {{ outputs }}."))
    instructions = MemoryAugmentedJudge._build_augmented_instructions(owner, [], [example])
    found = fake_llm._examples(instructions)
    assert [(e["inputs"], e["result"]) for e in found] == [("why is the sky blue", "2")]
