"""Which traces of the store a label file's rows refer to."""

from judgeloop import labels as labels_core
from judgeloop.settings import Settings


def known_trace_ids(settings: Settings, experiment_id: str, trace_ids: set[str]) -> set[str]:
    """Which of ``trace_ids`` are traces of the experiment."""
    if not trace_ids:
        return set()
    db_uri = labels_core.backend_db_uri(settings)
    if db_uri is not None:
        import sqlalchemy as sa
        from mlflow.store.tracking.dbmodels.models import SqlTraceInfo

        table = SqlTraceInfo.__table__
        found: set[str] = set()
        wanted = sorted(trace_ids)
        with labels_core._engine(db_uri).connect() as conn:
            for start in range(0, len(wanted), 500):
                chunk = wanted[start : start + 500]
                query = sa.select(table.c.request_id).where(
                    table.c.experiment_id == int(experiment_id), table.c.request_id.in_(chunk)
                )
                found.update(conn.execute(query).scalars())
        return found
    from mlflow import MlflowClient

    client, found, token = MlflowClient(), set(), None
    while True:
        page = client.search_traces(locations=[experiment_id], max_results=500, page_token=token, include_spans=False)
        found.update(t.info.trace_id for t in page if t.info.trace_id in trace_ids)
        token = page.token
        if not token or found == trace_ids:
            return found
