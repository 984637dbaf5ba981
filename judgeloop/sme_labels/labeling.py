"""Where SMEs label on open-source MLflow: a label schema named exactly like the judge, and a review queue.

The schema's name is derived from the judge's name here and nowhere else: MemAlign only
learns from labels named like the judge, and a mismatch fails silently.
"""

import re
from dataclasses import dataclass

from judgeloop.settings import FeedbackType, Settings
from judgeloop.workspace import LabelingReport


def schema_name(settings: Settings) -> str:
    return settings.judge_name


def queue_name(settings: Settings) -> str:
    return f"{settings.judge_name}-review"


# Up to this many steps a likert scale is a dropdown of its values: MLflow's UI enforces a
# categorical choice, while its number box stores any number (a 5 on a 1-4 scale).
DROPDOWN_MAX_STEPS = 11


def schema_input(settings: Settings):
    from mlflow.genai.label_schemas import InputCategorical, InputNumeric, InputPassFail

    if settings.feedback_type == FeedbackType.LIKERT:
        steps = range(settings.scale_min, settings.scale_max + 1)
        if len(steps) <= DROPDOWN_MAX_STEPS:
            # The UI stores the chosen option as text ("3"); labels.normalize reads it as 3.
            return InputCategorical(options=[str(step) for step in steps])
        return InputNumeric(min_value=float(settings.scale_min), max_value=float(settings.scale_max))
    if settings.feedback_type == FeedbackType.PASS_FAIL:
        return InputPassFail(positive_label="Pass", negative_label="Fail")
    return InputCategorical(options=list(settings.categories))


def describe_input(schema_input_obj) -> str:
    """A comparable description of a schema input: type and its range or options."""
    kind = type(schema_input_obj).__name__
    if kind == "InputNumeric":
        return f"InputNumeric[{schema_input_obj.min_value},{schema_input_obj.max_value}]"
    if kind == "InputCategorical":
        return f"InputCategorical{list(schema_input_obj.options)}"
    if kind == "InputPassFail":
        return "InputPassFail"
    return kind


def ensure_schema(settings: Settings, experiment_id: str):
    """The judge's label schema, created or brought in line with the settings (rubric, input)."""
    from mlflow.genai import label_schemas

    name = schema_name(settings)
    wanted = schema_input(settings)
    text = instruction(settings)
    try:
        schema = label_schemas.get_label_schema(name, experiment_id=experiment_id)
    except Exception:
        schema = None
    if schema is not None and type(schema.input) is not type(wanted):
        # MLflow cannot switch a schema's input kind (number box -> dropdown): replace the schema.
        # Labels are trace assessments named like the schema, so none is lost.
        label_schemas.delete_label_schema(schema_id=schema.schema_id)
        schema = None
    if schema is None:
        return label_schemas.create_label_schema(
            name, type="feedback", input=wanted, instruction=text, enable_comment=True, experiment_id=experiment_id
        )
    if describe_input(schema.input) != describe_input(wanted) or schema.instruction != text:
        return label_schemas.update_label_schema(schema.schema_id, input=wanted, instruction=text, enable_comment=True)
    return schema


_TEMPLATE_FIELD = re.compile(r"\{\{\s*(\w+)\s*\}\}")
_FIELD_NAMES = {
    "inputs": "the question",
    "outputs": "the answer",
    "expectations": "the expected answer",
    "trace": "the trace",
    "conversation": "the conversation",
}


def rubric(settings: Settings) -> str:
    """The judge's own criteria in words an expert reads: its instructions, template fields named."""
    text = " ".join(settings.judge_instructions.split())
    return _TEMPLATE_FIELD.sub(lambda m: _FIELD_NAMES.get(m.group(1), m.group(1)), text)


def scale_hint(settings: Settings) -> str:
    if settings.feedback_type == FeedbackType.LIKERT:
        return f"Choose {settings.scale_min} (worst) to {settings.scale_max} (best)."
    if settings.feedback_type == FeedbackType.PASS_FAIL:
        return "Choose Pass or Fail."
    return "Choose one of (worst to best): " + ", ".join(settings.categories) + "."


