"""The default sqlite store under several writers: WAL journal, bounded evaluate workers, a locked
write tried again, label imports through a server with several requests in flight."""

import sqlite3
import threading
import time

import pytest

from judgeloop.mlflow_internals import sqlite_store
from judgeloop.settings import load_settings


def test_connect_puts_the_store_in_wal_mode(home):
    from judgeloop.stack.store import connect

    settings = load_settings()
    connect(settings)
    assert sqlite_store.journal_mode(settings.resolved_tracking_uri) == "wal"


def test_evaluate_workers_are_bounded_on_a_sqlite_store_only(home):
    from judgeloop.stack.store import library_environment

    on_sqlite = library_environment(load_settings())
    assert on_sqlite["MLFLOW_GENAI_EVAL_MAX_WORKERS"] == str(sqlite_store.EVALUATE_WORKERS)
    on_postgres = library_environment(load_settings(tracking_uri="postgresql://u:p@db/mlflow"))
    assert "MLFLOW_GENAI_EVAL_MAX_WORKERS" not in on_postgres


def test_a_write_waiting_for_another_writers_lock_is_tried_again(tmp_path):
    """Another process holds the write lock longer than the busy timeout: the write fails with
    "database is locked", is tried again, and lands once the lock is released."""
    path = tmp_path / "store.db"
    uri = f"sqlite:///{path}"
    sqlite_store.use_wal(uri)
    setup = sqlite3.connect(path)
    setup.execute("CREATE TABLE labels (value INTEGER)")
    setup.commit()
    setup.close()

    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")  # holds the one write lock
    threading.Timer(0.6, holder.rollback).start()
    attempts = []

    def write():
        attempts.append(time.monotonic())
        connection = sqlite3.connect(path, timeout=0.05)
        try:
            connection.execute("INSERT INTO labels VALUES (1)")
            connection.commit()
        finally:
            connection.close()

    sqlite_store.retry_locked(write, "test write", first_wait=0.2)
    assert len(attempts) >= 2
    check = sqlite3.connect(path)
    assert check.execute("SELECT count(*) FROM labels").fetchone()[0] == 1
    check.close()
    holder.close()


def test_other_errors_are_not_retried():
    attempts = []

    def write():
        attempts.append(1)
        raise ValueError("bad value")

    with pytest.raises(ValueError):
        sqlite_store.retry_locked(write, first_wait=0.01)
    assert attempts == [1]


def test_locked_errors_are_recognised_through_wrapping():
    try:
        try:
            raise sqlite3.OperationalError("database is locked")
        except sqlite3.OperationalError as inner:
            raise RuntimeError("INTERNAL_ERROR: (sqlite3.OperationalError)") from inner
    except RuntimeError as outer:
        assert sqlite_store.is_locked_error(outer)
    assert not sqlite_store.is_locked_error(RuntimeError("trace not found"))


def test_judgeloops_connections_commit_without_an_fsync_each(home):
    import sqlalchemy as sa

    from judgeloop.stack.store import connect

    settings = load_settings()
    connect(settings)
    engine = sa.create_engine(settings.resolved_tracking_uri)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL (FULL is 2)
    engine.dispose()
