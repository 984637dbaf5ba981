"""A fake Databricks workspace on loopback, for tests and benchmarks (no workspace is reachable here).

What it does, and where each payload's shape comes from (files of the pinned packages, under
site-packages):
- ``/api/2.0/mlflow/*`` and ``/api/3.0/mlflow/*`` are forwarded to a real local ``mlflow server``
  (traces, assessments, experiments, tags: the same REST as on Databricks).
- ``/api/4.0/*`` answers ``ENDPOINT_NOT_FOUND`` (404), as old workspaces do: MLflow then falls
  back to the v3 paths (``mlflow/store/tracking/rest_store.py``, ``databricks_rest_store.py``).
- ``/.well-known/databricks-config``: 404, the answer of a workspace without host metadata
  (``databricks/sdk/config.py``, ``_resolve_host_metadata``).
- ``/api/2.0/preview/scim/v2/Me``: the caller, from the bearer token; an unknown token gets 401
  ``UNAUTHENTICATED`` (``databricks/sdk/service/iam.py``, ``CurrentUserAPI.me``).
- ``/api/2.0/managed-evals/scheduled-scorers/{experiment}`` and
  ``/api/2.0/managed-evals/experiments/{experiment}/scorers/{key}/versions[/{n}]``: judge
  registration (``mlflow/genai/scorers/registry.py``, ``DatabricksStore``). A registration whose
  serialized scorer differs from the newest version adds a version.
- ``/api/2.0/managed-evals/experiments/{experiment}/reviewQuestions|reviewQueues/...``: review
  questions, queues, members and items (``mlflow/genai/databricks/review_queues/api.py`` for the
  requests, ``entities.py`` for the resource shapes). ``completed_by`` is the caller's identity.
- ``/api/2.0/mlflow/unity-catalog/prompts/...``: the Unity Catalog prompt registry, in memory
  (``mlflow/protos/unity_catalog_prompt_service.proto`` for paths and messages,
  ``mlflow/store/_unity_catalog/registry/rest_store.py`` for the client).
- ``/serving-endpoints/...`` (and ``/ai-gateway/mlflow/v1/...``): OpenAI-style chat completions and
  embeddings answered by judgeloop's deterministic fake model (``judgeloop/stand_in_models/fake_llm.py``).

Unity Catalog datasets go through the proprietary ``databricks-agents`` package, whose wire
protocol is not public: the tests fake the Python boundary MLflow calls instead
(``agents_boundary/databricks/agents/datasets.py``, see ``mlflow/genai/datasets/__init__.py``).
"""

import base64
import itertools
import json
import re
import threading
import uuid
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

import requests

from judgeloop.stand_in_models import fake_llm

MANAGED = "/api/2.0/managed-evals"
UC_PROMPTS = "/api/2.0/mlflow/unity-catalog/prompts"
UC_PROMPT_LINKS = "/api/2.0/mlflow/unity-catalog/prompt-versions/"
# Ids in paths collapse to "*" in the request counts, so counts group by endpoint.
_ID_SEGMENT = re.compile(r"/(?:tr-[0-9a-f]+|[0-9a-f]{8,}|\d+)(?=/|$)")


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


