"""How much does alignment buy on your data? k-fold MemAlign alignment of the base judge.

Each labelled trace lands in one of k folds (by a stable hash of its id). For each fold, the
base judge is aligned on the labels of the other folds and both judges score the fold's
traces; pooled over folds, every trace is scored once by the base judge and once by a judge
that never saw its labels. Reported: base vs aligned agreement with 95% paired bootstrap
intervals, each judge against the experts' consensus label of a trace (as in ``aligned_judge``),
and the experts' own agreement on the same traces (``experts.ceiling``, the one definition used
everywhere) that a judge cannot be expected to beat. Runs with whatever models the settings
name; nothing is registered.
"""

import hashlib
import logging
from dataclasses import dataclass

from judgeloop.judging import alignment, intervals, judges, scores
from judgeloop.model_calls import providers
from judgeloop.sme_labels import experts, labels
from judgeloop.settings import Settings

log = logging.getLogger(__name__)


@dataclass
class Fidelity:
    folds: int
    traces: int
    labels: int
    comparison: intervals.Paired
    ceiling: "experts.Ceiling | None"
    base_scores: scores.Scores
    aligned_scores: scores.Scores

    def table(self) -> list[dict]:
        rows = []
        for metric in self.comparison.difference:
            rows.append(
                {
                    "metric": metric,
                    "base": self.comparison.before[metric].text(),
                    "aligned": self.comparison.after[metric].text(),
                    "difference": self.comparison.difference[metric].text(),
                    "sme_ceiling": self.ceiling.estimates[metric].text() if self.ceiling and metric in self.ceiling.estimates else "n/a",
                }
            )
        return rows


def fold_of(trace_id: str, k: int) -> int:
    return int.from_bytes(hashlib.sha256(f"fold:{trace_id}".encode()).digest()[:8], "big") % k


def evaluate(settings: Settings, experiment_id: str, k: int = 5, progress=log.info) -> Fidelity:
    """k-fold alignment on the experiment's current SME labels."""
    from mlflow.genai.judges.optimizers import MemAlignOptimizer

    if k < 2:
        raise ValueError(f"k must be at least 2 folds, got {k}")
    uris = providers.require_models(settings, "judge", "reflection", "embeddings")
    used, rejected = labels.current_labels(settings, experiment_id)
    grouped = labels.by_trace(used)
    if len(grouped) < 2 * k:
        raise ValueError(f"{len(grouped)} labelled traces for {k} folds: need at least {2 * k}. Label more traces or lower k.")
    progress(f"{len(used)} labels on {len(grouped)} traces ({len(rejected)} rejected), {k} folds")
    cleaned = alignment.cleaned_traces(settings, experiment_id, grouped, used)
    base = judges.build_judge(settings, uris["judge"])
    base_scores = scores.call_judge(settings, base, list(cleaned.values()))
    aligned_scores = scores.Scores()
    for fold in range(k):
        held = [t for t in grouped if fold_of(t, k) == fold]
        train = [cleaned[t] for t in grouped if fold_of(t, k) != fold]
        progress(f"fold {fold + 1}/{k}: aligning on {len(train)} traces, scoring {len(held)}")
        aligned = MemAlignOptimizer(reflection_lm=uris["reflection"], embedding_model=uris["embeddings"]).align(base, train)
        part = scores.call_judge(settings, aligned, [cleaned[t] for t in held])
        aligned_scores.values.update(part.values)
        aligned_scores.paid += part.paid
        aligned_scores.provider_errors.update(part.provider_errors)
        aligned_scores.invalid_answers.update(part.invalid_answers)
    common = [t for t in sorted(grouped) if t in base_scores.values and t in aligned_scores.values]
    consensus = experts.consensus_by_trace(settings, grouped)
    comparison = intervals.paired_bootstrap(
        settings,
        [[labels.normalize(settings, consensus[t].value)] for t in common],
        [base_scores.values[t] for t in common],
        [aligned_scores.values[t] for t in common],
        resamples=settings.bootstrap_resamples,
        min_traces=settings.interval_min_traces,
    )
    ceiling = experts.ceiling(settings, {t: grouped[t] for t in common})
    return Fidelity(k, len(common), len(used), comparison, ceiling, base_scores, aligned_scores)


def render(result: Fidelity) -> str:
    rows = result.table()
    header = ["metric", "base", "aligned", "difference", "sme_ceiling"]
    widths = {h: max(len(h), *(len(str(r[h])) for r in rows)) for h in header}
    lines = [" | ".join(h.ljust(widths[h]) for h in header), "-+-".join("-" * widths[h] for h in header)]
    lines += [" | ".join(str(r[h]).ljust(widths[h]) for h in header) for r in rows]
    lines.append(
        f"{result.traces} traces scored by both judges ({result.labels} labels, {result.folds} folds); "
        f"SME ceiling ({experts.CEILING_STATISTIC}) from {result.ceiling.traces if result.ceiling else 0} of them "
        f"with two or more reviewers; 95% bootstrap intervals."
    )
    for name, scored in (("base", result.base_scores), ("aligned", result.aligned_scores)):
        if scored.unscored:
            lines.append(f"{name} judge: {scored.summary()} (left out, not counted as scores)")
    return "\n".join(lines)

