"""Several experts on one trace: what the judge learns from and is measured against, and how
well the experts agree with each other (the human ceiling).

MemAlign, handed a trace with disagreeing labels, keeps only the majority and drops the rest
with a warning. To decide that ourselves (and count what was used), every trace is reduced to
ONE consensus label before MemAlign or the agreement measure sees it: the median of the
experts' values on the scale's order, the lower middle value when their number is even. For
pass/fail that is the majority, with a tie counted as a fail.
"""

from dataclasses import dataclass
from itertools import combinations

from judgeloop.judging import agreement
from judgeloop.sme_labels.labels import HumanLabel, normalize
from judgeloop.settings import Settings

CONSENSUS_RULE = (
    "one label per trace: the median of its experts' values on the scale's order "
    "(the lower middle value when the number of experts is even)"
)
CEILING_STATISTIC = (
    "experts vs experts: Cohen's kappa (quadratic weights on ordinal scales) pooled over every pair of "
    "experts on each trace, each trace weighing one, on the same held-out traces the judge was measured "
    "on; 95% bootstrap interval over traces"
)


def consensus(settings: Settings, group: list[HumanLabel]) -> HumanLabel:
    """The label that stands for ``group`` (one trace's labels, one per expert).

    It is one of the experts' own labels (value and comment), so what MemAlign learns from
    is something an expert wrote.
    """
    order = {str(value): i for i, value in enumerate(agreement.scale_values(settings))}
    ranked = sorted(group, key=lambda label: (order[str(normalize(settings, label.value))], label.key))
    return ranked[(len(ranked) - 1) // 2]


def consensus_by_trace(settings: Settings, grouped: dict[str, list[HumanLabel]]) -> dict[str, HumanLabel]:
    return {trace_id: consensus(settings, group) for trace_id, group in grouped.items()}


@dataclass(frozen=True)
class Ceiling:
    """How well the experts agree with each other on a set of traces: the most a judge can be
    expected to reach against them. The one definition (``CEILING_STATISTIC``), used everywhere."""

    estimates: dict  # metric -> intervals.Estimate (kappa, exact, mae on likert)
    traces: int  # traces with at least two experts (the ones the statistic stands on)
    reviewer_pairs: int  # distinct pairs of experts seen together on a trace
    pair_count: int  # (trace, pair of experts) combinations pooled

    @property
    def kappa(self) -> float | None:
        return self.estimates["kappa"].value

    def as_dict(self) -> dict:
        return {
            "statistic": CEILING_STATISTIC, "traces": self.traces, "reviewer_pairs": self.reviewer_pairs,
            **{metric: estimate.as_dict() for metric, estimate in self.estimates.items()},
        }


def ceiling(
    settings: Settings, labels_by_trace: dict[str, list[HumanLabel]], resamples: int | None = None, min_traces: int | None = None
) -> Ceiling | None:
    """The experts' agreement with each other on ``labels_by_trace`` (pass the traces the judge
    was measured on), or None when no trace has two experts."""
    from judgeloop.judging import intervals

    pairs, reviewer_pairs, traces = [], set(), 0
    for group in labels_by_trace.values():
        # Values read back through a tracking server are floats (3.0); the scale holds ints.
        by_reviewer = {str(label.reviewer): normalize(settings, label.value) for label in group}
        combos = list(combinations(sorted(by_reviewer), 2))
        if not combos:
            continue
        for a, b in combos:
            pairs.append((traces, by_reviewer[a], by_reviewer[b], 1.0 / len(combos)))
            reviewer_pairs.add((a, b))
        traces += 1
    if not pairs:
        return None
    estimates = intervals.pooled_bootstrap(
        settings, pairs, traces,
        resamples=settings.bootstrap_resamples if resamples is None else resamples,
        min_traces=settings.interval_min_traces if min_traces is None else min_traces,
    )
    return Ceiling(estimates, traces, len(reviewer_pairs), len(pairs))
