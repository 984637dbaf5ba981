"""Which SME labels wait for a re-alignment: one definition, shared by the label sensor and
``judgeloop status`` (no Dagster here).

A label waits when it is usable (``labels.usable``) and changed after the newest label that a
re-alignment took, counting only re-alignments that succeeded or are still running. The label
sensor keeps that position in its cursor (``RealignState``):

- ``base``: labels up to here were used by a re-alignment that finished successfully;
- ``inflight``: the re-alignment the sensor requested last and has not seen finish, with the
  position of the newest label it took. If it fails (gate failed, crash, Ctrl-C, provider
  outage) its labels wait again and are retried with the labels accumulated since, after a
  back-off that doubles with each consecutive failure up to ``MAX_BACKOFF_SECONDS``, so a
  deterministic failure is retried at most once per that period instead of looping.
"""

import json
from dataclasses import dataclass, field, replace

from judgeloop.sme_labels import labels
from judgeloop.settings import Settings

MAX_BACKOFF_SECONDS = 3600
# How far ahead of the sensor's clock a stored position may be before it counts as set by hand
# (the sensor never stores one past its own clock; this allows for a daemon moved between hosts).
CLOCK_TOLERANCE_SECONDS = 300


@dataclass(frozen=True)
class Inflight:
    run_key: str
    cursor: labels.Cursor
    label_count: int
    backdated: int = 0  # labels stamped in the past that this run took (they wait again if it fails)


@dataclass(frozen=True)
class RealignState:
    base: labels.Cursor = field(default_factory=labels.Cursor)
    inflight: Inflight | None = None
    failures: int = 0  # consecutive failed re-alignments since the last success
    retry_at: float = 0.0  # epoch seconds before which a failed re-alignment is not retried
    # Labels stamped in the past (``noticed_backdated``): how many wait, and the last count of
    # labels stamped before a boundary (boundary ms, count) with the time it was taken.
    backdated: int = 0
    below: tuple[int, int] = (0, 0)
    below_checked: float = 0.0

    @property
    def consumed(self) -> labels.Cursor:
        """Labels up to here were taken by a re-alignment that succeeded or is still running."""
        return self.inflight.cursor if self.inflight else self.base

    def encode(self) -> str:
        inflight = None
        if self.inflight:
            inflight = {"run_key": self.inflight.run_key, "cursor": json.loads(self.inflight.cursor.encode()),
                        "labels": self.inflight.label_count, "backdated": self.inflight.backdated}
        return json.dumps({"base": json.loads(self.base.encode()), "inflight": inflight,
                           "failures": self.failures, "retry_at": self.retry_at, "backdated": self.backdated,
                           "below": list(self.below), "below_checked": self.below_checked})

    @classmethod
    def decode(cls, raw: str | None) -> "RealignState":
        if not raw:
            return cls()
        data = json.loads(raw)
        if "base" not in data:  # a cursor written before the state existed: a plain label cursor
            return cls(base=labels.Cursor.decode(raw))
        inflight = data.get("inflight")
        return cls(
            base=labels.Cursor.decode(json.dumps(data["base"])),
            inflight=Inflight(inflight["run_key"], labels.Cursor.decode(json.dumps(inflight["cursor"])), int(inflight["labels"]),
                              int(inflight.get("backdated", 0)))
            if inflight else None,
            failures=int(data.get("failures", 0)),
            retry_at=float(data.get("retry_at", 0.0)),
            backdated=int(data.get("backdated", 0)),
            below=tuple(int(x) for x in data.get("below", (0, 0))),
            below_checked=float(data.get("below_checked", 0.0)),
        )

    def repaired(self, now: float) -> tuple["RealignState", str | None]:
        """This state with positions from the future undone, and what was repaired (None: nothing).

        The sensor only ever stores positions up to its own clock (``labels.next_cursor``), so a
        cursor ahead of it was set by hand (Dagster's ``setSensorCursor``): left alone, a base in
        2100 hides every label "changed after 2100". Such a position is dropped and the labels
        count from the start again (the next re-alignment reads them all anyway); a retry time
        beyond the longest back-off is brought back to it.
        """
        limit_ms = int((now + CLOCK_TOLERANCE_SECONDS) * 1000)
        repaired, notes = self, []
        if self.base.updated_ms > limit_ms:
            repaired, notes = replace(self, base=labels.Cursor(), below=(0, 0)), [f"base {self.base.updated_ms} ms"]
        if repaired.inflight is not None and repaired.inflight.cursor.updated_ms > limit_ms:
            notes.append(f"in-flight position {repaired.inflight.cursor.updated_ms} ms")
            repaired = replace(repaired, inflight=replace(repaired.inflight, cursor=labels.Cursor()), below=(0, 0))
        if repaired.retry_at > now + MAX_BACKOFF_SECONDS:
            notes.append(f"retry time {repaired.retry_at:.0f}")
            repaired = replace(repaired, retry_at=now + MAX_BACKOFF_SECONDS)
        if not notes:
            return self, None
        return repaired, f"sensor cursor ahead of this machine's clock ({', '.join(notes)}): reset"

    def requested(self, run_key: str, cursor: labels.Cursor, label_count: int) -> "RealignState":
        # The run takes every label up to its range, the back-dated ones included (they are older).
        return replace(self, inflight=Inflight(run_key, cursor, label_count, self.backdated), backdated=0)

    def succeeded(self) -> "RealignState":
        return replace(self, base=self.consumed, inflight=None, failures=0, retry_at=0.0)

    def failed(self, now: float, interval_seconds: float) -> "RealignState":
        failures = self.failures + 1
        returned = self.inflight.backdated if self.inflight else 0
        return replace(self, inflight=None, failures=failures, retry_at=now + backoff_seconds(failures, interval_seconds),
                       backdated=self.backdated + returned)


