"""SME labels: HUMAN feedback named like the judge, read incrementally and validated.

Which labels count (everywhere: sensor, alignment, agreement):
- on production traffic, not on prompt-optimization traces (``judgeloop.tracing.traffic``);
- source HUMAN, named like the judge (trimmed, case-insensitive, as MemAlign matches);
- still valid (an edit in the MLflow UI overrides the old label, which stays stored with
  ``valid=False``; MemAlign would otherwise still learn from it);
- value inside the schema's range or options (checked here too: the review form's dropdown
  enforces a small scale, but the API and label files accept anything);
- written by an assigned reviewer, where reviewers are configured.
Labels failing any rule are returned as rejections with the reason, never used.

How reading "changed since a cursor" stays cheap: the cursor is (last_updated_timestamp,
assessment_id) of the newest label seen. On a SQL store (sqlite, PostgreSQL, MySQL; also
the store behind a local ``mlflow server``) the query runs on MLflow's own ``assessments``
table through its index on ``last_updated_timestamp``, so a tick with nothing new is one
index probe whatever the number of traces, and a tick with k new labels reads k rows
(``judgeloop.mlflow_internals.label_rows``, the one reader of that table).
Against a remote tracking server with no database access, the REST API has no filter on
an assessment's update time; the fallback pages through traces that carry feedback of that
name, which grows with the labelled traces (documented in README).
"""

import json
import math
import time
from dataclasses import dataclass, field

from judgeloop.settings import FeedbackType, Settings

# MLflow stamps last_updated_timestamp in Python before the row is committed, so with several
# writers (a tracking server's workers) a label can become visible after a newer one was read.
# Each read therefore starts this far before the cursor and skips rows it already returned.
# Measured (bench/label_commit_lag.py, 3 workers on PostgreSQL, 8 writer threads, a 2-core machine
# at load ~27): labels became visible up to 4.0 s behind a newer one. 30 s leaves a wide margin;
# it costs re-reading the labels of the last 30 s, skipped by id.
LOOKBACK_MS = 30_000


@dataclass(frozen=True)
class Cursor:
    updated_ms: int = 0
    assessment_id: str = ""
    seen: tuple[tuple[str, int], ...] = ()  # (assessment id, updated_ms) read within LOOKBACK_MS of the cursor
    # (override id, overridden id) of the overrides read so far. Deleting an override makes MLflow
    # mark the overridden label valid again without touching its update time; watching the
    # overrides is how a reader notices that change.
    overrides: tuple[tuple[str, str], ...] = ()
    # Opaque state of readers that cannot work from update times alone (the Databricks review
    # queue reader keeps each item's last seen update time here).
    state: str = ""

    @property
    def key(self) -> tuple[int, str]:
        return (self.updated_ms, self.assessment_id)

    def encode(self) -> str:
        data = {"t": self.updated_ms, "id": self.assessment_id, "seen": [list(s) for s in self.seen],
                "overrides": [list(o) for o in self.overrides]}
        if self.state:
            data["state"] = self.state
        return json.dumps(data)

    @classmethod
    def decode(cls, raw: str | None) -> "Cursor":
        if not raw:
            return cls()
        data = json.loads(raw)
        return cls(
            int(data["t"]), str(data["id"]), tuple((str(i), int(t)) for i, t in data.get("seen", [])),
            tuple((str(o), str(i)) for o, i in data.get("overrides", [])), str(data.get("state", "")),
        )


@dataclass(frozen=True)
class HumanLabel:
    assessment_id: str
    trace_id: str
    name: str
    value: object
    comment: str | None
    reviewer: str | None
    updated_ms: int
    valid: bool = True

    @property
    def key(self) -> tuple[int, str]:
        return (self.updated_ms, self.assessment_id)


@dataclass(frozen=True)
class Rejection:
    trace_id: str
    reviewer: str | None
    value: object
    reason: str


@dataclass
class LabelBatch:
    labels: list[HumanLabel] = field(default_factory=list)
    cursor: Cursor = field(default_factory=Cursor)
    rows_read: int = 0


def matches_name(name: str, judge_name: str) -> bool:
    return name.strip().lower() == judge_name.strip().lower()


def changed_since(settings: Settings, experiment_id: str, cursor: Cursor | None = None, **options) -> LabelBatch:
    """SME labels created, edited or restored after ``cursor``, read where the workspace keeps
    them (MLflow's assessments table locally, the review queue on Databricks: ``judgeloop.workspace``)."""
    from judgeloop.workspace import for_settings

    return for_settings(settings).changed_since(experiment_id, cursor or Cursor(), **options)


