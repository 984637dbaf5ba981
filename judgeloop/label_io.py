"""SME labels in and out of MLflow as files (CSV or JSONL), and the "labels changed" trigger.

A label file has one row per (trace, reviewer): ``trace_id, value, comment, reviewer``.
Importing validates every row before writing anything; a row is written as HUMAN feedback
named like the judge (exactly what the MLflow review UI writes). Importing is idempotent:
a row equal to the reviewer's current label on that trace is skipped, a different one
overrides it (the old label stays stored as ``valid=False`` history, as a UI edit does).
Exporting writes the current valid labels in the same format, so export -> import changes
nothing.

``decide_notify`` and ``launch_realign`` let a labeling tool ask a running Dagster to
re-align now instead of waiting for the sensor's next poll.

No Dagster import here: this module is used by the CLI and must stay light.
"""

import csv
import io
import json
import math
import os
import sys
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from judgeloop import labels as labels_core
from judgeloop.settings import FeedbackType, Settings

COLUMNS = ("trace_id", "value", "comment", "reviewer")
REQUIRED = ("trace_id", "value", "reviewer")
FORMATS = ("csv", "jsonl")
_EXTENSIONS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}

DEFAULT_DAGSTER_URL = "http://127.0.0.1:3000"
REALIGN_JOB = "realign_judge"
CODE_LOCATION = "judgeloop"
REPOSITORY = "__repository__"
TRIGGER_TAG = "judgeloop/trigger"


class LabelFileError(ValueError):
    """The file as a whole cannot be read (missing, unknown format, bad header)."""


# ---------------------------------------------------------------------------------------
# Reading files


@dataclass(frozen=True)
class RawRow:
    """One record as it stands in the file, before any check against the store."""

    line: int  # 1-based line where the record starts, as an editor shows it
    fields: dict


@dataclass(frozen=True)
class BadRow:
    line: int
    reasons: tuple[str, ...]

    def __str__(self) -> str:
        return f"line {self.line}: {'; '.join(self.reasons)}"


@dataclass(frozen=True)
class LabelRow:
    """A row that passed every check: value already in the judge's own type."""

    line: int
    trace_id: str
    value: object
    comment: str | None
    reviewer: str


def detect_format(path: str | Path, explicit: str | None = None) -> str:
    if explicit:
        if explicit not in FORMATS:
            raise LabelFileError(f"unknown format {explicit!r}: use one of {', '.join(FORMATS)}")
        return explicit
    suffix = Path(str(path)).suffix.lower()
    if suffix not in _EXTENSIONS:
        raise LabelFileError(
            f"cannot tell the format of {str(path)!r} from its extension: name it .csv or .jsonl, or pass --format"
        )
    return _EXTENSIONS[suffix]


def read_file(path: str | Path, fmt: str | None = None) -> tuple[list[RawRow], list[BadRow]]:
    """Records of a label file and the rows that are malformed as text."""
    fmt = detect_format(path, fmt)
    if str(path) == "-":
        text = sys.stdin.read()
    else:
        try:
            # utf-8-sig: spreadsheets often save CSV with a byte-order mark.
            text = Path(path).read_text(encoding="utf-8-sig")
        except FileNotFoundError:
            raise LabelFileError(f"{path}: no such file") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise LabelFileError(f"{path}: cannot read it ({exc})") from None
    return parse_text(text, fmt)


def parse_text(text: str, fmt: str) -> tuple[list[RawRow], list[BadRow]]:
    if fmt == "csv":
        return _parse_csv(text)
    if fmt == "jsonl":
        return _parse_jsonl(text)
    raise LabelFileError(f"unknown format {fmt!r}: use one of {', '.join(FORMATS)}")


def _parse_csv(text: str) -> tuple[list[RawRow], list[BadRow]]:
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    rows, bad = [], []
    header: list[str] | None = None
    previous_end = 0
    while True:
        start = previous_end + 1
        try:
            record = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            previous_end = reader.line_num
            if header is None:
                raise LabelFileError(f"line {start}: the header is not valid CSV ({exc})") from None
            bad.append(BadRow(start, (f"malformed CSV ({exc})",)))
            continue
        previous_end = reader.line_num
        if not record or all(not cell.strip() for cell in record):
            continue  # blank line
        if header is None:
            header = [cell.strip().lower() for cell in record]
            _check_header(header)
            continue
        if len(record) != len(header):
            bad.append(
                BadRow(start, (f"malformed row: {len(record)} fields, the header has {len(header)} ({', '.join(header)})",))
            )
            continue
        rows.append(RawRow(start, dict(zip(header, record))))
    if header is None:
        raise LabelFileError(f"the file is empty: expected a header line {','.join(COLUMNS)}")
    return rows, bad


