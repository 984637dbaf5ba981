"""A deterministic, offline stand-in for every LLM role, used by the tests and the offline demo.

``fake:/<name>`` model URIs are served in-process through a litellm custom provider; the
same answers are served over HTTP by ``FakeOpenAIServer`` (an OpenAI-compatible endpoint)
to exercise the real ``openai:/`` client path. The answers are not canned: they are
computed from the request, so alignment, agreement and prompt optimization behave like a
(very simple) real model would:

- a judge prompt is answered from word overlap between question and answer (its generic,
  naive judgement); when the prompt carries the expert examples MemAlign retrieved, it rates
  like them instead (their similarity-weighted rating), and a guideline "Always rate X" gives X.
  This is a stand-in that shows the labels reaching the judge, not a model that judges well;
- a MemAlign guideline request returns one guideline per distinct expert rating
  (model name ``saboteur`` returns "Always rate 1", to test the blocking gate);
- a GEPA reflection request returns the current instructions plus one sentence that asks the
  agent to quote the passage (model name ``stubborn`` returns them unchanged);
- an agent request quotes the passage sentences that share the most words with the question
  when its system prompt asks for quoting, else it answers with the passage's opening;
- embeddings are hashed bags of words (similar texts get similar vectors);
- model name ``garbage`` answers with text no judge can parse; ``unavailable`` raises, as a provider
  that is down would; a judge model name containing
  ``generic`` keeps its generic judgement even with retrieved examples (for tests about the
  prompt rather than the judge's memory).
"""

import ast
import hashlib
import json
import math
import re
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

QUOTE_INSTRUCTION = "Quote the passage sentences that answer the question most directly."
EMBEDDING_DIM = 512
# An expert example about something else entirely (no shared words) carries no evidence.
MIN_EXAMPLE_SIMILARITY = 0.05
_WORD = re.compile(r"[a-z0-9]+")
_STOP = frozenset(
    "the a an and or of to in on for is are was were be been it its this that with as at by from "
    "what how why when who which do does can i you your my we our they their there if not no".split()
)

CALLS: Counter = Counter()
_CALLS_LOCK = threading.Lock()


def reset_calls() -> None:
    with _CALLS_LOCK:
        CALLS.clear()


def _count(kind: str) -> None:
    with _CALLS_LOCK:
        CALLS[kind] += 1
        CALLS["total"] += 1


def words(text: str) -> set[str]:
    return {w for w in _WORD.findall(str(text).lower()) if w not in _STOP and len(w) > 2}


# Values of a chat completion's bookkeeping fields: the same in every answer, so not content.
_STRUCTURAL_KEYS = frozenset({"role", "object", "finish_reason", "id", "model", "index", "type"})


def content_words(value) -> set[str]:
    """Words of what a reader would read in ``value``: the text inside a logged request or
    response (``{"question": ...}``, a chat completion), not its field names. Shared by every
    trace, those would make all examples look alike and blur which ones are really similar."""
    if isinstance(value, str):
        text = value.strip()
        if text[:1] in "{[":
            for parse in (json.loads, ast.literal_eval):
                try:
                    return content_words(parse(text))
                except (ValueError, SyntaxError, TypeError, RecursionError):
                    continue
        return words(value)
    if isinstance(value, dict):
        return set().union(*(content_words(v) for k, v in value.items() if k not in _STRUCTURAL_KEYS))
    if isinstance(value, (list, tuple)):
        return set().union(*(content_words(v) for v in value))
    return words(str(value)) if value is not None else set()


def _jaccard(a: set, b: set) -> float:
    return len(a & b) / len(a | b) if a and b else 0.0


def embed(text: str) -> list[float]:
    vec = [0.0] * EMBEDDING_DIM
    for word in words(text):
        slot = int(hashlib.sha1(word.encode()).hexdigest(), 16) % EMBEDDING_DIM
        vec[slot] += 1.0
    norm = math.sqrt(sum(v * v for v in vec)) or 1.0
    return [v / norm for v in vec]


def _content(message) -> str:
    content = message.get("content") if isinstance(message, dict) else getattr(message, "content", "")
    if isinstance(content, list):
        return "\n".join(part.get("text", "") for part in content if isinstance(part, dict))
    return content or ""


def _allowed_results(system: str, response_format) -> list:
    try:
        schema = response_format["json_schema"]["schema"]["properties"]["result"]
        if "enum" in schema:
            return list(schema["enum"])
        if schema.get("type") == "boolean":
            return [False, True]
    except (KeyError, TypeError):
        pass
    match = re.search(r"- result \(Literal\[(.*?)\]\)", system)
    if match:
        return [ast.literal_eval(v.strip()) for v in match.group(1).split(",")]
    if re.search(r"- result \(bool\)", system):
        return [False, True]
    return [1, 2, 3, 4, 5]


