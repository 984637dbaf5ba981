"""Everything that reaches past MLflow's public API (and litellm's), one module per concern.

Each module here relies on something MLflow does not promise to keep: its database tables, a
private member, a class it replaces at run time. Each has a contract test against the pinned
MLflow (tests/test_mlflow_schema.py, tests/test_sqlite_store.py, tests/test_mlflow_internals.py),
so an upgrade that breaks one fails there, by name, before it breaks a run. Nothing outside this
package imports SQLAlchemy, sqlite3 or MLflow's private names (tests/test_layers.py).

- ``mlflow_schema``: MLflow's own tables (assessments, trace_info, trace_tags) and their revision.
- ``label_rows``: the SME label reader on the assessments table (incremental, by update time).
- ``sqlite_store``: a sqlite store made to hold up with several writers.
- ``memalign_memory``: MemAlign's private memory members.
- ``judge_retries``: the retry count of MLflow's judge adapters, clamped.
- ``scorer_versions``: a scorer's version numbers from the tracking store, without rebuilding judges.
- ``prompt_override``: a registry prompt's template swapped for a candidate.
- ``litellm_hooks``: wrappers on litellm's call functions, installed once litellm is imported.
"""