def next_cursor(newest: tuple[int, str], seen: dict[str, int], overrides: dict[str, str]) -> Cursor:
    """The cursor past ``newest``, never past this machine's clock.

    Update times are written by clients (a reviewer's machine, an import script): one label
    stamped a day ahead would otherwise move the cursor a day ahead and hide every label
    written in between. Labels stamped ahead stay in ``seen`` until the clock passes them,
    so they are counted once.
    """
    now = int(time.time() * 1000)
    if newest[0] > now:
        newest = (now, "")
    window = newest[0] - LOOKBACK_MS
    return Cursor(
        newest[0], newest[1], tuple(sorted((i, t) for i, t in seen.items() if t >= window)), tuple(sorted(overrides.items()))
    )


def changed_since_via_api(settings: Settings, experiment_id: str, cursor: Cursor) -> LabelBatch:
    from judgeloop.tracing.traces import search_all

    found = []
    seen = dict(cursor.seen)
    for trace in search_all(experiment_id, f"feedback.`{settings.judge_name}` IS NOT NULL"):
        for a in trace.info.assessments or []:
            if a.source.source_type != "HUMAN" or a.feedback is None or not matches_name(a.name, settings.judge_name):
                continue
            label = HumanLabel(
                a.assessment_id, trace.info.trace_id, a.name, a.value, a.rationale, a.source.source_id,
                a.last_update_time_ms or a.create_time_ms or 0, bool(a.valid if a.valid is not None else True),
            )
            if label.key > cursor.key and seen.get(label.assessment_id) != label.updated_ms:
                found.append(label)
    found.sort(key=lambda label: label.key)
    seen.update((label.assessment_id, label.updated_ms) for label in found)
    newest = found[-1].key if found else cursor.key
    return LabelBatch(labels=found, cursor=next_cursor(newest, seen, dict(cursor.overrides)), rows_read=len(found))


