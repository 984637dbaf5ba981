"""The review queue's order for an experiment, read from what MLflow stores (no model call).

Gathers each trace's question and answer, the SME labels so far and the judges' stored scores,
scores the unlabelled alignment traces (``queue_priority``) and orders every trace
(``queue_order``). Labelled traces are left out: they need no more review to teach the judge.
"""

from dataclasses import dataclass

from judgeloop.judging import agreement, judges, scores, split
from judgeloop.settings import Settings
from judgeloop.sme_labels import experts, labels, queue_order, queue_priority


@dataclass(frozen=True)
class Ranking:
    order: list[str]  # unlabelled traces, first to label first
    rule: str  # the order rule in words (labeling_session metadata)
    judge_version: int | None  # the judge in use the priorities were computed for
    priorities: dict  # trace id -> priority (alignment traces; empty in insertion order)


def rule_text(settings: Settings) -> str:
    text = queue_order.order_rule(settings.queue_order, settings.heldout_fraction)
    return text if settings.queue_order == queue_order.INSERTION else f"{text}; priority = {queue_priority.PRIORITY_RULE}"


def rank(settings: Settings, experiment_id: str, trace_ids: list[str], used: list | None = None) -> Ranking:
    """Unlabelled ``trace_ids`` in the order experts should label them (``settings.queue_order``)."""
    from judgeloop.tracing import trace_fields
    from judgeloop.tracing.traces import read_many

    if used is None:
        used, _ = labels.current_labels(settings, experiment_id)
    grouped = labels.by_trace(used)
    unlabelled = [t for t in dict.fromkeys(trace_ids) if t not in grouped]
    in_use = judges.promoted_version(experiment_id)
    if settings.queue_order == queue_order.INSERTION:
        return Ranking(unlabelled, rule_text(settings), in_use, {})
    candidates_ids = [t for t in unlabelled if not split.is_heldout(t, settings.heldout_fraction)]
    # Only the alignment side's labels: they are what MemAlign retrieves from.
    consensus = experts.consensus_by_trace(settings, {t: g for t, g in grouped.items() if not split.is_heldout(t, settings.heldout_fraction)})
    read = read_many(experiment_id, candidates_ids + list(consensus))
    texts, questions = {}, {}
    for trace_id, trace in read.items():
        question, answer = trace_fields.question_and_answer(settings, trace)
        questions[trace_id] = _question_text(question)
        texts[trace_id] = queue_priority.words(f"{question} {answer}")
    scale = agreement.scale_values(settings)
    base = _base_version(experiment_id)
    versions = [v for v in {base, in_use} if v is not None]
    stored = scores.stored_scores(settings, experiment_id, candidates_ids, versions) if versions else {}

    def position(version, trace_id):
        return queue_priority.position_on_scale(scale, stored.get(version, {}).get(trace_id)) if version else None

    candidates = [
        queue_priority.Candidate(
            t, texts.get(t, frozenset()),
            judge_score=position(in_use, t) if in_use != base else None,
            base_score=position(base, t),
        )
        for t in candidates_ids
    ]
    labelled = []
    for t, label in consensus.items():
        value = queue_priority.position_on_scale(scale, labels.normalize(settings, label.value))
        if value is not None:
            labelled.append(queue_priority.Labelled(t, texts.get(t, frozenset()), value))
    priority = queue_priority.priorities(candidates, labelled, float(len(scale) - 1))
    order = queue_order.queue_order(unlabelled, settings.heldout_fraction, priority, questions)
    return Ranking(order, rule_text(settings), in_use, priority)


def _question_text(question) -> str:
    if isinstance(question, dict):
        question = question.get("question", next(iter(question.values()), "")) if question else ""
    return str(question or "")


def _base_version(experiment_id: str) -> int | None:
    try:
        return judges.base_version(experiment_id)
    except LookupError:
        return None
