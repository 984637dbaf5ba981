"""Time and retry limits on every LLM call, and failure messages that say where to look.

Model calls leave through three doors, each with its own knobs (all set here, from Settings):
- MLflow's judge clients (``openai:/``, ``anthropic:/``... and litellm for other providers):
  MLflow retries a failed request 10 times with back-off up to 30 s (about three minutes per
  call) and waits ``MLFLOW_GATEWAY_ROUTE_TIMEOUT_SECONDS`` per request. Its retry count has no
  setting, so the adapter input is clamped to ``llm_max_retries`` (the one private hook here,
  covered by a contract test).
- ``mlflow.genai.evaluate`` retries scorers that hit rate limits (``MLFLOW_GENAI_EVAL_MAX_RETRIES``).
- litellm directly (MemAlign and GEPA reflection and embeddings through dspy):
  ``litellm.request_timeout`` and ``litellm.num_retries``.
"""

import importlib.abc
import importlib.util
import os
import sys

from judgeloop.providers import ROLES
from judgeloop.settings import Settings

_APPLIED: dict = {}


class ProviderFailure(RuntimeError):
    """A model provider kept failing within the configured limits; the message says what to check."""


def apply(settings: Settings) -> None:
    """Put the configured limits on every LLM call this process makes (idempotent)."""
    from judgeloop.store import prepare_environment

    prepare_environment(settings)  # before litellm's import: offline defaults it reads at import
    timeout, retries = settings.llm_timeout_seconds, settings.llm_max_retries
    os.environ["MLFLOW_GATEWAY_ROUTE_TIMEOUT_SECONDS"] = str(int(max(1, round(timeout))))
    os.environ["MLFLOW_GENAI_EVAL_MAX_RETRIES"] = str(retries)
    _APPLIED["litellm"] = (timeout, retries)
    if "litellm" in sys.modules:
        _configure_litellm(sys.modules["litellm"])
    elif not any(isinstance(finder, _ConfigureLitellmOnImport) for finder in sys.meta_path):
        # Importing litellm takes seconds; a run whose models MLflow calls natively (openai:/,
        # anthropic:/...) never needs it, so its limits are set when something imports it.
        sys.meta_path.insert(0, _ConfigureLitellmOnImport())
    _clamp_judge_retries(retries)


def _configure_litellm(litellm) -> None:
    timeout, _ = _APPLIED["litellm"]
    litellm.request_timeout = timeout
    # litellm reads a falsy num_retries argument as "use litellm.num_retries": keep that at 0 too.
    litellm.num_retries = 0
    # The OpenAI client's own retries: litellm's embedding reads ``max_retries or DEFAULT_MAX_RETRIES``,
    # so an explicit 0 still meant 2 there. Retries happen in ``_bound_litellm_calls`` only.
    litellm.DEFAULT_MAX_RETRIES = 0
    _bound_litellm_calls(litellm)


# litellm's module settings do not reach every call: ``embedding`` waits its own default of
# 600 s whatever ``request_timeout`` says, dspy passes its own ``num_retries`` (3) on every
# completion, litellm then retries twice over (``num_retries=2`` made 5 requests) and the
# OpenAI client under it retries on its own (``max_retries``). So every call gets the timeout
# as an argument, litellm and its client are told not to retry, and the retries happen here:
# exactly ``llm_max_retries`` of them, with back-off, for errors worth retrying.
_BOUNDED = ("completion", "acompletion", "embedding", "aembedding")
_RETRYABLE = {
    "RateLimitError", "InternalServerError", "ServiceUnavailableError", "Timeout", "APITimeoutError",
    "APIConnectionError", "APIError",
}


def bounded_arguments(kwargs: dict) -> dict:
    timeout, _ = _APPLIED["litellm"]
    given = kwargs.get("timeout")
    bounded = dict(kwargs)
    bounded["timeout"] = min(float(given), timeout) if isinstance(given, (int, float)) else timeout
    bounded["num_retries"] = 0
    bounded["max_retries"] = 0
    return bounded


