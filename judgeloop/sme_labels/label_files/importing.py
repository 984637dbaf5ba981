"""Importing a label file: check every row, plan write/edit/unchanged, then write."""

import concurrent.futures
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from judgeloop import workspace
from judgeloop.sme_labels import duplicate_labels
from judgeloop.sme_labels import labels as labels_core
from judgeloop.sme_labels.label_files.formats import BadRow, read_file
from judgeloop.sme_labels.label_files.rows import LabelRow, check_rows
from judgeloop.sme_labels.label_files.traces import known_trace_ids, traces_by_key
from judgeloop.settings import Settings

WRITE, EDIT, UNCHANGED = "write", "edit", "unchanged"

# Changes are written and reported in batches of this many labels. MLflow has no bulk API for
# assessments (each label is its own transaction in the store), so a batch is the unit of
# progress: after each one the count written so far and the rate are reported, and an import
# that stops part-way says how far it got (re-running it skips what was written).
BATCH_SIZE = 500

Progress = Callable[[str], None]


@dataclass(frozen=True)
class Action:
    row: LabelRow
    kind: str  # write | edit | unchanged
    existing_id: str | None = None


@dataclass
class ImportReport:
    rows: int = 0
    bad: list[BadRow] = field(default_factory=list)
    actions: list[Action] = field(default_factory=list)
    applied: bool = False
    completed_items: int = 0  # review-queue items marked complete because their trace is now labelled
    by_key: int = 0  # rows whose trace was found by its trace key (the trace id is not in this store)

    def count(self, kind: str) -> int:
        return sum(1 for a in self.actions if a.kind == kind)

    @property
    def written(self) -> int:
        return self.count(WRITE) if self.applied else 0

    @property
    def edited(self) -> int:
        return self.count(EDIT) if self.applied else 0

    @property
    def unchanged(self) -> int:
        return self.count(UNCHANGED)

    @property
    def rejected(self) -> int:
        return len(self.bad)

    def summary(self) -> str:
        text = f"written {self.written}, edited {self.edited}, unchanged {self.unchanged}, rejected {self.rejected}"
        if self.by_key:
            text += f"; {self.by_key} row(s) matched by trace key"
        return text + (f"; {self.completed_items} review-queue item(s) marked complete" if self.completed_items else "")


def existing_labels(settings: Settings, experiment_id: str) -> dict[tuple[str, str | None], labels_core.HumanLabel]:
    """The newest still-valid label per (trace, reviewer), whatever its value.

    Wider than ``labels.current_labels`` on purpose: a stored label with a value outside the
    schema is still the reviewer's current label, and a corrected import must override it
    rather than add a second valid label next to it.
    """
    return labels_core.latest_per_reviewer(labels_core.changed_since(settings, experiment_id).labels)


def _same(settings: Settings, label: labels_core.HumanLabel, row: LabelRow) -> bool:
    value = label.value
    if labels_core.check_value(settings, value) is None:
        value = labels_core.normalize(settings, value)
    same_value = value == row.value and type(value) is type(row.value)
    return same_value and (label.comment or None) == (row.comment or None)


def plan(settings: Settings, experiment_id: str, rows: list[LabelRow]) -> list[Action]:
    current = existing_labels(settings, experiment_id)
    actions = []
    for row in rows:
        existing = current.get((row.trace_id, row.reviewer))
        if existing is None:
            actions.append(Action(row, WRITE))
        elif _same(settings, existing, row):
            actions.append(Action(row, UNCHANGED, existing.assessment_id))
        else:
            actions.append(Action(row, EDIT, existing.assessment_id))
    return actions


class ImportInterrupted(RuntimeError):
    """Writing stopped part-way (store error). Re-running the import is safe: rows already
    written are then unchanged and skipped."""

    def __init__(self, done: int, total: int, row: LabelRow, cause: Exception):
        super().__init__(
            f"writing stopped at line {row.line} after {done} of {total} change(s): {type(cause).__name__}: {cause}. "
            "Re-run the same import: rows already written are skipped as unchanged."
        )
        self.done = done


def _ignore(message: str) -> None:
    pass


# Labels written at once through a tracking server whose database this process cannot reach (a
# team's remote server, Databricks): each label is one HTTP request whose time is mostly the round
# trip and the server's commit, so several in flight keep the server's workers busy. Into a
# database: one writer into a sqlite file (it takes one writer at a time,
# judgeloop.mlflow_internals.sqlite_store), a few into PostgreSQL.
SERVER_WRITERS = 8
DATABASE_WRITERS = 4


def writers_for(uri: str) -> int:
    """Labels written at once into the store at ``uri`` (the one the writes actually go to)."""
    from judgeloop.mlflow_internals import sqlite_store

    if uri.startswith(("http://", "https://", "databricks")):
        return SERVER_WRITERS
    return 1 if sqlite_store.database_path(uri) else DATABASE_WRITERS


def _write(settings: Settings, action: Action) -> None:
    import mlflow
    from mlflow.entities import AssessmentSource

    from judgeloop.mlflow_internals.sqlite_store import retry_locked

    row = action.row
    if action.kind == WRITE:
        labels_core.log_label(row.trace_id, settings.judge_name, row.value, row.reviewer, row.comment)
        return
    retry_locked(
        lambda: mlflow.override_feedback(
            trace_id=row.trace_id,
            assessment_id=action.existing_id,
            value=row.value,
            rationale=row.comment,
            source=AssessmentSource(source_type="HUMAN", source_id=row.reviewer),
        ),
        f"label on trace {row.trace_id}",
    )