def check_value(settings: Settings, value) -> str | None:
    """Why ``value`` does not fit the judge's scale, or None when it does."""
    kind = settings.feedback_type
    if kind == FeedbackType.PASS_FAIL:
        if isinstance(value, bool) or str(value).lower() in {"yes", "no", "pass", "fail", "true", "false"}:
            return None
        return f"value {value!r} is not pass/fail"
    if kind == FeedbackType.CATEGORICAL:
        return None if value in settings.categories else f"value {value!r} is not one of {settings.categories}"
    value = _step(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        return f"value {value!r} is not a number"
    if not settings.scale_min <= value <= settings.scale_max:
        return f"value {value} is outside {settings.scale_min}-{settings.scale_max}"
    if value != int(value):
        return f"value {value} is not a whole step of the {settings.scale_min}-{settings.scale_max} scale"
    return None


def normalize(settings: Settings, value):
    """A valid label's value in the judge's own type (int for likert, bool for pass/fail)."""
    if settings.feedback_type == FeedbackType.PASS_FAIL:
        return value if isinstance(value, bool) else str(value).lower() in {"yes", "pass", "true"}
    if settings.feedback_type == FeedbackType.LIKERT:
        return int(_step(value))
    return value


def _step(value):
    """A likert value as a number: the review form's dropdown stores the chosen step as text ("3")."""
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            return value
    return value


def usable(
    settings: Settings, labels: list[HumanLabel], experiment_id: str | None = None
) -> tuple[list[HumanLabel], list[Rejection]]:
    """Split labels into those that count and rejections with a reason. Invalid (overridden)
    labels are dropped silently: they are history, not mistakes. With ``experiment_id``,
    labels on prompt-optimization traffic are rejected too (``judgeloop.tracing.traffic``)."""
    keep, rejected = [], []
    reviewers = set(settings.reviewers)
    not_production = set()
    if experiment_id is not None:
        from judgeloop.tracing import traffic

        not_production = traffic.optimizer_trace_ids(experiment_id, {label.trace_id for label in labels if label.valid})
    for label in labels:
        if not label.valid:
            continue
        reason = check_value(settings, label.value)
        if reason is None and label.trace_id in not_production:
            reason = "the trace is prompt-optimization traffic, not production"
        if reason is None and reviewers and label.reviewer not in reviewers:
            reason = f"reviewer {label.reviewer!r} is not assigned ({', '.join(sorted(reviewers))})"
        if reason:
            rejected.append(Rejection(label.trace_id, label.reviewer, label.value, reason))
        else:
            keep.append(label)
    return keep, rejected


def current_labels(
    settings: Settings, experiment_id: str, up_to: tuple[int, str] | None = None
) -> tuple[list[HumanLabel], list[Rejection]]:
    """Every label that counts now: the newest valid label per (trace, reviewer).

    With ``up_to`` (a label key, see ``encode_key``), only labels whose current version is at or
    before it: the range a re-alignment was launched for. A label edited after that point is
    left to the next range, so a run takes exactly the labels it was handed and no others.
    """
    batch = changed_since(settings, experiment_id, Cursor())
    # Newest first, usability second: an older valid label left by a concurrent writer is never
    # the reviewer's current one, even when the newest is unusable (``judgeloop.sme_labels.duplicate_labels``).
    newest = newest_per_reviewer(batch.labels)
    if up_to is not None:
        newest = [label for label in newest if label.key <= tuple(up_to)]
    return usable(settings, newest, experiment_id)


# The tag that hands a re-alignment run its label range: the key of the newest label it takes.
# The label sensor and the label path's push both set it; the run aligns on labels up to it only.
LABELS_UP_TO_TAG = "judgeloop/labels_up_to"


def encode_key(key: tuple[int, str]) -> str:
    return f"{int(key[0])}/{key[1]}"


def decode_key(raw: str | None) -> tuple[int, str] | None:
    """A label key from ``LABELS_UP_TO_TAG`` (None: no range was handed, every label counts)."""
    if not raw:
        return None
    ms, _, assessment_id = raw.partition("/")
    if not ms.isdigit():
        raise ValueError(f"tag {LABELS_UP_TO_TAG}={raw!r} is not '<update time ms>/<assessment id>'")
    return (int(ms), assessment_id)


def cursor_through(previous: Cursor, batch: "LabelBatch", key: tuple[int, str]) -> Cursor:
    """The cursor after taking, of ``batch`` (read from ``previous``), the labels up to ``key``.

    When a run was handed a range that ends before the newest label read, the labels past
    ``key`` must keep waiting: the cursor stops at ``key`` and remembers (``seen``) only what it
    took, so the next read returns the rest.
    """
    if batch.cursor.key <= tuple(key):
        return batch.cursor
    seen = dict(previous.seen)
    seen.update((label.assessment_id, label.updated_ms) for label in batch.labels if label.key <= tuple(key))
    cursor = next_cursor(max(previous.key, tuple(key)), seen, dict(batch.cursor.overrides))
    return Cursor(cursor.updated_ms, cursor.assessment_id, cursor.seen, cursor.overrides, previous.state)


def latest_per_reviewer(found: list[HumanLabel]) -> dict[tuple[str, str | None], HumanLabel]:
    """The newest valid label per (trace, reviewer), by (update time, assessment id): the read
    rule that keeps concurrent writers' duplicates from counting twice (``judgeloop.sme_labels.duplicate_labels``)."""
    latest: dict[tuple[str, str | None], HumanLabel] = {}
    for label in found:
        if not label.valid:
            continue
        key = (label.trace_id, label.reviewer)
        if key not in latest or label.key > latest[key].key:
            latest[key] = label
    return latest


def newest_per_reviewer(found: list[HumanLabel]) -> list[HumanLabel]:
    """``latest_per_reviewer``'s labels in (update time, assessment id) order."""
    return sorted(latest_per_reviewer(found).values(), key=lambda label: label.key)


def by_trace(labels: list[HumanLabel]) -> dict[str, list[HumanLabel]]:
    grouped: dict[str, list[HumanLabel]] = {}
    for label in labels:
        grouped.setdefault(label.trace_id, []).append(label)
    return grouped


def log_label(trace_id: str, judge_name: str, value, reviewer: str, comment: str | None = None) -> str:
    """Write one SME label exactly as the MLflow review UI does: HUMAN feedback named like the judge."""
    import mlflow
    from mlflow.entities import AssessmentSource

    from judgeloop.mlflow_internals.sqlite_store import retry_locked

    feedback = retry_locked(
        lambda: mlflow.log_feedback(
            trace_id=trace_id,
            name=judge_name,
            value=value,
            rationale=comment,
            source=AssessmentSource(source_type="HUMAN", source_id=reviewer),
        ),
        f"label on trace {trace_id}",
    )
    return feedback.assessment_id