def backoff_seconds(attempt: int) -> float:
    """Wait before retry ``attempt + 1``: 1 s, 2 s, 4 s..."""
    return float(2**attempt)


def _worth_retrying(exc: Exception) -> bool:
    return type(exc).__name__ in _RETRYABLE


def _bound_litellm_calls(litellm) -> None:
    import asyncio
    import functools
    import time

    for name in _BOUNDED:
        original = getattr(litellm, name, None)
        if original is None or getattr(original, "_judgeloop_bounded", False):
            continue
        if name.startswith("a"):

            async def wrapper(*args, _original=original, **kwargs):
                retries = _APPLIED["litellm"][1]
                for attempt in range(retries + 1):
                    try:
                        return await _original(*args, **bounded_arguments(kwargs))
                    except Exception as exc:
                        if attempt == retries or not _worth_retrying(exc):
                            raise
                    await asyncio.sleep(backoff_seconds(attempt))

        else:

            def wrapper(*args, _original=original, **kwargs):
                retries = _APPLIED["litellm"][1]
                for attempt in range(retries + 1):
                    try:
                        return _original(*args, **bounded_arguments(kwargs))
                    except Exception as exc:
                        if attempt == retries or not _worth_retrying(exc):
                            raise
                    time.sleep(backoff_seconds(attempt))

        wrapper = functools.wraps(original)(wrapper)
        wrapper._judgeloop_bounded = True
        setattr(litellm, name, wrapper)


class _ConfigureLitellmOnImport(importlib.abc.MetaPathFinder):
    """Finds litellm as Python would, and sets the configured limits once its module has run."""

    def __init__(self):
        self._finding = False

    def find_spec(self, name, path=None, target=None):
        if name != "litellm" or self._finding:
            return None
        self._finding = True
        try:
            spec = importlib.util.find_spec(name)
        finally:
            self._finding = False
        if spec is None or spec.loader is None:
            return spec
        run_module = spec.loader.exec_module

        def exec_module(module):
            run_module(module)
            _configure_litellm(module)

        spec.loader.exec_module = exec_module
        return spec


def _clamp_judge_retries(retries: int) -> None:
    from mlflow.genai.judges.adapters.base_adapter import AdapterInvocationInput

    _APPLIED["judge_retries"] = retries
    if getattr(AdapterInvocationInput, "_judgeloop_clamped", False):
        return
    original = getattr(AdapterInvocationInput, "__post_init__", None)

    def __post_init__(self):
        if original is not None:
            original(self)
        self.num_retries = min(self.num_retries, _APPLIED["judge_retries"])

    AdapterInvocationInput.__post_init__ = __post_init__
    AdapterInvocationInput._judgeloop_clamped = True


def where_to_look(settings: Settings, role: str) -> str:
    attr, env = ROLES[role]
    uri = getattr(settings, attr) or ""
    provider = uri.split(":/", 1)[0] if ":/" in uri else "unknown"
    base = os.environ.get("OPENAI_API_BASE") or os.environ.get("OPENAI_BASE_URL")
    if provider == "openai" and base:
        check = f"that the server at {base} (OPENAI_API_BASE) is running and answering, and its rate limits"
    elif provider == "ollama":
        check = "that Ollama is running (OLLAMA_HOST) and has the model pulled"
    elif provider in ("fake", "local"):
        check = "the local model server"
    else:
        check = f"the {provider} provider's status, your rate limits and quota, and its API key"
    return f"the {role} model {uri} (provider {provider}, {env}): check {check}"


def failure_message(settings: Settings, role: str, detail: str) -> str:
    return (
        f"LLM calls failed for {where_to_look(settings, role)}. Each request times out after "
        f"{settings.llm_timeout_seconds:g} s and is retried {settings.llm_max_retries} times with back-off "
        f"(JUDGELOOP_LLM_TIMEOUT_SECONDS, JUDGELOOP_LLM_MAX_RETRIES). Last error: {detail}"
    )