def _check_header(header: list[str]) -> None:
    unknown = [name for name in header if name not in COLUMNS]
    missing = [name for name in REQUIRED if name not in header]
    duplicated = sorted({name for name in header if header.count(name) > 1})
    problems = []
    if unknown:
        problems.append(f"unknown column(s) {', '.join(repr(n) for n in unknown)}")
    if missing:
        problems.append(f"missing column(s) {', '.join(missing)}")
    if duplicated:
        problems.append(f"repeated column(s) {', '.join(duplicated)}")
    if problems:
        raise LabelFileError(f"line 1: {'; '.join(problems)} (expected columns: {','.join(COLUMNS)})")


def _parse_jsonl(text: str) -> tuple[list[RawRow], list[BadRow]]:
    rows, bad = [], []
    # Iterating a stream splits on line ends only; str.splitlines would also split on
    # U+2028 and friends, which JSON allows unescaped inside strings.
    for number, line in enumerate(io.StringIO(text, newline=None), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            bad.append(BadRow(number, (f"malformed row: not valid JSON ({exc.msg} at column {exc.colno})",)))
            continue
        if not isinstance(record, dict):
            bad.append(BadRow(number, (f"malformed row: expected a JSON object, got {type(record).__name__}",)))
            continue
        unknown = [key for key in record if key not in COLUMNS]
        if unknown:
            bad.append(
                BadRow(number, (f"malformed row: unknown key(s) {', '.join(repr(k) for k in unknown)} (expected {', '.join(COLUMNS)})",))
            )
            continue
        rows.append(RawRow(number, record))
    return rows, bad


# ---------------------------------------------------------------------------------------
# Checking rows against the judge's schema and the store


def coerce_value(settings: Settings, raw):
    """The value in the judge's type, or the raw value when it cannot be (check_value explains)."""
    if isinstance(raw, str):
        text = raw.strip()
        if settings.feedback_type == FeedbackType.LIKERT:
            for parse in (int, float):
                try:
                    return parse(text)
                except ValueError:
                    pass
            return text
        if settings.feedback_type == FeedbackType.PASS_FAIL:
            return text.lower()
        return text
    return raw


def _text(fields: dict, key: str, reasons: list[str], required: bool) -> str | None:
    value = fields.get(key)
    # An optional text (the comment) is kept exactly, whitespace included, so it round-trips.
    if value is None or (isinstance(value, str) and not (value.strip() if required else value)):
        if required:
            reasons.append(f"missing {key.replace('_', ' ')}")
        return None
    if not isinstance(value, str):
        reasons.append(f"{key} must be text, got {type(value).__name__} {value!r}")
        return None
    return value


def check_rows(settings: Settings, experiment_id: str, raw_rows: list[RawRow]) -> tuple[list[LabelRow], list[BadRow]]:
    """Every problem of every row; only rows without any problem come back as LabelRows."""
    candidates = [row.fields.get("trace_id") for row in raw_rows]
    known = known_trace_ids(settings, experiment_id, {t.strip() for t in candidates if isinstance(t, str) and t.strip()})
    assigned = set(settings.reviewers)
    good, bad = [], []
    first_line: dict[tuple[str, str], int] = {}
    for raw in raw_rows:
        reasons: list[str] = []
        trace_id = _text(raw.fields, "trace_id", reasons, required=True)
        trace_id = trace_id.strip() if trace_id else None
        reviewer = _text(raw.fields, "reviewer", reasons, required=True)
        reviewer = reviewer.strip() if reviewer else None
        comment = _text(raw.fields, "comment", reasons, required=False)

        raw_value = raw.fields.get("value")
        value = None
        if raw_value is None or (isinstance(raw_value, str) and not raw_value.strip()):
            reasons.append("missing value")
        else:
            value = coerce_value(settings, raw_value)
            problem = labels_core.check_value(settings, value)
            if problem:
                reasons.append(problem)
            else:
                value = labels_core.normalize(settings, value)

        if trace_id and trace_id not in known:
            reasons.append(f"unknown trace id {trace_id!r} (not in experiment {experiment_id})")
        if reviewer and assigned and reviewer not in assigned:
            reasons.append(f"reviewer {reviewer!r} is not assigned ({', '.join(sorted(assigned))})")
        if trace_id and reviewer:
            key = (trace_id, reviewer)
            if key in first_line:
                reasons.append(f"same trace and reviewer as line {first_line[key]}")
            else:
                first_line[key] = raw.line
        if reasons:
            bad.append(BadRow(raw.line, tuple(reasons)))
        else:
            good.append(LabelRow(raw.line, trace_id, value, comment, reviewer))
    return good, bad


def known_trace_ids(settings: Settings, experiment_id: str, trace_ids: set[str]) -> set[str]:
    """Which of ``trace_ids`` are traces of the experiment."""
    if not trace_ids:
        return set()
    db_uri = labels_core.backend_db_uri(settings)
    if db_uri is not None:
        import sqlalchemy as sa
        from mlflow.store.tracking.dbmodels.models import SqlTraceInfo

        table = SqlTraceInfo.__table__
        found: set[str] = set()
        wanted = sorted(trace_ids)
        with labels_core._engine(db_uri).connect() as conn:
            for start in range(0, len(wanted), 500):
                chunk = wanted[start : start + 500]
                query = sa.select(table.c.request_id).where(
                    table.c.experiment_id == int(experiment_id), table.c.request_id.in_(chunk)
                )
                found.update(conn.execute(query).scalars())
        return found
    from mlflow import MlflowClient

    client, found, token = MlflowClient(), set(), None
    while True:
        page = client.search_traces(locations=[experiment_id], max_results=500, page_token=token, include_spans=False)
        found.update(t.info.trace_id for t in page if t.info.trace_id in trace_ids)
        token = page.token
        if not token or found == trace_ids:
            return found


# ---------------------------------------------------------------------------------------
# Planning and writing


WRITE, EDIT, UNCHANGED = "write", "edit", "unchanged"


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
        return f"written {self.written}, edited {self.edited}, unchanged {self.unchanged}, rejected {self.rejected}"


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


def apply(settings: Settings, actions: list[Action]) -> None:
    import mlflow
    from mlflow.entities import AssessmentSource

    changes = [a for a in actions if a.kind in (WRITE, EDIT)]
    for done, action in enumerate(changes):
        row = action.row
        try:
            if action.kind == WRITE:
                labels_core.log_label(row.trace_id, settings.judge_name, row.value, row.reviewer, row.comment)
            else:
                mlflow.override_feedback(
                    trace_id=row.trace_id,
                    assessment_id=action.existing_id,
                    value=row.value,
                    rationale=row.comment,
                    source=AssessmentSource(source_type="HUMAN", source_id=row.reviewer),
                )
        except Exception as exc:
            raise ImportInterrupted(done, len(changes), row, exc) from exc


def import_labels(
    settings: Settings,
    experiment_id: str,
    path: str | Path,
    fmt: str | None = None,
    allow_partial: bool = False,
    dry_run: bool = False,
) -> ImportReport:
    """Check every row, then write all of them, or none when one is bad (unless ``allow_partial``).

    ``dry_run`` checks and plans only. Raises LabelFileError when the file as a whole is unusable.
    """
    raw_rows, malformed = read_file(path, fmt)
    good, bad_values = check_rows(settings, experiment_id, raw_rows)
    bad = sorted(malformed + bad_values, key=lambda b: b.line)
    report = ImportReport(rows=len(raw_rows) + len(malformed), bad=bad)
    report.actions = plan(settings, experiment_id, good)
    if dry_run or (bad and not allow_partial):
        return report
    apply(settings, report.actions)
    report.applied = True
    return report


# ---------------------------------------------------------------------------------------
# Export


def export_rows(settings: Settings, experiment_id: str) -> list[dict]:
    current, _ = labels_core.current_labels(settings, experiment_id)
    rows = [
        {
            "trace_id": label.trace_id,
            "value": labels_core.normalize(settings, label.value),
            "comment": label.comment,
            "reviewer": label.reviewer,
        }
        for label in current
    ]
    return sorted(rows, key=lambda r: (r["trace_id"], r["reviewer"] or ""))


def _csv_cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def write_rows(rows: list[dict], out: IO[str], fmt: str) -> None:
    if fmt == "csv":
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(COLUMNS)
        for row in rows:
            writer.writerow([_csv_cell(row[c]) for c in COLUMNS])
    elif fmt == "jsonl":
        for row in rows:
            out.write(json.dumps({c: row[c] for c in COLUMNS}, ensure_ascii=False) + "\n")
    else:
        raise LabelFileError(f"unknown format {fmt!r}: use one of {', '.join(FORMATS)}")


def export_labels(settings: Settings, experiment_id: str, destination: str | Path, fmt: str) -> int:
    """Write the current valid labels to ``destination`` ('-' = stdout); return how many."""
    rows = export_rows(settings, experiment_id)
    if str(destination) == "-":
        write_rows(rows, sys.stdout, fmt)
        sys.stdout.flush()
        return len(rows)
    target = Path(destination)
    target.parent.mkdir(parents=True, exist_ok=True)
    # Written next to the target and renamed: a failed export never leaves half a file.
    handle, temp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="") as out:
            write_rows(rows, out, fmt)
        os.replace(temp, target)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    return len(rows)