def instruction(settings: Settings) -> str:
    """What the review form shows above the input: the judge's rubric, the scale, the comment.

    Plain text: MLflow's review form shows the instruction as one paragraph (no markdown).
    """
    return f"{rubric(settings)} {scale_hint(settings)} Say why in the comment: the judge learns from it."


def ensure_queue(settings: Settings, experiment_id: str, schema_id: str):
    from mlflow.genai import review_queues

    name = queue_name(settings)
    try:
        queue = review_queues.get_review_queue(name=name, experiment_id=experiment_id)
    except Exception:
        queue = None
    if queue is None:
        return review_queues.create_review_queue(
            name, queue_type="custom", users=list(settings.reviewers), schema_ids=[schema_id], experiment_id=experiment_id
        )
    if sorted(queue.users or []) != sorted(settings.reviewers) or schema_id not in (queue.schema_ids or []):
        queue = review_queues.update_review_queue(
            queue.queue_id, users=list(settings.reviewers), schema_ids=[schema_id]
        )
    return queue


def queue_items(queue_id: str, status: str | None = None) -> list:
    from mlflow.genai import review_queues

    items, token = [], None
    while True:
        page = review_queues.list_review_queue_items(queue_id, status=status, max_results=500, page_token=token)
        items.extend(page)
        token = page.token
        if not token:
            return items


def review_url(mlflow_ui_url: str, experiment_id: str, queue_id: str) -> str:
    return f"{mlflow_ui_url.rstrip('/')}/#/experiments/{experiment_id}/review-queue?selectedQueueId={queue_id}"


def find_queue(settings: Settings, experiment_id: str):
    """The judge's review queue, or None before labeling_session created it."""
    from mlflow.genai import review_queues

    try:
        return review_queues.get_review_queue(name=queue_name(settings), experiment_id=experiment_id)
    except Exception:
        return None


def complete_labelled_items(settings: Settings, experiment_id: str, current: list | None = None, top_up: bool = True) -> int:
    """Mark pending queue items complete when their trace has a label that counts.

    The review form completes an item on Submit; labels written any other way (a label file,
    the demo's expert ratings, the API) leave it "Needs review" until this runs. One usable
    label is what an item needs, as one Submit is in the form. Returns how many were completed.
    """
    from mlflow.genai import review_queues

    from judgeloop.sme_labels import labels

    queue = find_queue(settings, experiment_id)
    if queue is None:
        return 0
    pending = [item.item_id for item in queue_items(queue.queue_id, status="pending")]
    if not pending:
        return 0
    if current is None:
        current, _ = labels.current_labels(settings, experiment_id)
    newest = {}
    for label in current:
        if label.trace_id not in newest or label.key > newest[label.trace_id].key:
            newest[label.trace_id] = label
    done = 0
    for trace_id in pending:
        label = newest.get(trace_id)
        if label is None:
            continue
        # Behind an authenticating server, MLflow records the caller instead of this reviewer.
        review_queues.set_review_queue_item_status(
            queue.queue_id, item_id=trace_id, status="complete", completed_by=label.reviewer or "import"
        )
        done += 1
    if done and top_up and settings.queue_window:
        # Completed items leave the pending window: the next traces in the queue's order take their place.
        fill_window(settings, experiment_id, queue.queue_id, current=current)
    return done