# How often the sensor counts the labels stamped before its look-back window (one COUNT query).
BACKDATED_CHECK_SECONDS = 60


def noticed_backdated(state: RealignState, settings: Settings, experiment_id: str, now: float) -> RealignState:
    """``state`` with labels stamped in the past counted as waiting.

    The incremental read starts ``labels.LOOKBACK_MS`` before the newest label it read, so a label
    written now but stamped earlier (a reviewer's slow clock, an import of old labels) is never
    read by it. At most every ``BACKDATED_CHECK_SECONDS`` the labels stamped before the last
    boundary are counted again: what the count grew by arrived stamped in the past and waits
    (every re-alignment takes it, being older than the range it is handed). Without SQL access
    (REST only, Databricks) nothing is counted. A deletion and a back-dated label between two
    checks cancel out; a label stamped between the last boundary and the new one is not seen.
    """
    if now - state.below_checked < BACKDATED_CHECK_SECONDS:
        return state
    from judgeloop.mlflow_internals.label_rows import count_stamped_before

    boundary, counted = state.below
    grown = 0
    if boundary:
        current = count_stamped_before(settings, experiment_id, boundary)
        if current is None:
            return replace(state, below_checked=now)
        grown = max(0, current - counted)
    new_boundary = max(0, state.consumed.updated_ms - labels.LOOKBACK_MS)
    count = count_stamped_before(settings, experiment_id, new_boundary) if new_boundary else 0
    if count is None:
        return replace(state, below_checked=now)
    return replace(state, backdated=state.backdated + grown, below=(new_boundary, count), below_checked=now)


def backoff_seconds(failures: int, interval_seconds: float) -> float:
    """Wait before retrying after ``failures`` consecutive failures: one sensor interval, doubling, capped."""
    if failures <= 0:
        return 0.0
    return float(min(MAX_BACKOFF_SECONDS, max(1.0, interval_seconds) * 2 ** (failures - 1)))


@dataclass
class Waiting:
    labels: list[labels.HumanLabel]
    rejected: list[labels.Rejection]
    batch: labels.LabelBatch
    since: labels.Cursor = field(default_factory=labels.Cursor)  # where the read started

    @property
    def count(self) -> int:
        return len(self.labels)


def taken_up_to(found: Waiting, up_to: tuple[int, str]) -> Waiting:
    """Of the labels ``found`` waiting, those a run handed the range ending at ``up_to`` takes,
    with the cursor just past them (the labels after ``up_to`` keep waiting)."""
    batch = labels.LabelBatch(
        labels=[label for label in found.batch.labels if label.key <= tuple(up_to)],
        cursor=labels.cursor_through(found.since, found.batch, up_to),
        rows_read=found.batch.rows_read,
    )
    return Waiting(
        [label for label in found.labels if label.key <= tuple(up_to)],
        list(found.rejected), batch, found.since,
    )


def waiting_labels(settings: Settings, experiment_id: str, since: labels.Cursor) -> Waiting:
    """The usable labels changed after ``since`` (a ``RealignState.consumed``): the labels that wait."""
    batch = labels.changed_since(settings, experiment_id, since)
    # One per (trace, reviewer): two valid labels that concurrent writers left for one reviewer's
    # opinion count once, as the newest (``judgeloop.sme_labels.duplicate_labels``).
    fresh, rejected = labels.usable(settings, labels.newest_per_reviewer(batch.labels), experiment_id)
    return Waiting(fresh, rejected, batch, since)