class FakeDatabricks:
    """The in-memory half of the workspace; ``serve`` puts it on loopback in front of ``mlflow_url``."""

    def __init__(self, mlflow_url: str, tokens: dict[str, str]):
        self.mlflow_url = mlflow_url.rstrip("/")
        self.tokens = dict(tokens)  # bearer token -> user name
        self.lock = threading.RLock()
        self.requests: dict[str, int] = {}
        self.scheduled: dict[str, list[dict]] = {}
        self.scorer_versions: dict[tuple[str, str], list[dict]] = {}
        self.questions: dict[str, dict[str, dict]] = {}
        self.queues: dict[str, dict[str, dict]] = {}
        self.members: dict[str, list[dict]] = {}
        self.items: dict[str, dict[str, dict]] = {}  # queue name -> item id -> item
        self.prompts: dict[str, dict] = {}  # UC name -> {"prompt": Prompt, "versions": [PromptVersion], "aliases": {}}
        self._ids = itertools.count(1)
        self._session = requests.Session()

    # Plumbing --------------------------------------------------------------------------
    def count(self, key: str) -> None:
        with self.lock:
            self.requests[key] = self.requests.get(key, 0) + 1

    def caller(self, headers) -> str:
        auth = headers.get("Authorization", "")
        token = auth[7:] if auth.startswith("Bearer ") else ""
        if token not in self.tokens:
            raise ApiError(401, "UNAUTHENTICATED", "Invalid access token.")
        return self.tokens[token]

    def handle(self, method: str, path: str, query: dict, body: dict, headers) -> tuple[int, dict | bytes, str]:
        if path.startswith("/.well-known/"):
            return 404, {"error_code": "NOT_FOUND", "message": "no host metadata"}, "json"
        if path.startswith("/api/4.0/"):
            return 404, {"error_code": "ENDPOINT_NOT_FOUND", "message": f"No API found for '{method} {path}'"}, "json"
        user = self.caller(headers)
        if path.startswith(UC_PROMPTS) or path.startswith(UC_PROMPT_LINKS):
            return 200, self.uc_prompts(method, path, body), "json"
        if path.startswith("/api/2.0/mlflow/") or path.startswith("/api/3.0/mlflow/"):
            return self.forward(method, path, query, body)
        if path == "/api/2.0/preview/scim/v2/Me":
            return 200, {"id": str(abs(hash(user)) % 10**9), "userName": user, "active": True}, "json"
        if path.startswith(f"{MANAGED}/scheduled-scorers/"):
            return 200, self.scheduled_scorers(method, unquote(path.rsplit("/", 1)[1]), body), "json"
        match = re.match(rf"^{MANAGED}/experiments/([^/]+)/scorers/([^/]+)/versions(?:/(\d+))?$", path)
        if match:
            return 200, self.scorer_version(method, match.group(1), match.group(2), match.group(3)), "json"
        match = re.match(rf"^{MANAGED}/(experiments/[^/]+)/(reviewQuestions|reviewQueues)(.*)$", path)
        if match:
            return 200, self.review(method, match.group(1), match.group(2), match.group(3), query, body, user), "json"
        if path.startswith("/serving-endpoints/") or path.startswith("/ai-gateway/"):
            return 200, self.serve_model(path, body), "json"
        raise ApiError(404, "ENDPOINT_NOT_FOUND", f"No API found for '{method} {path}'")

    def forward(self, method: str, path: str, query: dict, body: dict):
        response = self._session.request(
            method, self.mlflow_url + path, params={k: v for k, v in query.items()},
            json=body if method not in ("GET", "DELETE") else None, timeout=120,
        )
        return response.status_code, response.content, response.headers.get("Content-Type", "application/json")

    # Unity Catalog prompts (messages in mlflow/protos/unity_catalog_prompt_messages.proto, paths in
    # unity_catalog_prompt_service.proto, client in mlflow/store/_unity_catalog/registry/rest_store.py)
    def uc_prompts(self, method: str, path: str, body: dict) -> dict:
        with self.lock:
            if path.startswith(UC_PROMPT_LINKS):
                return {}
            rest = unquote(path[len(UC_PROMPTS):]).strip("/")
            if rest == "" and method == "POST":
                name = body["name"]
                if name in self.prompts:
                    raise ApiError(409, "ALREADY_EXISTS", f"Prompt {name} already exists")  # the code register_prompt tolerates
                self.prompts[name] = {"prompt": {"name": name, "creation_timestamp": _now(),
                                                 "description": body.get("prompt", {}).get("description", ""),
                                                 "tags": body.get("prompt", {}).get("tags", [])},
                                      "versions": [], "aliases": {}}
                return self._prompt(name)
            if rest == "search":
                return {"prompts": [self._prompt(n) for n in self.prompts]}
            name, _, sub = rest.partition("/")
            if name not in self.prompts:
                raise ApiError(404, "RESOURCE_DOES_NOT_EXIST", f"Prompt {name} does not exist")
            entry = self.prompts[name]
            if sub == "":
                return self._prompt(name)
            if sub == "tags":
                entry["prompt"]["tags"] = [t for t in entry["prompt"]["tags"] if t["key"] != body["key"]] + [
                    {"key": body["key"], "value": body["value"]}]
                return {}
            if sub == "versions" and method == "POST":
                given = body.get("prompt_version", {})
                version = {"name": name, "version": str(len(entry["versions"]) + 1), "creation_timestamp": _now(),
                           "last_updated_timestamp": _now(), "description": given.get("description", ""),
                           "template": given["template"], "tags": given.get("tags", [])}
                entry["versions"].append(version)
                return self._version(name, version)
            if sub == "versions/search":
                return {"prompt_versions": [self._version(name, v) for v in entry["versions"] if not v.get("deleted")]}
            match = re.match(r"^aliases/([^/]+)$", sub)
            if match:
                if method == "DELETE":
                    entry["aliases"].pop(match.group(1), None)
                else:
                    entry["aliases"][match.group(1)] = str(body["version"])
                return {}
            match = re.match(r"^versions/by-alias/([^/]+)$", sub)
            if match:
                wanted = entry["aliases"].get(match.group(1))
                if wanted is None:
                    raise ApiError(404, "RESOURCE_DOES_NOT_EXIST", f"Alias {match.group(1)} of {name} does not exist")
                return self._version(name, entry["versions"][int(wanted) - 1])
            match = re.match(r"^versions/(\d+)(/tags)?$", sub)
            if match and 0 < int(match.group(1)) <= len(entry["versions"]) and not entry["versions"][int(match.group(1)) - 1].get("deleted"):
                version = entry["versions"][int(match.group(1)) - 1]
                if method == "DELETE" and not match.group(2):
                    version["deleted"] = True  # numbers are never reused, as in the registry
                    return {}
                if match.group(2):
                    version["tags"] = [t for t in version["tags"] if t["key"] != body["key"]] + [
                        {"key": body["key"], "value": body["value"]}]
                    return {}
                return self._version(name, version)
            raise ApiError(404, "RESOURCE_DOES_NOT_EXIST", f"No prompt resource {name}/{sub}")

    def _prompt(self, name: str) -> dict:
        entry = self.prompts[name]
        return {**entry["prompt"], "aliases": [{"alias": a, "version": v} for a, v in entry["aliases"].items()]}

    def _version(self, name: str, version: dict) -> dict:
        aliases = [{"alias": a, "version": v} for a, v in self.prompts[name]["aliases"].items() if v == version["version"]]
        return {**version, "aliases": aliases}

    # Managed-evals scorers --------------------------------------------------------------
    def scheduled_scorers(self, method: str, experiment_id: str, body: dict) -> dict:
        with self.lock:
            if method == "GET":
                return {"scheduled_scorers": {"scorers": list(self.scheduled.get(experiment_id, []))}}
            if method == "PATCH" and experiment_id not in self.scheduled:
                raise ApiError(404, "NOT_FOUND", f"No scheduled scorers for experiment {experiment_id}")
            if method == "POST" and experiment_id in self.scheduled:
                raise ApiError(409, "ALREADY_EXISTS", f"Scheduled scorers exist for experiment {experiment_id}")
            configs = []
            for config in body.get("scheduled_scorers", {}).get("scorers", []):
                config = dict(config)
                key = base64.urlsafe_b64encode(config["name"].encode()).decode().rstrip("=")
                versions = self.scorer_versions.setdefault((experiment_id, key), [])
                if not versions or versions[-1]["serialized_scorer"] != config["serialized_scorer"]:
                    number = len(versions) + 1
                    versions.append({
                        "name": f"experiments/{experiment_id}/scorers/{key}/versions/{number}",
                        "display_name": config["name"], "scorer_version": number,
                        "serialized_scorer": config["serialized_scorer"], "create_time": _now(),
                        **({"builtin": config["builtin"]} if "builtin" in config else {"custom": config.get("custom", {})}),
                    })
                config["scorer_version"] = versions[-1]["scorer_version"]
                configs.append(config)
            self.scheduled[experiment_id] = configs
            return {"scheduled_scorers": {"scorers": configs}}

    def scorer_version(self, method: str, experiment_id: str, key: str, number: str | None) -> dict:
        with self.lock:
            versions = self.scorer_versions.get((experiment_id, key), [])
            if not versions:
                raise ApiError(404, "NOT_FOUND", f"Scorer {key} not found")
            if number is None:
                return {"scorer_versions": list(versions)}
            found = [v for v in versions if v["scorer_version"] == int(number)]
            if not found:
                raise ApiError(404, "NOT_FOUND", f"Scorer version {number} not found")
            if method == "DELETE":
                versions.remove(found[0])
                return {}
            return found[0]

    # Review questions, queues, members, items ------------------------------------------
    def review(self, method: str, experiment: str, kind: str, rest: str, query: dict, body: dict, user: str) -> dict:
        with self.lock:
            if kind == "reviewQuestions":
                return self.review_questions(method, experiment, rest, query, body, user)
            return self.review_queues(method, experiment, rest, query, body, user)

    @staticmethod
    def _page(rows: list, query: dict, field: str) -> dict:
        size = int(query.get("page_size") or 100)
        start = int(query.get("page_token") or 0)
        page = {field: rows[start : start + size]}
        if start + size < len(rows):
            page["next_page_token"] = str(start + size)
        return page

    def review_questions(self, method, experiment, rest, query, body, user) -> dict:
        questions = self.questions.setdefault(experiment, {})
        if rest == "" and method == "POST":
            name = f"{experiment}/reviewQuestions/{next(self._ids)}"
            question = {"name": name, "created_by": user, "create_time": _now(), "update_time": _now(),
                        "position": len(questions), **body}
            questions[name] = question
            return question
        if rest == "" and method == "GET":
            return self._page(list(questions.values()), query, "review_questions")
        name = f"{experiment}/reviewQuestions{rest}"
        if name not in questions:
            raise ApiError(404, "NOT_FOUND", f"Review question {name} not found")
        if method == "PATCH":
            for key in query.get("update_mask", "").split(","):
                if key in ("numeric", "categorical", "pass_fail", "text"):
                    for other in ("numeric", "categorical", "pass_fail", "text"):
                        questions[name].pop(other, None)
                questions[name][key] = body[key]
            questions[name]["update_time"] = _now()
        if method == "DELETE":
            return questions.pop(name) and {}
        return questions[name]

    def review_queues(self, method, experiment, rest, query, body, user) -> dict:
        queues = self.queues.setdefault(experiment, {})
        if rest == "" and method == "POST":
            name = f"{experiment}/reviewQueues/{next(self._ids)}"
            queues[name] = {"name": name, "display_name": body["display_name"], "queue_type": body.get("queue_type", "CUSTOM"),
                            "question_names": body.get("question_names", []), "owner": user, "created_by": user,
                            "create_time": _now(), "update_time": _now()}
            self.items[name], self.members[name] = {}, []
            return self._queue(name)
        if rest == "" and method == "GET":
            return self._page([self._queue(n) for n in queues], query, "review_queues")
        match = re.match(r"^/([^/:]+)(.*)$", rest)
        name = f"{experiment}/reviewQueues/{match.group(1)}"
        sub = match.group(2)
        if name not in queues:
            raise ApiError(404, "NOT_FOUND", f"Review queue {name} not found")
        if sub == "" and method == "GET":
            return self._queue(name)
        if sub == "" and method == "PATCH":
            for key in query.get("update_mask", "").split(","):
                queues[name][key] = body[key]
            return self._queue(name)
        if sub == "" and method == "DELETE":
            queues.pop(name)
            return {}
        if sub == ":resolve" or sub == "/effectiveQuestions:resolve":
            questions = self.questions.get(experiment, {})
            pinned = queues[name]["question_names"] if queues[name]["queue_type"] == "CUSTOM" else list(questions)
            return {"review_questions": [questions[q] for q in pinned if q in questions]}
        if sub == "/members" and method == "GET":
            return self._page(self.members[name], query, "review_queue_members")
        if sub == "/members" and method == "POST":
            member = {"user": body["user"], "added_by": user, "add_time": _now()}
            self.members[name] = [m for m in self.members[name] if m["user"] != body["user"]] + [member]
            return member
        if sub.startswith("/members/") and method == "DELETE":
            gone = unquote(sub[len("/members/"):])
            self.members[name] = [m for m in self.members[name] if m["user"] != gone]
            return {}
        items = self.items[name]
        if sub == "/items:batchCreate":
            created = []
            for request in body.get("requests", []):
                item = request["review_queue_item"]
                trace_id = item.get("v4_trace", {}).get("trace_id")
                existing = next((i for i in items.values() if i.get("v4_trace", {}).get("trace_id") == trace_id), None)
                if existing is None:  # idempotent per item: re-attaching keeps the status
                    item_name = f"{name}/items/{uuid.uuid4().hex[:16]}"
                    existing = {"name": item_name, "status": "PENDING", "completed_by": "", "complete_time": "",
                                "added_by": user, "create_time": _now(), "update_time": _now(), **item}
                    items[item_name] = existing
                created.append(existing)
            return {"review_queue_items": created}
        if sub == "/items:batchDelete":
            for item_name in body.get("names", []):
                items.pop(item_name, None)
            return {}
        if sub == "/items" and method == "GET":
            rows = list(items.values())
            wanted = re.match(r"status=(\w+)", query.get("filter") or "")
            if wanted:
                rows = [i for i in rows if i["status"] == wanted.group(1)]
            return self._page(rows, query, "review_queue_items")
        if sub.startswith("/items/") and method == "PATCH":
            item = items.get(f"{name}{sub}")
            if item is None:
                raise ApiError(404, "NOT_FOUND", f"Item {sub} not found")
            item["status"] = body["status"]
            done = body["status"] in ("COMPLETE", "DECLINED")
            item["completed_by"] = user if done else ""
            item["complete_time"] = _now() if done else ""
            item["update_time"] = _now()
            return item
        raise ApiError(404, "ENDPOINT_NOT_FOUND", f"No API found for '{method} {experiment}/reviewQueues{rest}'")

    def _queue(self, name: str) -> dict:
        items = self.items.get(name, {}).values()
        return {**self.queues[name.split("/reviewQueues/")[0]][name], "total_item_count": len(items),
                "pending_item_count": sum(1 for i in items if i["status"] == "PENDING")}

    # Serving endpoints ------------------------------------------------------------------
    def serve_model(self, path: str, body: dict) -> dict:
        self.count("serving:" + ("embeddings" if "embeddings" in path else "chat"))
        model = body.get("model") or path.split("/serving-endpoints/", 1)[-1].split("/")[0]
        self.count(f"endpoint:{model}")  # which serving endpoint each model role reached
        if "embeddings" in path:
            inputs = body.get("input")
            inputs = [inputs] if isinstance(inputs, str) else inputs
            data = [{"object": "embedding", "index": i, "embedding": fake_llm.embed(t)} for i, t in enumerate(inputs)]
            return {"object": "list", "data": data, "model": model, "usage": {"prompt_tokens": 1, "total_tokens": 1}}
        text = fake_llm.respond(model, body.get("messages", []), body.get("response_format"))
        return {
            "id": f"chatcmpl-{next(self._ids)}", "object": "chat.completion", "created": 0, "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20},
        }


def serve(fake: FakeDatabricks, host: str = "127.0.0.1", port: int = 0):
    """Start the fake on loopback; returns ``(base_url, stop)``."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def _handle(self, method: str):
            parts = urlsplit(self.path)
            query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            fake.count(f"{method} {_ID_SEGMENT.sub('/*', parts.path)}")
            try:
                body = json.loads(raw) if raw else {}
                status, payload, content_type = fake.handle(method, parts.path, query, body, self.headers)
            except ApiError as exc:
                status, payload, content_type = exc.status, {"error_code": exc.code, "message": exc.message}, "json"
            except Exception as exc:  # a bug in the fake: say so instead of hanging the client
                status, payload, content_type = 500, {"error_code": "INTERNAL_ERROR", "message": repr(exc)}, "json"
            data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json" if content_type == "json" else content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            self._handle("GET")

        def do_POST(self):
            self._handle("POST")

        def do_PATCH(self):
            self._handle("PATCH")

        def do_DELETE(self):
            self._handle("DELETE")

        def do_PUT(self):
            self._handle("PUT")

    httpd = ThreadingHTTPServer((host, port), Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()

    def stop():
        httpd.shutdown()
        httpd.server_close()

    return f"http://{host}:{httpd.server_address[1]}", stop
