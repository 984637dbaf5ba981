"""Expected failures shown as a Dagster ``Failure``: the reason first, no stack trace.

A run that fails because a model is not configured, labels are too few, records lack
expectations or the provider cannot be reached is not a bug: the person looking at the run
needs the sentence that says what to do, not ten frames of ``DagsterExecutionStepExecutionError``.
Anything else propagates unchanged, so real bugs keep their traceback.
"""

import functools
import inspect

import dagster as dg

from judgeloop.judging.alignment import NotEnoughLabelsError
from judgeloop.model_calls.llm_limits import ProviderFailure
from judgeloop.prompt_optimization.optimization import MissingExpectationsError
from judgeloop.model_calls.providers import ModelNotConfiguredError

# Exception class -> (kind shown in metadata, what to do).
_EXPECTED = (
    (ModelNotConfiguredError, "model not configured", "Set the model URI (and its API key) named in the message, then re-run."),
    (NotEnoughLabelsError, "not enough labels", "Label more traces in the MLflow review queue, then re-run."),
    (ProviderFailure, "provider failed", "Check the provider named in the message (status, rate limits, quota, base URL), then re-run."),
    (MissingExpectationsError, "missing expectations", "Attach expectations to the eval dataset (JUDGELOOP_EXPECTATIONS_PATH), then re-run."),
)
# Connection-level errors of the provider clients MLflow, MemAlign and GEPA call through.
_UNREACHABLE = {"APIConnectionError", "ServiceUnavailableError", "Timeout", "APITimeoutError", "InternalServerError"}


_PROVIDER_MODULES = {"litellm", "openai", "httpx"}


def as_failure(exc: BaseException, settings=None) -> dg.Failure | None:
    """The ``Failure`` to raise instead of ``exc``, or None when ``exc`` is a real bug.

    With the run's ``settings``, a provider error (rate limit, server error, timeout) anywhere
    in the chain of causes names the model role whose call failed and the settings to check.
    """
    for cls, kind, action in _EXPECTED:
        if isinstance(exc, cls):
            return _failure(kind, str(exc), action)
    module = type(exc).__module__ or ""
    if module.split(".")[0] in _PROVIDER_MODULES and type(exc).__name__ in _UNREACHABLE and settings is None:
        return _failure("provider unreachable", str(exc), "Check that the model provider is reachable (network, base URL, API key), then re-run.")
    provider_error = _provider_error(exc)
    if provider_error is not None and settings is not None:
        from judgeloop.model_calls import llm_limits

        roles = _roles_of(settings, getattr(provider_error, "model", None))
        detail = f"{type(provider_error).__name__}: {str(provider_error).strip()[:500]}"
        message = "\n".join(llm_limits.failure_message(settings, role, detail) for role in roles)
        return _failure("provider failed", message, "Check the provider named in the message (status, rate limits, quota, base URL), then re-run.")
    return None


def _provider_error(exc: BaseException | None) -> BaseException | None:
    """The first error raised by a provider client in ``exc``'s chain of causes."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if (type(exc).__module__ or "").split(".")[0] in _PROVIDER_MODULES:
            return exc
        exc = exc.__cause__ or exc.__context__
    return None


def _roles_of(settings, model: str | None) -> list[str]:
    """The model roles configured with ``model`` (litellm names it ``provider/model`` or ``model``)."""
    from judgeloop.model_calls.providers import ROLES

    def matches(uri: str | None) -> bool:
        if not uri or not model or ":/" not in uri:
            return False
        provider, name = uri.split(":/", 1)
        return model in (name, f"{provider}/{name}", uri)

    found = [role for role, (attr, _) in ROLES.items() if matches(getattr(settings, attr))]
    return found or [role for role, (attr, _) in ROLES.items() if getattr(settings, attr)]


def _failure(kind: str, message: str, action: str) -> dg.Failure:
    return dg.Failure(
        description=message,
        metadata={"reason": kind, "what to do": action, "message": dg.MetadataValue.text(message)},
        allow_retries=False,
    )


def _settings_of(kwargs: dict):
    resource = kwargs.get("judgeloop")
    try:
        return resource.settings() if resource is not None else None
    except Exception:  # settings that cannot load fail the run on their own
        return None


def expected_failures(fn):
    """Asset decorator (under ``@dg.asset``): turn expected errors into a readable ``Failure``."""
    if inspect.isgeneratorfunction(fn):

        @functools.wraps(fn)
        def generator(*args, **kwargs):
            try:
                yield from fn(*args, **kwargs)
            except Exception as exc:
                failure = as_failure(exc, _settings_of(kwargs))
                if failure is None:
                    raise
                raise failure from None  # the message is the whole story: no chained traceback

        return generator

    @functools.wraps(fn)
    def function(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            failure = as_failure(exc, _settings_of(kwargs))
            if failure is None:
                raise
            raise failure from None

    return function