# ---------------------------------------------------------------------------------------
# "Labels changed": decide whether a re-alignment is worth launching, and launch it


@dataclass(frozen=True)
class AlignedState:
    promoted_version: int | None
    promoted_newest_label_ms: int  # newest label the promoted judge was aligned on (0: none)
    tried_version: int | None  # newest version aligned after the promoted one (its gate failed)
    tried_newest_label_ms: int


def aligned_state(settings: Settings, experiment_id: str) -> AlignedState:
    from judgeloop import judges

    promoted = judges.promoted_version(experiment_id)
    if promoted is None:
        return AlignedState(None, 0, None, 0)
    promoted_ms = int(judges.lineage(experiment_id, promoted).get("newest_label_ms") or 0)
    tried_version, tried_ms = None, 0
    latest = judges.latest_version(experiment_id, settings.judge_name) or promoted
    # Versions above the promoted one were aligned from it and not promoted: the labels they
    # were aligned on were already tried, retrying them gives the same answer.
    for version in range(latest, promoted, -1):
        entry = judges.lineage(experiment_id, version)
        if entry.get("kind") == "aligned" and entry.get("previous_version") == promoted:
            ms = int(entry.get("newest_label_ms") or 0)
            if ms > tried_ms:
                tried_version, tried_ms = version, ms
    return AlignedState(promoted, promoted_ms, tried_version, tried_ms)


