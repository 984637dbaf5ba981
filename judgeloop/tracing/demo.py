"""The demo on real expert labels: FeedbackQA traffic as traces, its raters as the SMEs.

Labels are released in batches so the sensor can be watched re-aligning the judge. The
simulated raters may leave the last few traces to a person (``left_for_review``): those stay
"needs review" in the queue, so a new user's own labels are the ones that move the judge next.
"""

from dataclasses import dataclass
from pathlib import Path

from judgeloop import workspace
from judgeloop.sme_labels import duplicate_labels, labels
from judgeloop.tracing import feedbackqa, production
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


def left_for_a_person(settings: Settings, experiment_id: str, count: int) -> list[str]:
    """The trace ids of the last ``count`` demo items: the simulated raters never label them."""
    trace_ids = seed(settings, experiment_id)
    return [trace_ids[item.key] for item in items(settings)[len(items(settings)) - count:]] if count > 0 else []


def pending_labels(settings: Settings, experiment_id: str, left_for_review: int = 0) -> list[tuple[str, feedbackqa.Rating]]:
    """(trace id, rating) for every expert rating not yet written, in a fixed order (none on the
    last ``left_for_review`` items, which are a person's to label)."""
    trace_ids = seed(settings, experiment_id)
    batch = labels.changed_since(settings, experiment_id)
    written = {(label.trace_id, label.reviewer) for label in batch.labels}
    pending = []
    every = items(settings)
    for item in every[: len(every) - max(0, left_for_review)]:
        trace_id = trace_ids[item.key]
        for rating in item.ratings:
            if (trace_id, rating.reviewer) not in written:
                pending.append((trace_id, rating))
    return pending


def release_labels(settings: Settings, experiment_id: str, count: int, left_for_review: int = 0) -> Release:
    """Write the next ``count`` expert ratings as HUMAN labels named like the judge."""
    pending = pending_labels(settings, experiment_id, left_for_review)
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


def review_invitation(settings: Settings, experiment_id: str, left_for_review: int) -> str:
    """The sentence that hands the rest of the queue to a person, with the link that opens it."""
    if left_for_review <= 0:
        return "every demo trace is labelled"
    queue = workspace.for_settings(settings).review_queue(experiment_id, settings.resolved_mlflow_ui_url)
    where = f"{queue.url}&startReview=true" if queue is not None and queue.url else "the MLflow UI's review queue"
    return (
        f"{left_for_review} demo trace(s) were left for you: label them ({queue.pending if queue else left_for_review} "
        f"need review) at {where}; your labels count toward the next re-alignment"
    )


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
