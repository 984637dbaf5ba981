"""An application's own traffic, logged by MLflow's autologgers, runs the whole loop: what the
graph reads (root span inputs and outputs, picked out of nested chat payloads by the field
settings), which traces count (production traffic) and how they are keyed (client request id)."""

import pytest

from judgeloop import workspace
from judgeloop.judging import judges
from judgeloop.sme_labels import labels
from judgeloop.tracing import datasets
from judgeloop.stand_in_models import fake_llm
from judgeloop.sme_labels.label_files.traces import trace_keys
from judgeloop.settings import load_settings
from judgeloop.stack.store import connect
from tests import autologged
from tests.support import accept_any_split, materialize, metadata

FOUNDATION = ["base_judge", "tagged_traces", "eval_dataset", "labeling_session", "agent_prompt"]
REALIGN = ["live_agreement", "aligned_judge", "optimized_prompt"]


def _expert_value(answer: str) -> int:
    return 4 if answer.startswith("To fix") else 2 if answer.startswith("Please") else 1


@pytest.mark.parametrize("shape", ["openai_chat", "langchain_chain"])
def test_autologged_traffic_runs_the_loop(home, instance, monkeypatch, shape):
    accept_any_split(monkeypatch)
    monkeypatch.setenv("JUDGELOOP_GATE_MARGIN", "2.0")  # about reading traces, not the gate
    if shape == "openai_chat":  # the question and answer sit inside the chat payloads
        monkeypatch.setenv("JUDGELOOP_REQUEST_FIELD", autologged.OPENAI_REQUEST_FIELD)
        monkeypatch.setenv("JUDGELOOP_RESPONSE_FIELD", autologged.OPENAI_RESPONSE_FIELD)
    settings = load_settings()
    experiment_id = connect(settings)
    log = getattr(autologged, shape)
    exchanges = autologged.support_exchanges(24)
    trace_ids = {request_id: log(question, answer, request_id) for question, answer, request_id in exchanges}
    if shape == "openai_chat":
        import mlflow

        # A completion that returned no choice (a tool call, a content filter): reported, not scored.
        with mlflow.start_span(name="Completions", span_type="CHAT_MODEL") as span:
            span.set_inputs({"messages": [{"role": "user", "content": "Cancel my contract"}], "model": "gpt-4o-mini"})
            span.set_outputs({"object": "chat.completion", "choices": []})
            mlflow.update_current_trace(client_request_id="req-empty")

    prompts_seen = []
    original = fake_llm.answer_judge

    def spy(system, user, *args, **kwargs):
        # The question and answer, and the experts' examples MemAlign put into the instructions.
        prompts_seen.append(f"{system}\n{user}")
        return original(system, user, *args, **kwargs)

    monkeypatch.setattr(fake_llm, "answer_judge", spy)
    result = materialize(instance, FOUNDATION)
    assert result.success
    tagged = metadata(result, "tagged_traces")
    assert tagged["traces_tagged"] == 24
    if shape == "openai_chat":
        assert tagged["agent_errors"] == 1 and "JUDGELOOP_RESPONSE_FIELD" in tagged["first_errors"]
    # The judge read the question and the answer, not the chat payloads around them.
    assert prompts_seen and not any('"role"' in p or "gpt-4o-mini" in p or "chat.completion" in p for p in prompts_seen)
    assert any(exchanges[0][0] in p and exchanges[0][1] in p for p in prompts_seen)
    # Dataset records hold the question as the agent hook receives it: agent(question=...).
    records = datasets.load_records(workspace.for_settings(settings).dataset(experiment_id))
    assert sorted(r["inputs"]["question"] for r in records) == sorted(q for q, _, _ in exchanges)
    assert all(set(r["inputs"]) == {"question"} for r in records)
    assert metadata(result, "labeling_session")["items_added"] == min(24, settings.queue_window)  # the pending window
    # Keyed by the application's request id: what labels export writes as trace_key.
    assert trace_keys(settings, experiment_id, set(trace_ids.values())) == {tid: rid for rid, tid in trace_ids.items()}

    for question, answer, request_id in exchanges:
        labels.log_label(trace_ids[request_id], settings.judge_name, _expert_value(answer), "sme-1", "as I see it")
    prompts_seen.clear()
    realigned = materialize(instance, REALIGN)
    assert realigned.success
    assert judges.promoted_version(experiment_id) == 2
    assert metadata(realigned, "aligned_judge")["labels_used_alignment"] > 0
    assert not any('"role"' in p or "chat.completion" in p for p in prompts_seen)


def test_status_writes_nothing_in_the_current_directory(home, tmp_path, monkeypatch, capsys):
    from judgeloop.cli import main

    elsewhere = tmp_path / "app"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert main(["status"]) == 0  # no store yet
    connect(load_settings())  # the store and the experiment, as any judgeloop command makes them
    autologged.langchain_chain("Is my router on?", "Its light is green.", "req-1")
    assert main(["status"]) == 0
    assert list(elsewhere.iterdir()) == []  # no ./mlruns, nothing at all
