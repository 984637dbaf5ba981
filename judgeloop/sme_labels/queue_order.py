"""The order in which experts are asked to label: two streams in one queue.

- Held-out traces (``split.is_heldout``) measure the judge. Their order is a seeded random
  shuffle of their ids (a stable hash of seed + trace id) that never looks at any priority, so
  the held-out labels stay a random sample and held-out agreement an unbiased estimate.
- Alignment traces teach the judge. They go by priority (highest first), with diversity:
  traces are grouped by their normalized question (lower case, punctuation and spacing
  removed) and taken in rounds, one trace per question per round (its highest-priority one
  left), so the variants of one question are not all asked before the other questions.
- The two streams are interleaved so that every prefix of the queue holds the held-out
  fraction of held-out traces (rounded), as long as both streams last.

``order_rule`` names the rule for metadata and the README. ``insertion`` order (setting
``queue_order``) keeps the given order and nothing else. Pure functions: no MLflow here.
"""

import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence

from judgeloop.judging import split

ACTIVE = "active"
INSERTION = "insertion"
ORDERS = (ACTIVE, INSERTION)

_NOT_WORD = re.compile(r"[^a-z0-9]+")


def normalized_question(text: str) -> str:
    """The question as compared for near-duplicates: lower case, words only, single spaces."""
    return " ".join(_NOT_WORD.split(str(text or "").lower())).strip()


def shuffle_key(seed: int | str, trace_id: str) -> bytes:
    return hashlib.sha256(f"heldout-order:{seed}:{trace_id}".encode()).digest()


def heldout_order(trace_ids: Iterable[str], seed: int | str = 0) -> list[str]:
    """Held-out traces in a seeded random order that depends on nothing but ids and seed."""
    return sorted(dict.fromkeys(trace_ids), key=lambda t: shuffle_key(seed, t))


def alignment_order(
    trace_ids: Sequence[str], priority: Mapping[str, float], questions: Mapping[str, str], seed: int | str = 0
) -> list[str]:
    """Alignment traces by priority, one per normalized question per round.

    Ties (and traces without a priority, counted as 0) fall back to the seeded shuffle, so the
    order is stable for the same inputs.
    """
    ranked = sorted(
        dict.fromkeys(trace_ids), key=lambda t: (-float(priority.get(t, 0.0)), shuffle_key(seed, t))
    )
    rank_in_question: dict[str, int] = {}
    seen: dict[str, int] = {}
    for trace_id in ranked:
        # A trace without a known question is its own group (never held back for others).
        key = normalized_question(questions.get(trace_id, "")) or f"\0{trace_id}"
        rank_in_question[trace_id] = seen.get(key, 0)
        seen[key] = rank_in_question[trace_id] + 1
    # Round r holds each question's (r+1)-th best trace; rounds in turn, by priority within one.
    position = {t: i for i, t in enumerate(ranked)}
    return sorted(ranked, key=lambda t: (rank_in_question[t], position[t]))


def interleave(alignment: Sequence[str], heldout: Sequence[str], heldout_fraction: float) -> list[str]:
    """Both streams merged, each in its own order: the next item comes from the held-out stream
    whenever taking it keeps the held-out share at or below the fraction (rounded down)."""
    result: list[str] = []
    a = h = 0
    while a < len(alignment) or h < len(heldout):
        taken = a + h
        want_heldout = (h + 1) <= heldout_fraction * (taken + 1) + 1e-9
        if h < len(heldout) and (want_heldout or a >= len(alignment)):
            result.append(heldout[h])
            h += 1
        else:
            result.append(alignment[a])
            a += 1
    return result


def queue_order(
    trace_ids: Sequence[str],
    heldout_fraction: float,
    priority: Mapping[str, float] | None = None,
    questions: Mapping[str, str] | None = None,
    rule: str = ACTIVE,
    seed: int | str = 0,
) -> list[str]:
    """Every given trace once, in the order experts should label them (``rule``: active | insertion)."""
    unique = list(dict.fromkeys(trace_ids))
    if rule == INSERTION:
        return unique
    if rule != ACTIVE:
        raise ValueError(f"queue order {rule!r} is not one of {', '.join(ORDERS)}")
    align_ids, heldout_ids = split.split(unique, heldout_fraction)
    return interleave(
        alignment_order(align_ids, priority or {}, questions or {}, seed),
        heldout_order(heldout_ids, seed),
        heldout_fraction,
    )


def order_rule(rule: str, heldout_fraction: float) -> str:
    """One sentence naming the order, for labeling_session's metadata."""
    if rule == INSERTION:
        return "insertion: traces in the order they were tagged"
    return (
        f"active: held-out traces ({heldout_fraction:.0%} of the queue) in seeded random order, never by priority; "
        "alignment traces by priority, one trace per normalized question per round"
    )
