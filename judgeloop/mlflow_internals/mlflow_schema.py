"""The one place that reads MLflow's own tables: assessments (SME labels) and trace_info.

MLflow's public API has no filter on an assessment's update time, so the label sensor reads
the ``assessments`` table directly (see ``labels.changed_since``). That is a contract with
MLflow's schema, not its API: the columns below, its index on ``last_updated_timestamp``
and the override/delete behaviour (an override marks the old label ``valid=False``; deleting
the override sets it back to ``True``; neither touches ``last_updated_timestamp``) were
checked against the schema revision in ``WRITTEN_FOR_REVISION`` (tests/test_mlflow_schema.py).
A database at any other revision is read through the public API instead, with a warning.

``trace_info`` answers "which of these ids are traces of the experiment" for label imports in
one indexed query per 500 ids; the public API can only page through every trace. With
``trace_tags`` it also answers which traces carry a given key of their own (a tag or the
client request id), so a label file can be matched to a store holding the traces under new ids.
"""

import logging

import sqlalchemy as sa

log = logging.getLogger(__name__)

# MLflow's alembic head for the pinned mlflow==3.17.2.
WRITTEN_FOR_REVISION = "dc11669786a5"

# Only the columns the queries use, so a column MLflow adds or drops elsewhere is no concern.
ASSESSMENTS = sa.table(
    "assessments",
    sa.column("assessment_id", sa.String),
    sa.column("trace_id", sa.String),
    sa.column("experiment_id", sa.Integer),
    sa.column("name", sa.String),
    sa.column("assessment_type", sa.String),
    sa.column("value", sa.Text),
    sa.column("rationale", sa.Text),
    sa.column("source_type", sa.String),
    sa.column("source_id", sa.String),
    sa.column("last_updated_timestamp", sa.BigInteger),
    sa.column("valid", sa.Boolean),
    sa.column("overrides", sa.String),
    sa.column("error", sa.Text),
    sa.column("created_timestamp", sa.BigInteger),
    sa.column("assessment_metadata", sa.Text),
)
TRACE_INFO = sa.table(
    "trace_info",
    sa.column("request_id", sa.String),  # the trace id
    sa.column("experiment_id", sa.Integer),
    sa.column("client_request_id", sa.String),
)
TRACE_TAGS = sa.table(
    "trace_tags",
    sa.column("request_id", sa.String),
    sa.column("key", sa.String),
    sa.column("value", sa.String),
)

# The range the incremental read walks; the query is planned around it.
RELIED_ON_INDEX = ("index_assessments_last_updated_timestamp", ("last_updated_timestamp",))

_checked: dict[str, bool] = {}


def assessments_table() -> sa.TableClause:
    return ASSESSMENTS


def _chunks(values, size: int = 500):
    ordered = sorted(values)
    for start in range(0, len(ordered), size):
        yield ordered[start : start + size]


def known_trace_ids(engine: sa.Engine, experiment_id: str, trace_ids: set[str]) -> set[str]:
    """Which of ``trace_ids`` are traces of the experiment (call only when ``readable``)."""
    found: set[str] = set()
    with engine.connect() as conn:
        for chunk in _chunks(trace_ids):
            query = sa.select(TRACE_INFO.c.request_id).where(
                TRACE_INFO.c.experiment_id == int(experiment_id), TRACE_INFO.c.request_id.in_(chunk)
            )
            found.update(conn.execute(query).scalars())
    return found


def trace_keys(engine: sa.Engine, experiment_id: str, trace_ids: set[str], tag: str) -> dict[str, str]:
    """``{trace id: its key}`` for those of ``trace_ids`` that carry one: the value of tag ``tag``,
    else the client request id (call only when ``readable``)."""
    keys: dict[str, str] = {}
    tagged: dict[str, str] = {}
    with engine.connect() as conn:
        for chunk in _chunks(trace_ids):
            query = sa.select(TRACE_INFO.c.request_id, TRACE_INFO.c.client_request_id).where(
                TRACE_INFO.c.experiment_id == int(experiment_id),
                TRACE_INFO.c.request_id.in_(chunk),
                TRACE_INFO.c.client_request_id.is_not(None),
            )
            keys.update({trace_id: key for trace_id, key in conn.execute(query) if key})
            query = sa.select(TRACE_TAGS.c.request_id, TRACE_TAGS.c.value).where(
                TRACE_TAGS.c.key == tag, TRACE_TAGS.c.request_id.in_(chunk)
            )
            tagged.update({trace_id: value for trace_id, value in conn.execute(query) if value})
    return {**keys, **tagged}


def traces_by_key(engine: sa.Engine, experiment_id: str, keys: set[str], tag: str) -> dict[str, set[str]]:
    """``{key: trace ids of the experiment carrying it}`` (as tag ``tag`` or client request id)."""
    found: dict[str, set[str]] = {}
    experiment = TRACE_INFO.c.experiment_id == int(experiment_id)
    with engine.connect() as conn:
        for chunk in _chunks(keys):
            by_request = sa.select(TRACE_INFO.c.client_request_id, TRACE_INFO.c.request_id).where(
                experiment, TRACE_INFO.c.client_request_id.in_(chunk)
            )
            by_tag = (
                sa.select(TRACE_TAGS.c.value, TRACE_TAGS.c.request_id)
                .join(TRACE_INFO, TRACE_INFO.c.request_id == TRACE_TAGS.c.request_id)
                .where(experiment, TRACE_TAGS.c.key == tag, TRACE_TAGS.c.value.in_(chunk))
            )
            for query in (by_request, by_tag):
                for key, trace_id in conn.execute(query):
                    found.setdefault(key, set()).add(trace_id)
    return found


def judge_scores(engine: sa.Engine, experiment_id: str, judge_name: str, trace_ids: set[str]) -> list[tuple]:
    """Rows (trace id, value JSON, metadata JSON, created ms, assessment id) of the valid, error-free
    LLM_JUDGE feedback named ``judge_name`` on ``trace_ids`` (call only when ``readable``):
    stored judge scores, read in one indexed query per 500 traces instead of trace by trace."""
    table = ASSESSMENTS
    rows: list[tuple] = []
    with engine.connect() as conn:
        for chunk in _chunks(trace_ids):
            query = sa.select(
                table.c.trace_id, table.c.value, table.c.assessment_metadata, table.c.created_timestamp, table.c.assessment_id
            ).where(
                table.c.trace_id.in_(chunk),
                table.c.experiment_id == int(experiment_id),
                table.c.source_type == "LLM_JUDGE",
                table.c.name == judge_name,
                table.c.error.is_(None),
                sa.or_(table.c.valid.is_(None), table.c.valid == sa.true()),
            )
            rows.extend(tuple(row) for row in conn.execute(query))
    return rows


def schema_revision(engine: sa.Engine) -> str | None:
    with engine.connect() as conn:
        try:
            return conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
        except sa.exc.DBAPIError:
            return None


def readable(db_uri: str, engine: sa.Engine) -> bool:
    """Whether the database is at the revision the direct reads were written for (checked once
    per database and process); otherwise a warning and the caller uses the public API."""
    if db_uri not in _checked:
        revision = schema_revision(engine)
        _checked[db_uri] = revision == WRITTEN_FOR_REVISION
        if not _checked[db_uri]:
            log.warning(
                "MLflow's database is at schema revision %s, not %s: reading labels and traces through "
                "MLflow's API instead (slower: it pages through every labelled trace)", revision, WRITTEN_FOR_REVISION,
            )
    return _checked[db_uri]