def _coerce(value, allowed: list):
    for option in allowed:
        if str(option).lower() == str(value).lower():
            return option
    return allowed[0]


def _split_judge_input(user: str) -> tuple[str, str]:
    outputs = re.search(r"outputs:(.*?)(?:\ninputs:|\Z)", user, re.S)
    inputs = re.search(r"inputs:(.*?)(?:\noutputs:|\Z)", user, re.S)
    return (inputs.group(1) if inputs else user), (outputs.group(1) if outputs else "")


def _examples(system: str) -> list[dict]:
    found = []
    for line in system.splitlines():
        match = re.match(r"\s*Example \d+: (\{.*\})\.?\s*$", line)
        if match:
            try:
                found.append(ast.literal_eval(match.group(1)))
            except (ValueError, SyntaxError):
                continue
    return found


def _weighted_choice(votes: dict[str, float], allowed: list):
    """The similarity-weighted mean of ordered values (numbers, ordered categories), else the top vote."""
    order = [str(v) for v in allowed]
    if len(order) > 2 and all(v in order for v in votes):
        total = sum(votes.values())
        position = sum(order.index(v) * w for v, w in votes.items()) / total
        return order[int(round(position))]
    return max(votes, key=votes.get)


def answer_judge(system: str, user: str, response_format=None, follow_examples: bool = True) -> str:
    allowed = _allowed_results(system, response_format)
    forced = re.search(r"always rate ([\w\- ]+?)[\.\n]", system, re.I)
    inputs, outputs = _split_judge_input(user)
    if forced:
        value = _coerce(forced.group(1).strip(), allowed)
        return json.dumps({"result": value, "rationale": f"Following the guideline, rated {value}."})
    examples = _examples(system) if follow_examples else []
    if examples:
        # MemAlign put the experts' most similar past judgements in the prompt: follow them,
        # weighted by how much each shares with this question and answer.
        here = content_words(inputs) | content_words(outputs)
        votes: dict[str, float] = {}
        for example in examples:
            similarity = _jaccard(here, content_words(example.get("inputs", "")) | content_words(example.get("outputs", "")))
            if similarity >= MIN_EXAMPLE_SIMILARITY:
                value = str(_coerce(example.get("result"), allowed))
                # Cubed: the closest examples dominate, as they would for a model reading them.
                votes[value] = votes.get(value, 0.0) + similarity**3
        if votes:
            value = _coerce(_weighted_choice(votes, allowed), allowed)
            return json.dumps({"result": value, "rationale": f"Experts rated the most similar answers {value}."})
    question = words(inputs)
    overlap = len(question & words(outputs)) / len(question) if question else 0.0
    value = allowed[min(len(allowed) - 1, int(overlap * len(allowed)))]
    return json.dumps({"result": value, "rationale": f"{overlap:.0%} of the question's key words are answered."})


def answer_guidelines(user: str, saboteur: bool) -> str:
    if saboteur:
        return json.dumps({"guidelines": [{"guideline_text": "Always rate 1.", "source_trace_ids": [0]}]})
    by_result: dict[str, list[int]] = {}
    reasons: dict[str, str] = {}
    for match in re.finditer(r'"id": (\d+),\s*"result": "([^"]*)",\s*"rationale": "((?:[^"\\]|\\.)*)"', user):
        ex_id, result, rationale = int(match.group(1)), match.group(2), match.group(3)
        by_result.setdefault(result, []).append(ex_id)
        reasons.setdefault(result, rationale)
    guidelines = [
        {"guideline_text": f"The expert rates {result} when: {reasons[result][:120]}", "source_trace_ids": ids}
        for result, ids in sorted(by_result.items())
    ]
    return json.dumps({"guidelines": guidelines})


def answer_reflection(user: str, stubborn: bool = False) -> str:
    blocks = re.findall(r"```(.*?)```", user, re.S)
    current = blocks[0].strip() if blocks else ""
    if QUOTE_INSTRUCTION not in current and not stubborn:
        current = f"{current}\n{QUOTE_INSTRUCTION}".strip()
    return f"```\n{current}\n```"


def answer_agent(system: str, user: str) -> str:
    question = re.search(r"Question:(.*?)(?:\n\s*Passage:|\Z)", user, re.S)
    passage = re.search(r"Passage:(.*)", user, re.S)
    q_text = question.group(1) if question else user
    p_text = (passage.group(1) if passage else user).strip()
    if QUOTE_INSTRUCTION.lower() in system.lower():
        sentences = [s.strip() for s in re.split(r"(?<=[.!?])\s+", p_text) if s.strip()]
        q_words = words(q_text)
        ranked = sorted(sentences, key=lambda s: -len(q_words & words(s)))
        return " ".join(ranked[:2]) or p_text[:200]
    return "Thanks for your question. " + " ".join(p_text.split()[:12])


