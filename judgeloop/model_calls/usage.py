"""Tokens and estimated cost per LLM role, from the providers' own usage fields.

Every call that goes through litellm (MemAlign's and GEPA's reflection, embeddings, judges
and agents on litellm-routed providers) reports its usage to ``judgeloop.model_calls.calls``; this module
adds it up per role. Prices come from litellm's price table as shipped in the installed
package (``LITELLM_LOCAL_MODEL_COST_MAP=True``, set by ``store.prepare_environment``: nothing is
downloaded). What is not known is said to be unknown, never zero:

- a call whose response carries no usage leaves that role's tokens unknown;
- a model missing from the price table leaves that role's cost unknown;
- calls MLflow makes with its own clients (``openai:/``, ``anthropic:/`` judges, ...) do not pass
  through litellm and are not seen here: a role with no recorded call has no row.
"""

import threading
from contextlib import contextmanager
from dataclasses import dataclass

from judgeloop.model_calls import calls
from judgeloop.settings import Settings


@dataclass
class RoleUsage:
    role: str
    model: str
    calls: int = 0
    calls_without_usage: int = 0
    input_tokens: int = 0
    output_tokens: int = 0

    @property
    def tokens_known(self) -> bool:
        return self.calls_without_usage == 0

    @property
    def cost_usd(self) -> float | None:
        if not self.tokens_known:
            return None
        return price(self.model, self.input_tokens, self.output_tokens)

    def as_row(self) -> dict:
        cost = self.cost_usd
        return {
            "role": self.role,
            "model": self.model,
            "calls": self.calls,
            "input_tokens": self.input_tokens if self.tokens_known else "unknown",
            "output_tokens": self.output_tokens if self.tokens_known else "unknown",
            "cost_usd": f"{cost:.6f}" if cost is not None else "unknown",
        }


def price(model: str, input_tokens: int, output_tokens: int) -> float | None:
    """Estimated USD from litellm's local price table, or None when the model is not in it."""
    import litellm

    litellm.suppress_debug_info = True
    try:
        prompt_cost, completion_cost = litellm.cost_per_token(
            model=model, prompt_tokens=input_tokens, completion_tokens=output_tokens
        )
    except Exception:  # litellm raises for models it has no price for
        return None
    return float(prompt_cost + completion_cost)


def litellm_model(uri: str) -> str:
    """The model string litellm sees for an MLflow model URI (``openai:/gpt-4.1`` -> ``openai/gpt-4.1``)."""
    return uri.replace(":/", "/", 1)


def roles(settings: Settings) -> dict[str, str]:
    """litellm model string -> role name, for the configured models."""
    found = {}
    for role, uri in (
        ("agent", settings.agent_model), ("embeddings", settings.embedding_model),
        ("reflection", settings.reflection_model), ("judge", settings.judge_model),
    ):
        if uri:
            found[litellm_model(uri)] = role
    return found


def _usage_of(response) -> tuple[int, int] | None:
    usage = getattr(response, "usage", None)
    if usage is None and isinstance(response, dict):
        usage = response.get("usage")
    if usage is None:
        return None
    get = usage.get if isinstance(usage, dict) else lambda k: getattr(usage, k, None)
    prompt, completion = get("prompt_tokens"), get("completion_tokens")
    if prompt is None and completion is None:
        return None
    return int(prompt or 0), int(completion or 0)


class Ledger:
    """Usage per (role, model) while recording."""

    def __init__(self, settings: Settings):
        self._roles = roles(settings)
        self._lock = threading.Lock()
        self.by_role: dict[tuple[str, str], RoleUsage] = {}

    def __call__(self, kind: str, model, response) -> None:
        model = str(model or "unknown")
        bare = model.split("/", 1)[-1]
        role = self._roles.get(model) or next((r for m, r in self._roles.items() if m.split("/", 1)[-1] == bare), None)
        role = role or ("embeddings" if kind == "embedding" else "other")
        counted = _usage_of(response)
        with self._lock:
            entry = self.by_role.setdefault((role, model), RoleUsage(role, model))
            entry.calls += 1
            if counted is None:
                entry.calls_without_usage += 1
            else:
                entry.input_tokens += counted[0]
                entry.output_tokens += counted[1]

    def rows(self) -> list[dict]:
        return [self.by_role[key].as_row() for key in sorted(self.by_role)]

    def total_cost(self) -> float | None:
        costs = [entry.cost_usd for entry in self.by_role.values()]
        return None if not costs or any(c is None for c in costs) else sum(costs)


@contextmanager
def record(settings: Settings):
    """Yield a Ledger of every litellm call's usage made inside the block (all threads)."""
    calls._install()
    ledger = Ledger(settings)
    calls._LISTENERS.append(ledger)
    try:
        yield ledger
    finally:
        calls._LISTENERS.remove(ledger)
