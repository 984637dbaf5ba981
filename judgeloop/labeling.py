"""Where SMEs label on open-source MLflow: a label schema named exactly like the judge, and a review queue.

The schema's name is derived from the judge's name here and nowhere else: MemAlign only
learns from labels named like the judge, and a mismatch fails silently.
"""

from judgeloop.settings import FeedbackType, Settings
from judgeloop.workspace import LabelingReport


def schema_name(settings: Settings) -> str:
    return settings.judge_name


def queue_name(settings: Settings) -> str:
    return f"{settings.judge_name}-review"


def schema_input(settings: Settings):
    from mlflow.genai.label_schemas import InputCategorical, InputNumeric, InputPassFail

    if settings.feedback_type == FeedbackType.LIKERT:
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
    from mlflow.genai import label_schemas

    name = schema_name(settings)
    wanted = schema_input(settings)
    try:
        schema = label_schemas.get_label_schema(name, experiment_id=experiment_id)
    except Exception:
        schema = None
    if schema is None:
        return label_schemas.create_label_schema(
            name,
            type="feedback",
            input=wanted,
            instruction=f"Rate the answer as the judge '{name}' should. {_scale_hint(settings)} Explain why in the comment.",
            enable_comment=True,
            experiment_id=experiment_id,
        )
    if describe_input(schema.input) != describe_input(wanted):
        return label_schemas.update_label_schema(schema.schema_id, input=wanted, enable_comment=True)
    return schema


def _scale_hint(settings: Settings) -> str:
    from judgeloop.judges import scale_description

    return scale_description(settings)


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


def open_session(settings: Settings, experiment_id: str, trace_ids: list[str], mlflow_ui_url: str) -> LabelingReport:
    """Schema + queue (re-used), with every given trace queued exactly once."""
    from mlflow.genai import review_queues

    schema = ensure_schema(settings, experiment_id)
    queue = ensure_queue(settings, experiment_id, schema.schema_id)
    present = {item.item_id for item in queue_items(queue.queue_id)}
    missing = [tid for tid in dict.fromkeys(trace_ids) if tid not in present]
    for start in range(0, len(missing), 100):
        review_queues.add_items_to_review_queue(queue.queue_id, item_ids=missing[start : start + 100])
    return LabelingReport(
        schema_id=schema.schema_id,
        schema_name=schema.name,
        queue_id=queue.queue_id,
        queue_name=queue.name,
        url=review_url(mlflow_ui_url, experiment_id, queue.queue_id),
        items_added=len(missing),
        pending=len(queue_items(queue.queue_id, status="pending")),
        complete=len(queue_items(queue.queue_id, status="complete")),
        reviewers=list(queue.users or []),
    )