@dataclass(frozen=True)
class NotifyDecision:
    launch: bool
    reason: str
    usable_labels: int = 0
    new_labels: int = 0
    newest_label_ms: int = 0
    aligned_up_to_ms: int = 0
    promoted_version: int | None = None
    job_name: str = REALIGN_JOB
    tags: dict = field(default_factory=dict)


def decide_notify(settings: Settings, experiment_id: str, force: bool = False) -> NotifyDecision:
    """Whether ``labels notify`` should launch realign_judge now, and why (no network)."""
    from judgeloop import split

    state = aligned_state(settings, experiment_id)
    current, _ = labels_core.current_labels(settings, experiment_id)
    newest = max((label.updated_ms for label in current), default=0)
    base = dict(usable_labels=len(current), newest_label_ms=newest, promoted_version=state.promoted_version)
    if state.promoted_version is None:
        return NotifyDecision(False, "no judge is promoted yet: materialize base_judge first (judgeloop up launches it)", **base)
    fresh = [label for label in current if label.updated_ms > state.promoted_newest_label_ms]
    base.update(new_labels=len(fresh), aligned_up_to_ms=state.promoted_newest_label_ms)
    if not fresh:
        return NotifyDecision(
            False, f"nothing new: judge v{state.promoted_version} is aligned on every usable label ({len(current)})", **base
        )
    aligned, heldout = split.split(sorted({label.trace_id for label in current}), settings.heldout_fraction)
    if len(aligned) < settings.min_alignment_labels or len(heldout) < settings.min_heldout_labels:
        return NotifyDecision(
            False,
            f"{len(fresh)} new label(s), but too few labelled traces to align: {len(aligned)} to align on "
            f"(need {settings.min_alignment_labels}) and {len(heldout)} held out (need {settings.min_heldout_labels})",
            **base,
        )
    if not force and state.tried_version is not None and newest <= state.tried_newest_label_ms:
        return NotifyDecision(
            False,
            f"nothing new since judge v{state.tried_version}, aligned on these labels and not promoted "
            f"(its gate failed); --force retries",
            **base,
        )
    tags = {TRIGGER_TAG: "notify", "judgeloop/new_labels": str(len(fresh)), "judgeloop/newest_label_ms": str(newest)}
    return NotifyDecision(
        True,
        f"{len(fresh)} usable label(s) newer than what judge v{state.promoted_version} was aligned on",
        tags=tags,
        **base,
    )


