"""Which traces of the store a label file's rows refer to."""

from judgeloop import labels as labels_core
from judgeloop.settings import Settings


def known_trace_ids(settings: Settings, experiment_id: str, trace_ids: set[str]) -> set[str]:
    """Which of ``trace_ids`` are traces of the experiment."""
    if not trace_ids:
        return set()
    from judgeloop import mlflow_schema

    db_uri = labels_core.backend_db_uri(settings)
    if db_uri is not None and mlflow_schema.readable(db_uri, labels_core._engine(db_uri)):
        return mlflow_schema.known_trace_ids(labels_core._engine(db_uri), experiment_id, trace_ids)
    from mlflow import MlflowClient

    client, found, token = MlflowClient(), set(), None
    while True:
        page = client.search_traces(locations=[experiment_id], max_results=500, page_token=token, include_spans=False)
        found.update(t.info.trace_id for t in page if t.info.trace_id in trace_ids)
        token = page.token
        if not token or found == trace_ids:
            return found
