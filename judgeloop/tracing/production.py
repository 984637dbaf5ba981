"""Production traffic for the demo: FeedbackQA questions and the answers a support agent gave."""

from judgeloop.tracing.feedbackqa import Item

ITEM_TAG = "judgeloop.feedbackqa_item"


def seed_traces(experiment_id: str, items: list[Item]) -> dict[str, str]:
    """Log one trace per item (question in, passage out); return ``{item key: trace id}``.

    Items already logged (found by their tag) are not logged again. The passage is stored as
    a chat completion so the experts read it as text in the review form.
    """
    import mlflow

    from judgeloop.tracing.answers import as_chat_completion
    from judgeloop.tracing.traces import SOURCE_TAG, search_all

    existing = {
        t.info.tags.get(ITEM_TAG): t.info.trace_id
        for t in search_all(experiment_id, f"tag.{SOURCE_TAG} = 'feedbackqa'")
    }
    for item in items:
        if item.key in existing:
            continue
        with mlflow.start_span(name="support_agent", span_type="AGENT") as span:
            span.set_inputs({"question": item.question})
            span.set_outputs(as_chat_completion(item.passage))
            mlflow.update_current_trace(tags={SOURCE_TAG: "feedbackqa", ITEM_TAG: item.key})
            existing[item.key] = span.trace_id
    mlflow.flush_trace_async_logging()
    return existing
