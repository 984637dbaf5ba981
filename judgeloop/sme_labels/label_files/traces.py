"""Which traces of the store a label file's rows refer to: by trace id, else by a key the trace
carries itself.

Trace ids are made by the store, so the same traffic logged into another store gets new ids. A
trace's own key survives: the demo's FeedbackQA item key (tag ``judgeloop.feedbackqa_item``) or
a request id the application set (MLflow's client request id, ``mlflow.update_current_trace(
client_request_id=...)``). Export writes it as ``trace_key``; import looks a row up by it only
when its trace id is not a trace of the experiment.
"""

from judgeloop.tracing.production import ITEM_TAG
from judgeloop.settings import Settings


def _engine(settings: Settings):
    """An engine for direct reads when the store is a database at the known schema, else None."""
    from judgeloop.mlflow_internals.label_rows import readable_engine

    return readable_engine(settings)


def _all_traces(experiment_id: str):
    """Every trace's info, page by page (the public API has no lookup by key or by many ids)."""
    from mlflow import MlflowClient

    client, token = MlflowClient(), None
    while True:
        page = client.search_traces(locations=[experiment_id], max_results=500, page_token=token, include_spans=False)
        yield from (t.info for t in page)
        token = page.token
        if not token:
            return


def _key_of(info) -> str | None:
    return (info.tags or {}).get(ITEM_TAG) or info.client_request_id or None


def known_trace_ids(settings: Settings, experiment_id: str, trace_ids: set[str]) -> set[str]:
    """Which of ``trace_ids`` are traces of the experiment."""
    if not trace_ids:
        return set()
    from judgeloop.mlflow_internals import mlflow_schema

    engine = _engine(settings)
    if engine is not None:
        return mlflow_schema.known_trace_ids(engine, experiment_id, trace_ids)
    found = set()
    for info in _all_traces(experiment_id):
        if info.trace_id in trace_ids:
            found.add(info.trace_id)
            if found == trace_ids:
                break
    return found


def trace_keys(settings: Settings, experiment_id: str, trace_ids: set[str]) -> dict[str, str]:
    """``{trace id: its own key}`` for those of ``trace_ids`` that carry one."""
    if not trace_ids:
        return {}
    from judgeloop.mlflow_internals import mlflow_schema

    engine = _engine(settings)
    if engine is not None:
        return mlflow_schema.trace_keys(engine, experiment_id, trace_ids, ITEM_TAG)
    return {info.trace_id: _key_of(info) for info in _all_traces(experiment_id) if info.trace_id in trace_ids and _key_of(info)}


def traces_by_key(settings: Settings, experiment_id: str, keys: set[str]) -> dict[str, set[str]]:
    """``{key: the trace ids of the experiment carrying it}`` for the given keys (a key carried
    by several traces is ambiguous: the caller refuses such a row)."""
    if not keys:
        return {}
    from judgeloop.mlflow_internals import mlflow_schema

    engine = _engine(settings)
    if engine is not None:
        return mlflow_schema.traces_by_key(engine, experiment_id, keys, ITEM_TAG)
    found: dict[str, set[str]] = {}
    for info in _all_traces(experiment_id):
        for key in {(info.tags or {}).get(ITEM_TAG), info.client_request_id} & keys:
            found.setdefault(key, set()).add(info.trace_id)
    return found