LAUNCH_MUTATION = """
mutation JudgeloopNotify($executionParams: ExecutionParams!) {
  launchRun(executionParams: $executionParams) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on RunConfigValidationInvalid { errors { message } }
    ... on Error { message }
  }
}
"""

ACTIVE_RUNS_QUERY = """
query JudgeloopActiveRealigns($filter: RunsFilter!) {
  runsOrError(filter: $filter, limit: 5) {
    __typename
    ... on Runs { results { runId status } }
    ... on Error { message }
  }
}
"""

ACTIVE_STATUSES = ["QUEUED", "NOT_STARTED", "MANAGED", "STARTING", "STARTED"]


class DagsterError(RuntimeError):
    pass


def dagster_url(explicit: str | None = None) -> str:
    from judgeloop.settings import load_settings

    # JUDGELOOP_DAGSTER_URL, else the URL a running `judgeloop up` announced, else the default.
    return (explicit or load_settings().dagster_url or load_settings().running_stack.get("dagster_url") or DEFAULT_DAGSTER_URL).rstrip("/")


def graphql(url: str, query: str, variables: dict, timeout: float = 30) -> dict:
    request = urllib.request.Request(
        f"{url}/graphql",
        data=json.dumps({"query": query, "variables": variables}).encode(),
        headers={"Content-Type": "application/json", "Accept": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body = json.loads(response.read().decode() or "{}")
    except urllib.error.HTTPError as exc:
        raise DagsterError(f"Dagster at {url} answered HTTP {exc.code}: {exc.read()[:300].decode(errors='replace')}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise DagsterError(f"cannot reach Dagster at {url} ({getattr(exc, 'reason', exc)}); is `judgeloop up` running?") from None
    except json.JSONDecodeError:
        raise DagsterError(f"Dagster at {url} did not answer JSON: is that the Dagster webserver?") from None
    if body.get("errors"):
        raise DagsterError(f"Dagster rejected the request: {'; '.join(e.get('message', str(e)) for e in body['errors'])}")
    return body.get("data") or {}


def execution_params(job_name: str, tags: dict) -> dict:
    return {
        "selector": {"repositoryLocationName": CODE_LOCATION, "repositoryName": REPOSITORY, "jobName": job_name},
        "executionMetadata": {"tags": [{"key": k, "value": str(v)} for k, v in tags.items()]},
    }


def active_runs(url: str, job_name: str = REALIGN_JOB) -> list[str]:
    """Ids of runs of ``job_name`` queued or in progress."""
    data = graphql(url, ACTIVE_RUNS_QUERY, {"filter": {"pipelineName": job_name, "statuses": ACTIVE_STATUSES}})
    result = data.get("runsOrError") or {}
    if result.get("__typename") != "Runs":
        raise DagsterError(f"listing runs failed: {result.get('message', result)}")
    return [run["runId"] for run in result.get("results", [])]


def launch_run(url: str, job_name: str, tags: dict) -> str:
    """Launch ``job_name`` through the webserver's GraphQL API; return the run id."""
    data = graphql(url, LAUNCH_MUTATION, {"executionParams": execution_params(job_name, tags)})
    result = data.get("launchRun") or {}
    if result.get("__typename") == "LaunchRunSuccess":
        return result["run"]["runId"]
    detail = result.get("message") or "; ".join(e.get("message", "") for e in result.get("errors", [])) or str(result)
    raise DagsterError(f"launching {job_name} failed ({result.get('__typename', 'no result')}): {detail}")


def format_ms(ms: int | None) -> str:
    if not ms:
        return "never"
    from datetime import datetime, timezone

    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def finite(value):
    return value if not isinstance(value, float) or math.isfinite(value) else None
