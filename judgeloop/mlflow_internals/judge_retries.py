"""The retry count of MLflow's judge clients, clamped (a private hook, MLflow 3.17.2).

MLflow retries a failed judge request 10 times with back-off up to 30 s (about three minutes per
call) and has no setting for it. Every judge call builds an ``AdapterInvocationInput``; its
``__post_init__`` is wrapped so ``num_retries`` never exceeds the configured limit.
tests/test_mlflow_internals.py checks the class and its field against the pinned MLflow.
"""

_LIMIT: dict = {}
MARKER = "_judgeloop_clamped"


def clamp_judge_retries(retries: int) -> None:
    """Every judge call of this process from now on retries at most ``retries`` times (idempotent;
    a later call changes the limit)."""
    from mlflow.genai.judges.adapters.base_adapter import AdapterInvocationInput

    _LIMIT["retries"] = retries
    if getattr(AdapterInvocationInput, MARKER, False):
        return
    original = getattr(AdapterInvocationInput, "__post_init__", None)

    def __post_init__(self):
        if original is not None:
            original(self)
        self.num_retries = min(self.num_retries, _LIMIT["retries"])

    AdapterInvocationInput.__post_init__ = __post_init__
    setattr(AdapterInvocationInput, MARKER, True)
