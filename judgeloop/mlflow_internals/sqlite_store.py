"""The default store, a sqlite file, made to hold up when several writers share it.

sqlite lets one writer in at a time. judgeloop writes one file from several threads
(``mlflow.genai.evaluate``'s worker pools log traces and assessments from each worker) and from
several processes (a Dagster run, ``judgeloop labels import``, the MLflow server of
``judgeloop up``). With sqlite's default rollback journal, readers block the writer's commit and
a reader that wants to write can be refused at once ("database is locked") whatever the busy
timeout. What this module does about it:

- WAL journal: readers and the writer no longer block each other; only writers queue, and they
  wait (MLflow sets a 20 s busy timeout on its sessions; ``BUSY_TIMEOUT_MS`` on judgeloop's own
  connections). WAL is a property of the file, set once, kept across connections. It needs the
  file on a local disk (not a network share). judgeloop's processes then commit without an fsync
  per transaction (``commit_without_fsync``).
- Bounded writer threads in ``mlflow.genai.evaluate`` (``EVALUATE_WORKERS``): its default pools
  grow to 40 predict + 40 scoring threads, each a writer queueing for the one lock.
- ``retry_locked``: a write of judgeloop's own that still finds the file locked (a long write
  of another process, a loaded machine) is tried again, a few times with back-off, instead of
  failing the run. A locked write has rolled back, so trying it again cannot write it twice.

Past one machine, several concurrent runs or a team of reviewers labelling at once, the store
belongs on PostgreSQL (``JUDGELOOP_DATABASE_URL``, README "When to move to PostgreSQL").
"""

import logging
import time
from pathlib import Path
from typing import Callable, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")

BUSY_TIMEOUT_MS = 60_000
# Threads mlflow.genai.evaluate may run per pool on a sqlite store. Its rate limiter (10-20 calls/s
# by default) is reached with 8 threads at up to 0.4 s a call, so more threads only add writers.
EVALUATE_WORKERS = 8
LOCKED_RETRIES = 6  # back-off 0.5, 1, 2, 4, 8, 16 s: about 30 s beyond the busy timeout


def database_path(uri: str | None) -> Path | None:
    """The file of a ``sqlite:///`` URI, or None for any other store."""
    if not uri or not uri.startswith("sqlite:///"):
        return None
    path = uri[len("sqlite:///"):].split("?", 1)[0]
    return None if path in ("", ":memory:") else Path(path)


def use_wal(uri: str | None) -> bool:
    """Switch the sqlite file of ``uri`` to the WAL journal (kept by the file); False when ``uri``
    is not a sqlite file. Creates the file when missing, as MLflow would."""
    import sqlite3

    path = database_path(uri)
    if path is None:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    connection = sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000)
    try:
        mode = connection.execute("PRAGMA journal_mode=WAL").fetchone()[0]
    finally:
        connection.close()
    if str(mode).lower() != "wal":  # e.g. a file system without shared memory: sqlite keeps its journal
        log.warning("sqlite store %s stays in %s journal mode (WAL unavailable)", path, mode)
        return False
    return True


_TUNED = {"done": False}


def commit_without_fsync() -> None:
    """Every sqlite connection this process opens from now on (MLflow's engine included) commits
    without waiting for the disk (``synchronous=NORMAL``). In WAL mode a commit stays atomic and
    survives a crash of any process; only a power cut or OS crash can take back the commits since
    the last checkpoint (a re-run of the import or the run writes them again). Profiled tagging of
    5,000 traces on a loaded machine: waiting for those syncs was about half of each write."""
    import sqlite3

    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    if _TUNED["done"]:
        return
    _TUNED["done"] = True

    @event.listens_for(Engine, "connect")
    def _normal_sync(dbapi_connection, connection_record):
        if isinstance(dbapi_connection, sqlite3.Connection):
            dbapi_connection.execute("PRAGMA synchronous=NORMAL")


def journal_mode(uri: str) -> str:
    import sqlite3

    connection = sqlite3.connect(database_path(uri))
    try:
        return str(connection.execute("PRAGMA journal_mode").fetchone()[0]).lower()
    finally:
        connection.close()


def is_locked_error(exc: BaseException) -> bool:
    """Whether ``exc`` (or what it wraps: MLflow re-raises SQLAlchemy's errors) is sqlite's
    "database is locked" / "database table is locked"."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if "database is locked" in str(exc) or "database table is locked" in str(exc):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def retry_locked(write: Callable[[], T], what: str = "write", retries: int = LOCKED_RETRIES, first_wait: float = 0.5) -> T:
    """``write()``, tried again with back-off while it fails because the sqlite file is locked."""
    wait = first_wait
    for attempt in range(retries + 1):
        try:
            return write()
        except Exception as exc:
            if attempt == retries or not is_locked_error(exc):
                raise
            log.warning("%s: the store is locked by another writer; trying again in %.1f s", what, wait)
            time.sleep(wait)
            wait *= 2
    raise AssertionError("unreachable")
