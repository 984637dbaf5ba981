"""The demo on real expert labels: FeedbackQA traffic as traces, its raters as the SMEs.

Labels are released in batches so the sensor can be watched re-aligning the judge.
"""

from dataclasses import dataclass
from pathlib import Path

from judgeloop import duplicate_labels, feedbackqa, labels, production, workspace
from judgeloop.settings import Settings


@dataclass(frozen=True)
class Release:
    written: int
    remaining: int
    completed_items: int = 0


def items(settings: Settings) -> list[feedbackqa.Item]:
    return feedbackqa.load_items(settings.feedbackqa_path, settings.demo_domain, limit=settings.demo_items)


def seed(settings: Settings, experiment_id: str) -> dict[str, str]:
    """Log the demo's production traces (idempotent); return ``{item key: trace id}``."""
    return production.seed_traces(experiment_id, items(settings))


def pending_labels(settings: Settings, experiment_id: str) -> list[tuple[str, feedbackqa.Rating]]:
    """(trace id, rating) for every expert rating not yet written, in a fixed order."""
    trace_ids = seed(settings, experiment_id)
    batch = labels.changed_since(settings, experiment_id)
    written = {(label.trace_id, label.reviewer) for label in batch.labels}
    pending = []
    for item in items(settings):
        trace_id = trace_ids[item.key]
        for rating in item.ratings:
            if (trace_id, rating.reviewer) not in written:
                pending.append((trace_id, rating))
    return pending


def release_labels(settings: Settings, experiment_id: str, count: int) -> Release:
    """Write the next ``count`` expert ratings as HUMAN labels named like the judge."""
    pending = pending_labels(settings, experiment_id)
    for trace_id, rating in pending[:count]:
        labels.log_label(
            trace_id,
            settings.judge_name,
            feedbackqa.to_scale(rating.rating, settings),
            reviewer=rating.reviewer,
            comment=rating.reason,
        )
    if pending[:count]:
        # A label import or a reviewer may have labelled the same (trace, reviewer) meanwhile.
        duplicate_labels.repair(settings, experiment_id)
    # The ratings arrive outside the review form: complete their queue items as a Submit would.
    written = [trace_id for trace_id, _ in pending[:count]]
    completed = workspace.for_settings(settings).complete_labelled_items(experiment_id, written=written) if written else 0
    return Release(written=min(count, len(pending)), remaining=max(0, len(pending) - count), completed_items=completed)


def write_expectations(settings: Settings) -> Path:
    """Expected responses for the demo: per question, the passage the experts rated best."""
    import json

    best: dict[str, tuple[float, str]] = {}
    for item in items(settings):
        score = sum(feedbackqa.RATING_ORDER.index(r.rating) for r in item.ratings) / max(1, len(item.ratings))
        if item.question not in best or score > best[item.question][0]:
            best[item.question] = (score, item.passage)
    path = Path(settings.resolved_home) / "demo-expectations.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "".join(json.dumps({"question": q, "expectations": {"expected_response": p}}) + "\n" for q, (_, p) in best.items())
    )
    return path
