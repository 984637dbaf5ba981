"""An OpenAI-compatible provider on loopback that injects faults per model role.

It answers like ``judgeloop.stand_in_models.fake_llm`` (the deterministic offline models) unless a fault is
set for the role a request belongs to:

- ``429`` / ``500``: that HTTP status with an OpenAI-style error body;
- ``hang``: the request is held until the server stops (the client must time out);
- ``garbage``: a chat answer no judge can parse;
- ``out_of_scale``: a judge answer of 9 (on any scale).

Roles are recognised from the request the way the fake models do: ``judge``, ``reflection``
(MemAlign's guideline distillation and GEPA's reflection), ``agent``, ``embeddings``.
``requests`` counts requests per role, faulty or not; ``arrivals`` holds each request's
(role, ``time.monotonic()``), so a test can bound how long a client kept trying.
"""

import json
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from judgeloop.stand_in_models import fake_llm

FAULTS = {"429", "500", "hang", "garbage", "out_of_scale"}


def role_of(path: str, request: dict) -> str:
    if path.endswith("/embeddings"):
        return "embeddings"
    messages = request.get("messages") or []
    text = "\n".join(fake_llm._content(m) for m in messages)
    if "distill a list of guidelines" in text or "distill a set of guidelines" in text:
        return "reflection"
    if "expert judge" in text or "- result (" in text or request.get("response_format"):
        return "judge"
    if "```" in text and "instruction" in text.lower():
        return "reflection"
    return "agent"


class FaultyProvider:
    def __init__(self, faults: dict[str, str] | None = None):
        unknown = set((faults or {}).values()) - FAULTS
        if unknown:
            raise ValueError(f"unknown faults {unknown}; use {sorted(FAULTS)}")
        self.faults = dict(faults or {})
        self.requests: Counter = Counter()
        self.arrivals: list[tuple[str, float]] = []
        self._stopping = threading.Event()
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _send(self, payload: dict, status: int = 200):
                body = json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (timed out)
                    pass

            def do_GET(self):
                self._send({"object": "list", "data": [{"id": "fake", "object": "model"}]})

            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                request = json.loads(self.rfile.read(length) or b"{}")
                path = self.path.rstrip("/")
                role = role_of(path, request)
                provider.requests[role] += 1
                provider.arrivals.append((role, time.monotonic()))
                fault = provider.faults.get(role)
                if fault in ("429", "500"):
                    message = "Rate limit reached" if fault == "429" else "Internal server error"
                    return self._send({"error": {"message": message, "type": "fault", "code": fault}}, int(fault))
                if fault == "hang":
                    provider._stopping.wait()
                    return
                model = request.get("model", "fake")
                if role == "embeddings":
                    inputs = request.get("input")
                    inputs = [inputs] if isinstance(inputs, str) else inputs
                    data = [{"object": "embedding", "index": i, "embedding": fake_llm.embed(t)} for i, t in enumerate(inputs)]
                    return self._send({"object": "list", "data": data, "model": model, "usage": {"prompt_tokens": 1, "total_tokens": 1}})
                if fault == "garbage":
                    text = "I would rather not say."
                elif fault == "out_of_scale" and role == "judge":
                    text = json.dumps({"result": 9, "rationale": "Off the scale on purpose."})
                else:
                    text = fake_llm.respond(model, request.get("messages", []), request.get("response_format"))
                return self._send(
                    {
                        "id": "chatcmpl-faulty", "object": "chat.completion", "created": 0, "model": model,
                        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
                        "usage": {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20},
                    }
                )

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def span(self, role: str) -> float:
        """Seconds between the first and the last request of ``role``."""
        times = [t for r, t in self.arrivals if r == role]
        return times[-1] - times[0] if times else 0.0

    @property
    def base_url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()
