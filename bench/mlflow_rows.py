"""The benchmark's one reach past MLflow's API: bulk inserts into MLflow's own tables.

Building a 100k-trace store through ``@mlflow.trace`` + ``log_feedback`` takes hours; inserting
rows shaped like theirs takes seconds. The tables and columns written are listed in
``WRITTEN_COLUMNS`` (checked against the pinned MLflow by tests/test_mlflow_schema.py) and the
rows go through plain ``sa.table`` objects of exactly those columns, not MLflow's ORM classes.
At another schema revision the inserts would build a store MLflow might not read back, and the
public API cannot build one of this size in useful time: the benchmark stops with a clear message.
"""

import sqlalchemy as sa

from judgeloop.mlflow_internals.mlflow_schema import WRITTEN_FOR_REVISION, schema_revision

WRITTEN_COLUMNS = {
    "trace_info": (
        "request_id", "experiment_id", "timestamp_ms", "execution_time_ms", "status", "client_request_id",
        "request_preview", "response_preview", "db_payload_generation", "trace_name",
    ),
    "trace_tags": ("request_id", "key", "value"),
    "trace_request_metadata": ("request_id", "key", "value"),
    "spans": (
        "trace_id", "experiment_id", "span_id", "parent_span_id", "name", "type", "status",
        "start_time_unix_nano", "end_time_unix_nano", "content",
    ),
    "assessments": (
        "assessment_id", "trace_id", "name", "assessment_type", "value", "error", "created_timestamp",
        "last_updated_timestamp", "source_type", "source_id", "run_id", "span_id", "rationale",
        "overrides", "valid", "assessment_metadata", "experiment_id", "trace_timestamp_ms", "aggregate_value", "is_numeric_value",
    ),
}


class SchemaRevisionError(RuntimeError):
    pass


def check_revision(engine: sa.Engine) -> None:
    revision = schema_revision(engine)
    if revision != WRITTEN_FOR_REVISION:
        raise SchemaRevisionError(
            f"MLflow's database is at schema revision {revision}, the benchmark's inserts were written for "
            f"{WRITTEN_FOR_REVISION} (mlflow==3.17.2): install the pinned MLflow, or update WRITTEN_COLUMNS "
            "in bench/mlflow_rows.py and re-run tests/test_mlflow_schema.py."
        )


def insert(conn: sa.Connection, table_name: str, rows: list[dict], chunk: int = 20_000) -> None:
    """Insert ``rows`` (each with exactly the table's ``WRITTEN_COLUMNS``) in chunks."""
    columns = WRITTEN_COLUMNS[table_name]
    if rows and set(rows[0]) != set(columns):
        raise ValueError(f"{table_name} rows have columns {sorted(rows[0])}, expected {sorted(columns)}")
    table = sa.table(table_name, *(sa.column(name) for name in columns))
    for start in range(0, len(rows), chunk):
        conn.execute(table.insert(), rows[start : start + chunk])
