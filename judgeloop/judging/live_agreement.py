"""Live agreement: how the judge in use agrees with the labels the SMEs give today.

Each label that arrives is a free measurement of the promoted judge, often on a trace it has
already scored (stored scores are reused, see ``judgeloop.judging.scores``). Measured per batch (the
labels written since the last measurement) and rolling (the newest ``live_agreement_window``
labels): a falling rolling kappa means the experts' standard and the judge drift apart, whatever
the held-out split said when it was promoted.

It runs after the re-alignment those labels triggered, never on the way to it, so it measures
the judge that was in use when the batch arrived (``judge_in_use_before``): the newest promoted
judge not aligned on any of the batch's labels. A judge measured on labels it learned from
would look better than it is.

Cost: at most one judge call per label in the batch or the window that the promoted judge
never scored, so it is bounded by ``live_agreement_window`` and usually much smaller.
"""

import json
from dataclasses import dataclass, field

from judgeloop.judging import agreement, intervals, judges, scores
from judgeloop.sme_labels import labels
from judgeloop.settings import Settings

WATERMARK_TAG = "judgeloop.live_agreement_watermark"


@dataclass(frozen=True)
class Pair:
    trace_id: str
    reviewer: str | None
    human: object
    judge: object
    updated_ms: int


@dataclass
class LiveAgreement:
    judge_version: int
    batch: list[Pair]
    rolling: list[Pair]
    batch_agreement: agreement.Agreement
    rolling_agreement: agreement.Agreement
    rolling_intervals: dict[str, intervals.Estimate]
    unscored: int  # labels whose trace the judge could not score (provider errors, invalid answers)
    scored: scores.Scores = field(repr=False, default=None)
    newest_ms: int = 0

    def disagreements(self, pairs: list[Pair] | None = None) -> list[Pair]:
        """Pairs where judge and SME differ, the largest gaps first."""
        found = [p for p in (self.rolling if pairs is None else pairs) if str(p.human) != str(p.judge)]
        return sorted(found, key=lambda p: (-_gap(p), -p.updated_ms))


def _gap(pair: Pair) -> float:
    try:
        return abs(float(pair.human) - float(pair.judge))
    except (TypeError, ValueError):
        return 1.0


def watermark(experiment_id: str) -> tuple[int, str]:
    from judgeloop.stack.store import get_experiment_tag

    raw = get_experiment_tag(experiment_id, WATERMARK_TAG)
    if not raw:
        return (0, "")
    data = json.loads(raw)
    return int(data["t"]), str(data["id"])


def set_watermark(experiment_id: str, key: tuple[int, str]) -> None:
    from judgeloop.stack.store import set_experiment_tag

    set_experiment_tag(experiment_id, WATERMARK_TAG, json.dumps({"t": key[0], "id": key[1]}))


def _hydrate(settings: Settings, experiment_id: str, judge, used: list[labels.HumanLabel]) -> None:
    """Load a MemAlign judge's memory from cleaned traces before it scores (see alignment)."""
    from judgeloop.judging import alignment
    from judgeloop.mlflow_internals import memalign_memory

    remembered = set(memalign_memory.remembered_trace_ids(judge))
    if not remembered:
        return
    kept = [label for label in used if label.trace_id in remembered]
    memalign_memory.hydrate_memory(judge, alignment.cleaned_traces(settings, experiment_id, {label.trace_id for label in kept}, kept))


def judge_in_use_before(experiment_id: str, since_ms: int) -> int:
    """The version that was in use when labels changed at ``since_ms`` arrived: the promoted one,
    or, if it was aligned on labels that new, the promoted version it was aligned from (and so on)."""
    version = judges.promoted_version(experiment_id)
    if version is None:
        raise LookupError(f"No judge is promoted in experiment {experiment_id}: materialize base_judge first.")
    seen = set()
    while version not in seen:
        seen.add(version)
        entry = judges.lineage(experiment_id, version)
        previous = entry.get("previous_version")
        if entry.get("kind") != "aligned" or previous is None or int(entry.get("newest_label_ms") or 0) < since_ms:
            return version
        version = int(previous)
    return version


def measure(settings: Settings, experiment_id: str, advance: bool = True) -> LiveAgreement:
    """The judge in use when the newly arrived labels came, against them and the rolling window."""
    from judgeloop.tracing.traces import read_many

    used, _ = labels.current_labels(settings, experiment_id)
    mark = watermark(experiment_id)
    window = settings.live_agreement_window
    ordered = sorted(used, key=lambda label: label.key)
    # The batch is capped at the window too, so a first measurement on a big store stays bounded.
    batch_labels = [label for label in ordered if label.key > mark][-window:]
    rolling_labels = ordered[-window:]
    since_ms = min((label.updated_ms for label in batch_labels), default=None)
    version = judges.promoted_version(experiment_id) if since_ms is None else judge_in_use_before(experiment_id, since_ms)
    if version is None:
        raise LookupError(f"No judge is promoted in experiment {experiment_id}: materialize base_judge first.")
    judge = judges.load(experiment_id, settings.judge_name, version)
    wanted = sorted({label.trace_id for label in batch_labels + rolling_labels})

    raw = read_many(experiment_id, wanted)
    missing = [tid for tid in wanted if scores.stored_value(settings, raw[tid], version) is None]
    if missing:
        _hydrate(settings, experiment_id, judge, used)
    scored = scores.measure(settings, judge, version, raw)

    def pairs(chosen) -> list[Pair]:
        return [
            Pair(label.trace_id, label.reviewer, labels.normalize(settings, label.value), scored.values[label.trace_id], label.updated_ms)
            for label in chosen
            if label.trace_id in scored.values
        ]

    batch, rolling = pairs(batch_labels), pairs(rolling_labels)
    by_trace = {}
    for pair in rolling:
        by_trace.setdefault(pair.trace_id, ([], pair.judge))[0].append(pair.human)
    rolling_intervals = intervals.single_bootstrap(
        settings, [h for h, _ in by_trace.values()], [j for _, j in by_trace.values()],
        resamples=settings.bootstrap_resamples, min_traces=settings.interval_min_traces,
    )
    result = LiveAgreement(
        judge_version=version,
        batch=batch,
        rolling=rolling,
        batch_agreement=agreement.measure(settings, [p.human for p in batch], [p.judge for p in batch]),
        rolling_agreement=agreement.measure(settings, [p.human for p in rolling], [p.judge for p in rolling]),
        rolling_intervals=rolling_intervals,
        unscored=sum(1 for label in batch_labels + rolling_labels if label.trace_id not in scored.values),
        scored=scored,
        newest_ms=ordered[-1].updated_ms if ordered else 0,
    )
    if advance and batch_labels:
        set_watermark(experiment_id, batch_labels[-1].key)
    return result


def warning(settings: Settings, live: LiveAgreement) -> str | None:
    """Why the rolling agreement is worrying (naming reviewers and traces), or None."""
    measured = live.rolling_agreement
    if measured.n < settings.live_agreement_min_labels or measured.kappa >= settings.live_agreement_threshold:
        return None
    worst = live.disagreements()[:10]
    reviewers = sorted({str(p.reviewer) for p in live.disagreements()})
    return (
        f"judge v{live.judge_version} agrees with the newest {measured.n} SME labels at kappa {measured.kappa:.3f}, "
        f"below the threshold {settings.live_agreement_threshold:.3f}. Reviewers who disagree with it: "
        f"{', '.join(reviewers)}. Largest disagreements: "
        + "; ".join(f"trace {p.trace_id} ({p.reviewer}: {p.human}, judge: {p.judge})" for p in worst)
    )
