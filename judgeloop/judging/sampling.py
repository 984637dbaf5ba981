"""A held-out sample of bounded size, chosen stably and stratified by label value.

Measuring a judge costs one call per held-out trace, and the held-out split grows with every
label ever given. Capping it at ``heldout_max`` traces bounds what a re-alignment costs. The
sample must be:

- stable: the same traces from run to run, so the promoted judge's stored scores are reused
  (a trace's rank is a hash of its id, never a random draw), and a new trace enters only if it
  outranks one already in;
- stratified by label value: each value keeps its share of the held-out traces (largest
  remainder), and every value present keeps at least one trace, so rare ratings are not lost.

A trace's stratum is its most frequent SME value (ties: the first in the scale's order).
"""

import hashlib
from collections import Counter

from judgeloop.judging.agreement import scale_values
from judgeloop.settings import Settings


def rank(trace_id: str) -> int:
    # A different salt from split.heldout_score, so the sample is not the lowest-scored slice of the split.
    return int.from_bytes(hashlib.sha256(f"heldout-sample:{trace_id}".encode()).digest()[:8], "big")


def stratum(settings: Settings, values: list):
    from judgeloop.sme_labels.labels import normalize

    order = {str(v): i for i, v in enumerate(scale_values(settings))}
    counts = Counter(str(normalize(settings, v)) for v in values)
    return min(counts, key=lambda v: (-counts[v], order.get(v, len(order)), v))


def quotas(sizes: dict, cap: int) -> dict:
    """How many traces each stratum keeps: proportional, largest remainder, at least one each."""
    total = sum(sizes.values())
    if total <= cap:
        return dict(sizes)
    exact = {s: cap * n / total for s, n in sizes.items()}
    share = {s: int(x) for s, x in exact.items()}
    for s in sorted(exact, key=lambda s: (-(exact[s] - share[s]), str(s)))[: cap - sum(share.values())]:
        share[s] += 1
    for s in sorted(sizes, key=str):
        if share[s] == 0 and sizes[s] > 0:
            donor = max(share, key=lambda d: (share[d], str(d)))
            if share[donor] > 1:
                share[donor] -= 1
                share[s] = 1
    return share


def sample(settings: Settings, heldout_values: dict[str, list], cap: int) -> list[str]:
    """At most ``cap`` of the held-out trace ids (``{trace id: SME values}``), sorted."""
    if len(heldout_values) <= cap:
        return sorted(heldout_values)
    strata: dict[str, list[str]] = {}
    for trace_id, values in heldout_values.items():
        strata.setdefault(stratum(settings, values), []).append(trace_id)
    share = quotas({s: len(ids) for s, ids in strata.items()}, cap)
    chosen = []
    for s, ids in strata.items():
        chosen.extend(sorted(ids, key=rank)[: share[s]])
    return sorted(chosen)
