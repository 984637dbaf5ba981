"""Checks that a model role is configured and its provider reachable, before any state is written."""

import os
import re
import socket
from urllib.parse import urlparse

from judgeloop.settings import Settings

ROLES = {
    "judge": ("judge_model", "JUDGELOOP_JUDGE_MODEL"),
    "reflection": ("reflection_model", "JUDGELOOP_REFLECTION_MODEL"),
    "embeddings": ("embedding_model", "JUDGELOOP_EMBEDDING_MODEL"),
    "agent": ("agent_model", "JUDGELOOP_AGENT_MODEL"),
}

# Provider -> environment variables of which at least one must be set for a call to succeed.
_CREDENTIALS = {
    "openai": ["OPENAI_API_KEY"],
    "anthropic": ["ANTHROPIC_API_KEY"],
    "gemini": ["GEMINI_API_KEY", "GOOGLE_API_KEY"],
    "mistral": ["MISTRAL_API_KEY"],
}


# provider:/model, e.g. openai:/gpt-4.1-mini, together_ai:/meta-llama/Llama-3-8b. Not a URL
# (http://user:password@host has "://"), not a bare token: a value that does not match is never
# repeated in a message, since a mistaken launch or variable may have put a credential there.
MODEL_URI = re.compile(r"[a-z][a-z0-9_-]*:/(?!/)[\w.@:/+-]+")


class ModelNotConfiguredError(RuntimeError):
    """A role has no model URI, or its provider cannot be reached; the message says what to set."""


def example_uri(role: str) -> str:
    return "openai:/text-embedding-3-small" if role == "embeddings" else "openai:/gpt-4.1-mini"


def missing_model_message(role: str) -> str:
    _, env = ROLES[role]
    return (
        f"No {role} model is configured: set {env} to an MLflow model URI, e.g. {example_uri(role)} "
        f"(with OPENAI_API_KEY), anthropic:/claude-sonnet-4-5, databricks:/<endpoint>, ollama:/<model>, "
        f"or openai:/<model> with OPENAI_API_BASE pointing at any OpenAI-compatible server."
    )


def require_model(settings: Settings, role: str) -> str:
    """The model URI for ``role``; raises ModelNotConfiguredError naming the setting to set.

    Every step that calls a model asks here first, so this is also where the configured
    timeout and retry limits are put on the calls that follow.
    """
    uri = _configured_uri(settings, role)
    from judgeloop.model_calls import llm_limits

    llm_limits.apply(settings)
    return uri


def _configured_uri(settings: Settings, role: str) -> str:
    attr, env = ROLES[role]
    uri = getattr(settings, attr)
    if not uri:
        raise ModelNotConfiguredError(missing_model_message(role))
    if not MODEL_URI.fullmatch(uri):
        raise ModelNotConfiguredError(
            f"{env} (run config: {attr}) is not an MLflow model URI of the form provider:/model, e.g. "
            f"{example_uri(role)} (the value is not shown: it may be a credential)."
        )
    provider = uri.split(":/", 1)[0]
    if provider == "fake":
        return uri
    if provider == "local":
        from judgeloop.stand_in_models.local_models import LocalModelError, check_embedding_uri

        try:
            check_embedding_uri(uri)
        except LocalModelError as exc:
            raise ModelNotConfiguredError(f"{env}={uri}: {exc}") from exc
        return uri
    if provider == "openai" and os.environ.get("OPENAI_API_BASE", os.environ.get("OPENAI_BASE_URL")):
        # A local OpenAI-compatible server needs no key (store.prepare_environment sets a placeholder).
        _require_reachable(os.environ.get("OPENAI_API_BASE") or os.environ["OPENAI_BASE_URL"], env, "OPENAI_API_BASE")
        return uri
    if provider == "ollama":
        _require_reachable(os.environ.get("OLLAMA_HOST", "http://127.0.0.1:11434"), env, "OLLAMA_HOST")
        return uri
    if provider == "databricks":
        # databricks-sdk's unified auth: host + token, or a profile of its config file.
        config_file = os.path.expanduser(os.environ.get("DATABRICKS_CONFIG_FILE", "~/.databrickscfg"))
        if not (os.environ.get("DATABRICKS_HOST") or os.path.exists(config_file)):
            raise ModelNotConfiguredError(
                f"{env}={uri} needs Databricks credentials: set DATABRICKS_HOST and DATABRICKS_TOKEN, "
                f"or DATABRICKS_CONFIG_PROFILE naming a profile in {config_file}."
            )
        return uri
    needed = _CREDENTIALS.get(provider)
    if needed and not any(os.environ.get(name) for name in needed):
        raise ModelNotConfiguredError(f"{env}={uri} needs an API key: set {' or '.join(needed)}.")
    return uri


def _require_reachable(base_url: str, env: str, url_env: str) -> None:
    parsed = urlparse(base_url if "://" in base_url else f"http://{base_url}")
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        with socket.create_connection((parsed.hostname, port), timeout=3):
            return
    except OSError as exc:
        raise ModelNotConfiguredError(
            f"The model server at {base_url} ({url_env}) is unreachable ({exc}); start it or change "
            f"{url_env} / {env}."
        ) from exc


def require_models(settings: Settings, *roles: str) -> dict[str, str]:
    """Check several roles at once so the user learns every missing setting in one message."""
    uris, problems = {}, []
    for role in roles:
        try:
            uris[role] = require_model(settings, role)
        except ModelNotConfiguredError as exc:
            problems.append(str(exc))
    if problems:
        raise ModelNotConfiguredError("\n".join(problems))
    return uris


# The offline demo's models when no provider is configured: the deterministic stand-ins of
# judgeloop.stand_in_models.fake_llm. They exercise the whole loop; they are not an LLM and judge naively.
STAND_IN_LABEL = "offline stand-in"


def nothing_configured(settings: Settings) -> bool:
    return not any(getattr(settings, attr) for attr, _ in ROLES.values())


def stand_in_environment() -> dict[str, str]:
    """``JUDGELOOP_*_MODEL`` variables pointing every role at the offline stand-in models."""
    return {env: f"fake:/{role}" for role, (_, env) in ROLES.items()}


def models_label(settings: Settings) -> str:
    """What the asset metadata says about the models: loud when they are stand-ins."""
    uris = [getattr(settings, attr) or "" for attr, _ in ROLES.values()]
    if any(uri.startswith("fake:/") for uri in uris):
        return f"{STAND_IN_LABEL} (deterministic fake:/ models, not an LLM: configure a provider for real judgements)"
    return "configured providers"


def configuration_report(settings: Settings) -> list[str]:
    """One line per role that is not usable, for start-up banners."""
    lines = []
    for role in ROLES:
        try:
            _configured_uri(settings, role)  # a banner makes no call: no limits to put on one
        except ModelNotConfiguredError as exc:
            lines.append(str(exc))
    return lines
