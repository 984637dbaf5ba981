"""Time and retry limits on every LLM call, and failure messages that say where to look.

Model calls leave through three doors, each with its own knobs (all set here, from Settings):
- MLflow's judge clients (``openai:/``, ``anthropic:/``... and litellm for other providers):
  MLflow retries a failed request 10 times with back-off up to 30 s (about three minutes per
  call) and waits ``MLFLOW_GATEWAY_ROUTE_TIMEOUT_SECONDS`` per request. Its retry count has no
  setting, so the adapter input is clamped to ``llm_max_retries``
  (``judgeloop.mlflow_internals.judge_retries``, covered by a contract test).
- ``mlflow.genai.evaluate`` retries scorers that hit rate limits (``MLFLOW_GENAI_EVAL_MAX_RETRIES``).
- litellm directly (MemAlign and GEPA reflection and embeddings through dspy):
  ``litellm.request_timeout`` and ``litellm.num_retries``, and a wrapper on each call
  (``judgeloop.mlflow_internals.litellm_hooks``).
"""

import os

from judgeloop.mlflow_internals import litellm_hooks
from judgeloop.mlflow_internals.judge_retries import clamp_judge_retries
from judgeloop.model_calls.providers import ROLES
from judgeloop.settings import Settings

_APPLIED: dict = {}


class ProviderFailure(RuntimeError):
    """A model provider kept failing within the configured limits; the message says what to check."""


def apply(settings: Settings) -> None:
    """Put the configured limits on every LLM call this process makes (idempotent)."""
    from judgeloop.stack.store import prepare_environment

    prepare_environment(settings)  # before litellm's import: offline defaults it reads at import
    timeout, retries = settings.llm_timeout_seconds, settings.llm_max_retries
    os.environ["MLFLOW_GATEWAY_ROUTE_TIMEOUT_SECONDS"] = str(int(max(1, round(timeout))))
    os.environ["MLFLOW_GENAI_EVAL_MAX_RETRIES"] = str(retries)
    _APPLIED["litellm"] = (timeout, retries)
    # Importing litellm takes seconds; a run whose models MLflow calls natively (openai:/,
    # anthropic:/...) never needs it, so its limits are set when something imports it.
    litellm_hooks.when_imported(_configure_litellm)
    clamp_judge_retries(retries)


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
    litellm_hooks.replace_calls(litellm, "_judgeloop_bounded", _bounding)


def _bounding(name: str, original):
    import asyncio
    import time

    if name.startswith("a"):

        async def wrapper(*args, **kwargs):
            retries = _APPLIED["litellm"][1]
            for attempt in range(retries + 1):
                try:
                    return await original(*args, **bounded_arguments(kwargs))
                except Exception as exc:
                    if attempt == retries or not _worth_retrying(exc):
                        raise
                await asyncio.sleep(backoff_seconds(attempt))

        return wrapper

    def wrapper(*args, **kwargs):
        retries = _APPLIED["litellm"][1]
        for attempt in range(retries + 1):
            try:
                return original(*args, **bounded_arguments(kwargs))
            except Exception as exc:
                if attempt == retries or not _worth_retrying(exc):
                    raise
            time.sleep(backoff_seconds(attempt))

    return wrapper


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