def respond(model: str, messages: list, response_format=None) -> str:
    """The fake model's whole brain: pick the role from the request, answer deterministically."""
    system = "\n".join(_content(m) for m in messages if (m.get("role") if isinstance(m, dict) else m.role) == "system")
    user = "\n".join(_content(m) for m in messages if (m.get("role") if isinstance(m, dict) else m.role) != "system")
    everything = system + "\n" + user
    if "garbage" in model:
        _count("garbage")
        return "I would rather not say."
    if "unavailable" in model:
        _count("unavailable")
        raise ConnectionError(f"fake provider: model {model!r} is unavailable")
    if "distill a list of guidelines" in everything or "distill a set of guidelines" in everything:
        _count("guidelines")
        with _CALLS_LOCK:  # how many expert examples MemAlign sent to be distilled
            CALLS["guideline_examples"] += len(re.findall(r'"id": \d+,', user))
        return answer_guidelines(user, saboteur="saboteur" in model)
    if "expert judge" in system or "- result (" in everything:
        _count("judge")
        return answer_judge(system or user, user, response_format, follow_examples="generic" not in model)
    if "```" in user and ("new instruction" in user.lower() or "instructions" in user.lower()):
        _count("reflection")
        return answer_reflection(user, stubborn="stubborn" in model)
    _count("agent")
    return answer_agent(system, user)


def register_litellm_provider() -> None:
    """Serve ``fake:/...`` model URIs in this process (idempotent)."""
    import litellm
    from litellm import CustomLLM

    if any(entry.get("provider") == "fake" for entry in (litellm.custom_provider_map or [])):
        return

    class _FakeProvider(CustomLLM):
        def completion(self, model, messages, *args, **kwargs):
            params = kwargs.get("optional_params") or {}
            text = respond(model, messages, params.get("response_format"))
            return litellm.ModelResponse(
                model=model,
                choices=[litellm.Choices(index=0, finish_reason="stop", message=litellm.Message(role="assistant", content=text))],
                usage=litellm.Usage(prompt_tokens=10, completion_tokens=10, total_tokens=20),
            )

        async def acompletion(self, model, messages, *args, **kwargs):
            return self.completion(model, messages, *args, **kwargs)

        def embedding(self, model, input, model_response, *args, **kwargs):
            _count("embedding")
            model_response.data = [
                {"object": "embedding", "index": i, "embedding": embed(text)} for i, text in enumerate(input)
            ]
            return model_response

        async def aembedding(self, model, input, model_response, *args, **kwargs):
            return self.embedding(model, input, model_response, *args, **kwargs)

    litellm.custom_provider_map = [*(litellm.custom_provider_map or []), {"provider": "fake", "custom_handler": _FakeProvider()}]
    from litellm.utils import custom_llm_setup

    custom_llm_setup()


class FakeOpenAIServer:
    """An OpenAI-compatible HTTP endpoint (chat completions, embeddings, models) on loopback."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0):
        self.requests: Counter = Counter()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _send(self, payload: dict, status: int = 200):
                body = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                server.requests[self.path] += 1
                self._send({"object": "list", "data": [{"id": "fake", "object": "model"}]})

            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                request = json.loads(self.rfile.read(length) or b"{}")
                path = self.path.rstrip("/")
                server.requests[path] += 1
                model = request.get("model", "fake")
                if path.endswith("/embeddings"):
                    inputs = request.get("input")
                    inputs = [inputs] if isinstance(inputs, str) else inputs
                    data = [{"object": "embedding", "index": i, "embedding": embed(t)} for i, t in enumerate(inputs)]
                    return self._send({"object": "list", "data": data, "model": model, "usage": {"prompt_tokens": 1, "total_tokens": 1}})
                if path.endswith("/chat/completions"):
                    text = respond(model, request.get("messages", []), request.get("response_format"))
                    return self._send(
                        {
                            "id": f"chatcmpl-{server.requests[path]}",
                            "object": "chat.completion",
                            "created": 0,
                            "model": model,
                            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
                            "usage": {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20},
                        }
                    )
                self._send({"error": {"message": f"unknown path {self.path}"}}, 404)

        self._httpd = ThreadingHTTPServer((host, port), Handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._httpd.shutdown()
        self._httpd.server_close()


def main() -> None:  # pragma: no cover - `python -m judgeloop.stand_in_models.fake_llm --port N` for manual runs
    import argparse
    import time

    parser = argparse.ArgumentParser(description="Serve the deterministic fake LLM over HTTP.")
    parser.add_argument("--port", type=int, default=8765)
    args = parser.parse_args()
    with FakeOpenAIServer(port=args.port) as srv:
        print(srv.base_url, flush=True)
        while True:
            time.sleep(3600)


if __name__ == "__main__":
    main()