def open_session(settings: Settings, experiment_id: str, trace_ids: list[str], mlflow_ui_url: str) -> LabelingReport:
    """Schema + queue (re-used), holding the first ``queue_window`` unlabelled traces in the queue's
    order (``queue_ranking``), each at most once; every trace when the window is 0."""
    schema = ensure_schema(settings, experiment_id)
    queue = ensure_queue(settings, experiment_id, schema.schema_id)
    current = _current_labels(settings, experiment_id)  # read once: completing items changes no label
    complete_labelled_items(settings, experiment_id, current, top_up=False)
    change = fill_window(settings, experiment_id, queue.queue_id, trace_ids, current=current)
    return LabelingReport(
        schema_id=schema.schema_id,
        schema_name=schema.name,
        queue_id=queue.queue_id,
        queue_name=queue.name,
        url=review_url(mlflow_ui_url, experiment_id, queue.queue_id),
        items_added=len(change.added),
        pending=len(queue_items(queue.queue_id, status="pending")),
        complete=len(queue_items(queue.queue_id, status="complete")),
        reviewers=list(queue.users or []),
        order_rule=change.rule,
        window=settings.queue_window,
    )


@dataclass(frozen=True)
class WindowChange:
    added: list[str]  # queued now, in the queue's order
    removed: list[str]  # pending items taken out because the new order no longer puts them on top
    rule: str


def fill_window(
    settings: Settings, experiment_id: str, queue_id: str, trace_ids: list[str] | None = None, rerank: bool = False,
    current: list | None = None,
) -> WindowChange:
    """Bring the queue's pending items up to ``queue_window``, next in the queue's order.

    ``rerank`` (after a newly promoted judge): the pending items of ``trace_ids`` that are no
    longer among the order's first ``queue_window`` leave the queue and the new top joins, so
    experts see where the judge now in use is likely wrong. Items that are not among
    ``trace_ids`` (default: the tagged traces) are never removed. Window 0: every trace is queued
    (labelled ones too, completed right away), in the queue's order. ``current``: the usable labels,
    when the caller already read them.
    """
    from mlflow.genai import review_queues

    from judgeloop.sme_labels import queue_ranking
    from judgeloop.tracing import traces

    if trace_ids is None:
        trace_ids = traces.tagged_trace_ids(experiment_id)
    if current is None:
        current = _current_labels(settings, experiment_id)
    ranking = queue_ranking.rank(settings, experiment_id, trace_ids, current)
    items = queue_items(queue_id)
    present = {item.item_id: str(getattr(item.status, "value", item.status)).lower() for item in items}
    universe = set(trace_ids)
    removed: list[str] = []
    if settings.queue_window == 0:
        ordered = set(ranking.order)
        labelled = [t for t in dict.fromkeys(trace_ids) if t not in ordered]
        wanted = [t for t in ranking.order + labelled if t not in present]
    else:
        pending = [t for t, status in present.items() if status == "pending" and t in universe]
        waiting = set(pending)
        fresh = [t for t in ranking.order if t not in present or t in waiting]
        if rerank:
            top = set(fresh[: settings.queue_window])
            removed = [t for t in pending if t not in top]
            if removed:
                review_queues.remove_items_from_review_queue(queue_id, item_ids=removed)
            pending = [t for t in pending if t in top]
        room = max(0, settings.queue_window - len(pending))
        wanted = [t for t in fresh if t not in present][:room]
    for start in range(0, len(wanted), 100):
        review_queues.add_items_to_review_queue(queue_id, item_ids=wanted[start : start + 100])
    if settings.queue_window == 0 and wanted:
        complete_labelled_items(settings, experiment_id, current, top_up=False)
    return WindowChange(added=wanted, removed=removed, rule=ranking.rule)


def refresh_window(settings: Settings, experiment_id: str, rerank: bool = False) -> WindowChange | None:
    """Top the judge's review queue up (and re-rank it after a promotion); None before it exists."""
    queue = find_queue(settings, experiment_id)
    if queue is None:
        return None
    current = _current_labels(settings, experiment_id)
    # A pending item labelled elsewhere (MLflow's Traces tab) is done, not re-ranked out.
    complete_labelled_items(settings, experiment_id, current, top_up=False)
    return fill_window(settings, experiment_id, queue.queue_id, rerank=rerank, current=current)


def _current_labels(settings: Settings, experiment_id: str) -> list:
    from judgeloop.sme_labels import labels

    return labels.current_labels(settings, experiment_id)[0]
