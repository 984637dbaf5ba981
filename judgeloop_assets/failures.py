"""Expected failures shown as a Dagster ``Failure``: the reason first, no stack trace.

A run that fails because a model is not configured, labels are too few, records lack
expectations or the provider cannot be reached is not a bug: the person looking at the run
needs the sentence that says what to do, not ten frames of ``DagsterExecutionStepExecutionError``.
Anything else propagates unchanged, so real bugs keep their traceback.
"""

import functools
import inspect

import dagster as dg

from judgeloop.alignment import NotEnoughLabelsError
from judgeloop.optimization import MissingExpectationsError
from judgeloop.providers import ModelNotConfiguredError

# Exception class -> (kind shown in metadata, what to do).
_EXPECTED = (
    (ModelNotConfiguredError, "model not configured", "Set the model URI (and its API key) named in the message, then re-run."),
    (NotEnoughLabelsError, "not enough labels", "Label more traces in the MLflow review queue, then re-run."),
    (MissingExpectationsError, "missing expectations", "Attach expectations to the eval dataset (JUDGELOOP_EXPECTATIONS_PATH), then re-run."),
)
# Connection-level errors of the provider clients MLflow, MemAlign and GEPA call through.
_UNREACHABLE = {"APIConnectionError", "ServiceUnavailableError", "Timeout", "APITimeoutError", "InternalServerError"}


def as_failure(exc: BaseException) -> dg.Failure | None:
    """The ``Failure`` to raise instead of ``exc``, or None when ``exc`` is a real bug."""
    for cls, kind, action in _EXPECTED:
        if isinstance(exc, cls):
            return _failure(kind, str(exc), action)
    module = type(exc).__module__ or ""
    if module.split(".")[0] in {"litellm", "openai", "httpx"} and type(exc).__name__ in _UNREACHABLE:
        return _failure("provider unreachable", str(exc), "Check that the model provider is reachable (network, base URL, API key), then re-run.")
    return None


def _failure(kind: str, message: str, action: str) -> dg.Failure:
    return dg.Failure(
        description=message,
        metadata={"reason": kind, "what to do": action, "message": dg.MetadataValue.text(message)},
        allow_retries=False,
    )


def expected_failures(fn):
    """Asset decorator (under ``@dg.asset``): turn expected errors into a readable ``Failure``."""
    if inspect.isgeneratorfunction(fn):

        @functools.wraps(fn)
        def generator(*args, **kwargs):
            try:
                yield from fn(*args, **kwargs)
            except Exception as exc:
                failure = as_failure(exc)
                if failure is None:
                    raise
                raise failure from None  # the message is the whole story: no chained traceback

        return generator

    @functools.wraps(fn)
    def function(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            failure = as_failure(exc)
            if failure is None:
                raise
            raise failure from None

    return function