def apply(settings: Settings, experiment_id: str, actions: list[Action], progress: Progress = _ignore) -> None:
    from judgeloop.stack.store import writing_into_the_database

    changes = [a for a in actions if a.kind in (WRITE, EDIT)]
    if not changes:
        return
    # Beside a running `judgeloop up` (or a server whose database is configured) the labels go
    # straight into its database: 4-5x the rate of one HTTP request per label.
    with writing_into_the_database(settings) as database:
        _apply_changes(settings, experiment_id, changes, writers_for(database or settings.resolved_tracking_uri), progress)


def _apply_changes(settings: Settings, experiment_id: str, changes: list[Action], writers: int, progress: Progress) -> None:
    from concurrent.futures import ThreadPoolExecutor

    started = time.monotonic()
    done = 0
    pool = ThreadPoolExecutor(max_workers=writers) if writers > 1 and len(changes) > 1 else None
    try:
        for start in range(0, len(changes), BATCH_SIZE):
            if done:
                _report_written(progress, done, len(changes), started)
            written, failed = _write_batch(settings, changes[start : start + BATCH_SIZE], pool)
            done += written
            if failed is not None:
                raise ImportInterrupted(done, len(changes), failed[0].row, failed[1]) from failed[1]
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)  # Ctrl-C: rows not started yet are not written
    if len(changes) > BATCH_SIZE:
        _report_written(progress, len(changes), len(changes), started)
    # Another writer may have labelled the same (trace, reviewer) since the plan was made.
    duplicate_labels.repair(settings, experiment_id)


def _write_batch(settings: Settings, batch: list[Action], pool) -> tuple[int, tuple[Action, Exception] | None]:
    """(rows written, the first failed row and its error). Each row is its own transaction.
    One writer stops at the first failure; several finish the batch's other rows first."""
    if pool is None:
        for written, action in enumerate(batch):
            try:
                _write(settings, action)
            except (Exception, KeyboardInterrupt) as exc:  # Ctrl-C too: say how far the import got
                return written, (action, exc)
        return len(batch), None
    futures = [pool.submit(_write, settings, action) for action in batch]
    try:
        errors = [(action, future.exception()) for action, future in zip(batch, futures)]
    except KeyboardInterrupt as exc:
        # Ctrl-C: rows not started are dropped; rows already sent finish and are counted.
        for future in futures:
            future.cancel()
        concurrent.futures.wait(futures)
        written = sum(1 for f in futures if not f.cancelled() and f.exception() is None)
        first_unwritten = next(a for a, f in zip(batch, futures) if f.cancelled() or f.exception() is not None)
        return written, (first_unwritten, exc)
    failed = [(action, error) for action, error in errors if error is not None]
    return len(batch) - len(failed), (failed[0] if failed else None)


def _report_written(progress: Progress, done: int, total: int, started: float) -> None:
    elapsed = max(time.monotonic() - started, 1e-9)
    progress(f"written {done:,} of {total:,} change(s) ({done / elapsed:,.0f} labels/s)")


def import_labels(
    settings: Settings,
    experiment_id: str,
    path: str | Path,
    fmt: str | None = None,
    allow_partial: bool = False,
    dry_run: bool = False,
    progress: Progress = _ignore,
) -> ImportReport:
    """Check every row, then write all of them, or none when one is bad (unless ``allow_partial``).

    ``dry_run`` checks and plans only. ``progress`` receives a line per stage of a large file.
    Raises LabelFileError when the file as a whole is unusable.
    """
    raw_rows, malformed = read_file(path, fmt)
    large = len(raw_rows) > BATCH_SIZE
    if large:
        progress(f"read {len(raw_rows):,} row(s); checking them against the store")
    named = {t.strip() for t in (row.fields.get("trace_id") for row in raw_rows) if isinstance(t, str) and t.strip()}
    known = known_trace_ids(settings, experiment_id, named)
    keys = {
        k.strip()
        for row in raw_rows
        if not (isinstance(t := row.fields.get("trace_id"), str) and t.strip() in known)
        and isinstance(k := row.fields.get("trace_key"), str) and k.strip()
    }
    by_key = traces_by_key(settings, experiment_id, keys)
    good, bad_values = check_rows(settings, experiment_id, raw_rows, known, by_key)
    bad = sorted(malformed + bad_values, key=lambda b: b.line)
    report = ImportReport(rows=len(raw_rows) + len(malformed), bad=bad)
    report.by_key = sum(1 for row in good if row.trace_key)
    report.actions = plan(settings, experiment_id, good)
    if large:
        progress(
            f"validated {report.rows:,} row(s): {len(good):,} good, {len(bad):,} bad; "
            f"{len(report.actions) - report.unchanged:,} change(s) to write"
        )
    if dry_run or (bad and not allow_partial):
        return report
    apply(settings, experiment_id, report.actions, progress)
    report.applied = True
    written = [a.row.trace_id for a in report.actions if a.kind in (WRITE, EDIT)]
    report.completed_items = workspace.for_settings(settings).complete_labelled_items(experiment_id, written=written)
    return report
