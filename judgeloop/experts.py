"""Several experts on one trace: what the judge learns from and is measured against, and how
well the experts agree with each other (the human ceiling).

MemAlign, handed a trace with disagreeing labels, keeps only the majority and drops the rest
with a warning. To decide that ourselves (and count what was used), every trace is reduced to
ONE consensus label before MemAlign or the agreement measure sees it: the median of the
experts' values on the scale's order, the lower middle value when their number is even. For
pass/fail that is the majority, with a tie counted as a fail.
"""

from dataclasses import dataclass, replace
from itertools import combinations
from statistics import fmean

from judgeloop import agreement
from judgeloop.labels import HumanLabel, normalize
from judgeloop.settings import Settings

CONSENSUS_RULE = (
    "one label per trace: the median of its experts' values on the scale's order "
    "(the lower middle value when the number of experts is even)"
)
CEILING_STATISTIC = (
    "mean of Cohen's kappa over every pair of experts, each pair on the traces both labelled "
    "(quadratic weights on ordinal scales); exact agreement and MAE pooled over all pairs"
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
    agreement: agreement.Agreement  # kappa: the pairwise mean; the rest pooled over all pairs
    reviewer_pairs: int
    pair_kappas: dict[str, float]  # "rater-a|rater-b" -> kappa


def human_ceiling(settings: Settings, labels_by_trace: dict[str, list[HumanLabel]]) -> Ceiling | None:
    """How well the experts agree with each other: every pair of reviewers on the traces both labelled."""
    pairs: dict[tuple[str, str], tuple[list, list]] = {}
    for group in labels_by_trace.values():
        # Values read back through a tracking server are floats (3.0); the scale holds ints.
        by_reviewer = {str(label.reviewer): normalize(settings, label.value) for label in group}
        for a, b in combinations(sorted(by_reviewer), 2):
            first, second = pairs.setdefault((a, b), ([], []))
            first.append(by_reviewer[a])
            second.append(by_reviewer[b])
    if not pairs:
        return None
    kappas = {f"{a}|{b}": agreement.measure(settings, *values).kappa for (a, b), values in sorted(pairs.items())}
    pooled = agreement.measure(
        settings,
        [v for first, _ in pairs.values() for v in first],
        [v for _, second in pairs.values() for v in second],
    )
    return Ceiling(replace(pooled, kappa=fmean(kappas.values())), len(pairs), kappas)
