"""The SME label reader on MLflow's ``assessments`` table (a reach past MLflow's public API).

MLflow's API has no filter on an assessment's update time, so the label sensor reads the table
directly: the cursor is (last_updated_timestamp, assessment_id) of the newest label seen, and the
query walks MLflow's index on ``last_updated_timestamp``, so a tick with nothing new is one index
probe whatever the number of traces, and a tick with k new labels reads k rows (``labels`` holds
the cursor, the label types and the rules; ``mlflow_schema`` the table and its revision check).
A store this process cannot reach as a database, or one at another schema revision, is read
through the public API instead (``labels.changed_since_via_api``).
"""

import json

import sqlalchemy as sa

from judgeloop.sme_labels.labels import (
    LOOKBACK_MS, Cursor, HumanLabel, LabelBatch, changed_since_via_api, matches_name, next_cursor,
)
from judgeloop.mlflow_internals import mlflow_schema
from judgeloop.settings import Settings

_ENGINES: dict = {}


def backend_db_uri(settings: Settings) -> str | None:
    """The SQL database behind the tracking store, when this process can reach it."""
    if settings.resolved_backend_store_uri:
        return settings.resolved_backend_store_uri
    uri = settings.resolved_tracking_uri
    if uri.split(":", 1)[0].split("+", 1)[0] in {"sqlite", "postgresql", "mysql", "mssql"}:
        return uri
    return None


def engine_for(db_uri: str):
    """One SQLAlchemy engine per database and process (its pool is shared by every reader)."""
    if db_uri not in _ENGINES:
        _ENGINES[db_uri] = sa.create_engine(db_uri, pool_pre_ping=True)
    return _ENGINES[db_uri]


def readable_engine(settings: Settings):
    """An engine for direct reads when the store is a database at the schema these reads were
    written for (``mlflow_schema.readable``), else None: the caller uses MLflow's public API."""
    db_uri = backend_db_uri(settings)
    if db_uri is not None and mlflow_schema.readable(db_uri, engine_for(db_uri)):
        return engine_for(db_uri)
    return None


def changed_since_in_store(
    settings: Settings, experiment_id: str, cursor: Cursor | None = None, page_size: int = 500, max_rows: int | None = None
) -> LabelBatch:
    """Human feedback named like the judge, created or updated after ``cursor``, oldest first.

    Returns every such assessment (valid or not: the caller decides, see ``usable``) and the
    cursor just past the newest one read, paging ``page_size`` rows at a time. A label that
    became valid again because its override was deleted counts as changed.
    """
    cursor = cursor or Cursor()
    engine = readable_engine(settings)
    if engine is None:
        return changed_since_via_api(settings, experiment_id, cursor)
    table = mlflow_schema.assessments_table()
    columns = [table.c[name] for name in LABEL_COLUMNS]
    batch = LabelBatch(cursor=cursor)
    seen = dict(cursor.seen)
    overrides = dict(cursor.overrides)
    newest = cursor.key
    after = table.c.last_updated_timestamp >= max(0, cursor.updated_ms - LOOKBACK_MS) if cursor.updated_ms else sa.true()
    with engine.connect() as conn:
        while True:
            # "+ 0" and "|| ''" change no value but keep SQLite's planner off the experiment_id and
            # assessment_type indexes: without ANALYZE statistics (MLflow never runs it) it takes any
            # equality as more selective than the range on last_updated_timestamp and scans every
            # assessment of the experiment on each tick, O(store) instead of O(new).
            query = (
                sa.select(*columns)
                .where(after)
                .where(table.c.experiment_id + 0 == int(experiment_id))
                .where(table.c.source_type == "HUMAN")
                .where(table.c.assessment_type + "" == "feedback")
                .order_by(table.c.last_updated_timestamp, table.c.assessment_id)
                .limit(page_size)
            )
            rows = conn.execute(query).mappings().all()
            for row in rows:
                batch.rows_read += 1
                key = (row["last_updated_timestamp"], row["assessment_id"])
                if seen.get(row["assessment_id"]) == row["last_updated_timestamp"]:
                    continue  # returned by an earlier read (inside the look-back window)
                seen[row["assessment_id"]] = row["last_updated_timestamp"]
                newest = max(newest, key)
                if matches_name(row["name"], settings.judge_name):
                    batch.labels.append(label_from_row(row))
                    if row["overrides"]:
                        overrides[row["assessment_id"]] = row["overrides"]
            if len(rows) < page_size or (max_rows and batch.rows_read >= max_rows):
                break
            last = rows[-1]
            # Keyset paging: strictly after the last row of this page.
            after = sa.and_(
                table.c.last_updated_timestamp >= last["last_updated_timestamp"],
                sa.or_(
                    table.c.last_updated_timestamp > last["last_updated_timestamp"],
                    table.c.assessment_id > last["assessment_id"],
                ),
            )
        if overrides:
            # Primary-key lookups, as many as overrides ever read: edits are rare next to labels.
            present = set(conn.execute(sa.select(table.c.assessment_id).where(table.c.assessment_id.in_(list(overrides)))).scalars())
            restored = [overridden for override, overridden in overrides.items() if override not in present]
            overrides = {o: i for o, i in overrides.items() if o in present}
            if restored:
                rows = conn.execute(sa.select(*columns).where(table.c.assessment_id.in_(restored))).mappings().all()
                known = {label.assessment_id for label in batch.labels}
                batch.labels.extend(label_from_row(row) for row in rows if row["valid"] and row["assessment_id"] not in known)
                batch.labels.sort(key=lambda label: label.key)
    batch.cursor = next_cursor(newest, seen, overrides)
    return batch


def count_stamped_before(settings: Settings, experiment_id: str, before_ms: int) -> int | None:
    """How many human labels named like the judge (valid or not) are stamped before ``before_ms``;
    None where the store's tables cannot be read (REST only, Databricks).

    The incremental read never looks before its look-back window, so a label stamped in the past
    (a reviewer's slow clock, an import of old labels) is only noticed by this count growing.
    """
    engine = readable_engine(settings)
    if engine is None:
        return None
    table = mlflow_schema.assessments_table()
    query = (
        sa.select(sa.func.count())
        .select_from(table)
        .where(table.c.last_updated_timestamp < int(before_ms))
        .where(table.c.experiment_id == int(experiment_id))
        .where(table.c.source_type == "HUMAN")
        .where(table.c.assessment_type == "feedback")
        .where(sa.func.lower(sa.func.trim(table.c.name)) == settings.judge_name.strip().lower())
    )
    with engine.connect() as conn:
        return int(conn.execute(query).scalar_one())


LABEL_COLUMNS = (
    "assessment_id", "trace_id", "name", "value", "rationale", "source_id", "last_updated_timestamp", "valid", "overrides",
)


def label_from_row(row) -> HumanLabel:
    return HumanLabel(
        assessment_id=row["assessment_id"],
        trace_id=row["trace_id"],
        name=row["name"],
        value=json.loads(row["value"]) if row["value"] is not None else None,
        comment=row["rationale"],
        reviewer=row["source_id"],
        updated_ms=row["last_updated_timestamp"],
        valid=bool(row["valid"]),
    )
