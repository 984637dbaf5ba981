"""How far each reviewer got and how much reviewers agree with each other.

Progress counts a reviewer's labels that count (``labels.usable``) on the traces in the
review queue; agreement is measured pairwise on the traces both reviewers labelled, with
the same metric as judge-vs-expert agreement, so the two numbers can be compared: a judge
cannot be expected to agree with the experts better than they agree with each other.
"""

from dataclasses import dataclass
from itertools import combinations

from judgeloop.judging import agreement
from judgeloop.sme_labels import labels
from judgeloop.settings import Settings


@dataclass(frozen=True)
class ReviewerProgress:
    reviewer: str
    labelled: int  # traces of the queue this reviewer labelled (labels that count)
    queued: int  # traces in the queue
    rejected: int  # labels that do not count (off scale, unassigned reviewer)

    @property
    def text(self) -> str:
        done = f"{self.labelled}/{self.queued}" if self.queued else str(self.labelled)
        return f"{self.reviewer} {done}" + (f" ({self.rejected} rejected)" if self.rejected else "")


@dataclass(frozen=True)
class PairAgreement:
    first: str
    second: str
    shared_traces: int
    kappa: float
    exact: float

    @property
    def text(self) -> str:
        return f"{self.first}~{self.second} kappa {self.kappa:.3f} (exact {self.exact:.0%}) on {self.shared_traces} shared trace(s)"


@dataclass(frozen=True)
class ReviewReport:
    reviewers: list[ReviewerProgress]
    pairs: list[PairAgreement]

    def as_dict(self) -> dict:
        return {
            "reviewers": [
                {"reviewer": r.reviewer, "labelled": r.labelled, "queued": r.queued, "rejected": r.rejected}
                for r in self.reviewers
            ],
            "agreement": [
                {"reviewers": [p.first, p.second], "shared_traces": p.shared_traces, "kappa": p.kappa, "exact": p.exact}
                for p in self.pairs
            ],
        }


def report(
    settings: Settings,
    used: list[labels.HumanLabel],
    rejected: list[labels.Rejection],
    queued_trace_ids: list[str] | None = None,
) -> ReviewReport:
    """Per-reviewer progress over ``queued_trace_ids`` (all labelled traces when None) and
    pairwise agreement. Assigned reviewers who have not labelled yet are listed with 0."""
    queued = set(queued_trace_ids) if queued_trace_ids is not None else None
    by_reviewer: dict[str, dict[str, labels.HumanLabel]] = {name: {} for name in settings.reviewers}
    for label in used:
        if queued is None or label.trace_id in queued:
            by_reviewer.setdefault(str(label.reviewer), {})[label.trace_id] = label
    refused: dict[str, int] = {}
    for rejection in rejected:
        refused[str(rejection.reviewer)] = refused.get(str(rejection.reviewer), 0) + 1
    progress = [
        ReviewerProgress(name, len(by_reviewer.get(name, {})), len(queued or ()), refused.get(name, 0))
        for name in sorted(set(by_reviewer) | set(refused))
    ]
    pairs = []
    for first, second in combinations(sorted(by_reviewer), 2):
        shared = sorted(set(by_reviewer[first]) & set(by_reviewer[second]))
        if not shared:
            continue
        a = [labels.normalize(settings, by_reviewer[first][t].value) for t in shared]
        b = [labels.normalize(settings, by_reviewer[second][t].value) for t in shared]
        measured = agreement.measure(settings, a, b)
        pairs.append(PairAgreement(first, second, len(shared), measured.kappa, measured.exact))
    return ReviewReport(progress, pairs)
