"""Connects this process to the configured MLflow store and experiment."""

import os
from contextlib import contextmanager
from pathlib import Path

from judgeloop.mlflow_internals import sqlite_store
from judgeloop.settings import Settings, is_databricks

# Offline-friendly defaults; each is a no-op where the user already set the variable.
_QUIET_DEFAULTS = {
    # Without it the first judge call in a process tries to download a model catalog (~7 s offline).
    "MLFLOW_MODEL_CATALOG_URI": "",
    # Without it litellm tries to download a price list at import (~8 s offline).
    "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    # evaluate() on sqlite exhausts SQLAlchemy's pool and silently drops traces otherwise.
    "MLFLOW_SQLALCHEMYSTORE_MAX_OVERFLOW": "50",
    "MLFLOW_GENAI_EVAL_SKIP_TRACE_VALIDATION": "True",
}


def configure_libraries(settings: Settings) -> None:
    """The one place that sets environment variables read by third-party libraries (MLflow,
    litellm, dspy, openai); each only where the user did not set it.

    Imports nothing: commands that only read (``judgeloop status``) call it too, because
    loading a registered MemAlign judge imports litellm, which otherwise spends ~10 s offline
    fetching a price list and prints three "cost map fetch failed" warnings.
    """
    for key, value in library_environment(settings).items():
        os.environ.setdefault(key, value)
    if os.environ.get("OPENAI_API_BASE") or os.environ.get("OPENAI_BASE_URL"):
        # Clients insist on a key even for a local OpenAI-compatible server that checks none.
        os.environ.setdefault("OPENAI_API_KEY", "unused-by-local-server")


def library_environment(settings: Settings) -> dict[str, str]:
    """The switches ``configure_libraries`` sets, for child processes (``judgeloop up``)."""
    environment = {**_QUIET_DEFAULTS, "DSPY_CACHEDIR": str(settings.resolved_home / "dspy-cache")}
    if sqlite_store.database_path(settings.resolved_backend_store_uri or settings.resolved_tracking_uri):
        # Each evaluate worker is a writer queueing for sqlite's one write lock (judgeloop.mlflow_internals.sqlite_store).
        environment["MLFLOW_GENAI_EVAL_MAX_WORKERS"] = str(sqlite_store.EVALUATE_WORKERS)
    if (settings.judge_model or "").startswith("fake:/"):
        # evaluate() paces calls at 10-20/s by default to spare a provider's rate limit; the
        # in-process stand-in has none (765 traces took 40-80 s of waiting for nothing).
        environment["MLFLOW_GENAI_EVAL_PREDICT_RATE_LIMIT"] = "0"
    return environment


def prepare_environment(settings: Settings) -> None:
    configure_libraries(settings)
    if any((uri or "").startswith("fake:/") for uri in model_uris(settings)):
        from judgeloop.stand_in_models.fake_llm import register_litellm_provider

        register_litellm_provider()
    # local:/<name> embeddings (extra `local-models`); registering imports no torch.
    from judgeloop.stand_in_models import local_models

    if local_models.uses_local_provider(model_uris(settings)):
        local_models.register_litellm_provider()


def model_uris(settings: Settings) -> list[str | None]:
    return [settings.judge_model, settings.reflection_model, settings.embedding_model, settings.agent_model]


def connect(settings: Settings, calls_models: bool = True) -> str:
    """Point MLflow at the configured store and experiment; return the experiment id.

    Creates the state folder and the experiment (with an explicit artifact location, so
    nothing lands in the current directory) on first use. ``calls_models=False`` (commands that
    only read and write labels) skips registering the offline and local model providers, which
    imports litellm: seconds per command for nothing.
    """
    import mlflow

    if calls_models:
        prepare_environment(settings)
    else:
        configure_libraries(settings)
    from judgeloop.workspace import for_settings

    for_settings(settings).check_ready()  # names a missing setting, credential or package before any write
    if not is_databricks(settings):
        settings.resolved_home.mkdir(parents=True, exist_ok=True)
        if sqlite_store.use_wal(settings.resolved_tracking_uri):  # False unless the store is a sqlite file
            sqlite_store.commit_without_fsync()
    mlflow.set_tracking_uri(settings.resolved_tracking_uri)
    experiment_id = ensure_experiment(settings, settings.experiment_name)
    mlflow.set_experiment(experiment_id=experiment_id)
    return experiment_id


@contextmanager
def writing_into_the_database(settings: Settings):
    """Inside the block, MLflow writes go into the database behind the tracking server (yields its
    URI), when that database is known (``backend_store_uri``: what ``judgeloop up`` announces in
    running.json for its sqlite file, or ``JUDGELOOP_DATABASE_URL``); otherwise nothing changes
    (yields None).

    For bulk label writes (``labels import``): through the server each label is an HTTP request
    that costs this 2-core machine about 13 ms of CPU between client and server (68 labels/s at
    load 4); into the database, MLflow's own store writes the same rows at 300/s. A sqlite file is
    shared safely with the server's workers (WAL, MLflow's 20 s busy timeout, ``retry_locked``).
    """
    import mlflow

    backend = settings.resolved_backend_store_uri
    if not (backend and settings.resolved_tracking_uri.startswith(("http://", "https://"))):
        yield None
        return
    if sqlite_store.use_wal(backend):  # False unless a sqlite file
        sqlite_store.commit_without_fsync()
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(backend)
    try:
        yield backend
    finally:
        mlflow.set_tracking_uri(previous)


def ensure_experiment(settings: Settings, name: str) -> str:
    """The id of experiment ``name``, created on first use next to the main one."""
    import mlflow

    experiment = mlflow.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    # A tracking server decides (and proxies) artifact storage itself; a bare database
    # store would otherwise write ./mlruns relative to the current directory.
    served = settings.resolved_tracking_uri.startswith("http")
    artifact_location = None if is_databricks(settings) or served else settings.artifact_location
    if artifact_location:
        folder = Path(settings.resolved_home / "mlartifacts")
        if name != settings.experiment_name:  # its own folder, beside the main experiment's runs
            folder = folder / name
            artifact_location = folder.as_uri()
        folder.mkdir(parents=True, exist_ok=True)
    return mlflow.create_experiment(name, artifact_location=artifact_location)


@contextmanager
def logging_to(experiment_id: str, then: str):
    """Log to ``experiment_id`` (traces and runs, from every thread) inside the block, and to
    ``then`` after it."""
    import mlflow

    mlflow.set_experiment(experiment_id=experiment_id)
    try:
        yield experiment_id
    finally:
        mlflow.set_experiment(experiment_id=then)


def get_experiment_tag(experiment_id: str, key: str) -> str | None:
    import mlflow

    return mlflow.get_experiment(experiment_id).tags.get(key)


def set_experiment_tag(experiment_id: str, key: str, value: str) -> None:
    from mlflow import MlflowClient

    MlflowClient().set_experiment_tag(experiment_id, key, value)
