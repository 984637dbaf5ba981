"""Production traffic from a file, for teams whose application does not log MLflow traces.

A file (CSV with a header, or JSONL) holds one answered question per row:

- ``question`` and ``answer`` (required, text);
- ``key`` (optional): the application's own id for the exchange. It becomes the trace's client
  request id, the key a trace is found by (``labels import`` matches ``trace_key`` against it,
  ``labels export`` writes it). Without one, the key is derived from the question and answer
  (``import-<hash>``), so the same row always gets the same key;
- ``expectations`` (optional): the reference answer GEPA optimizes the agent prompt against. A
  JSON object (``{"expected_response": "..."}``; in CSV a cell holding that JSON text) or plain
  text, which is taken as ``expected_response``. Stored as expectation assessments on the trace,
  from where ``eval_dataset`` copies them into the dataset's records.

Each row becomes one trace shaped like the ones judgeloop reads from an instrumented application:
a root span whose inputs are ``{"question": ...}`` and whose output is the answer (as a chat
completion, which MLflow's review form shows as text), tagged ``judgeloop.source = import``.

Importing checks every row first (line-numbered errors) and writes nothing when one is bad.
It is idempotent by key: a row whose key a trace of the experiment already carries is not logged
again (its expectations are added if that trace lacks them, which also finishes an import that
stopped part-way).
"""

import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from judgeloop.sme_labels.label_files.formats import BadRow, LabelFileError, Layout, detect_format, read_file
from judgeloop.settings import Settings

COLUMNS = ("question", "answer", "key", "expectations")
REQUIRED = ("question", "answer")
SOURCE = "import"
SPAN_NAME = "imported_answer"
EXPECTATION_SOURCE = "traces-import"
BATCH_SIZE = 500  # traces logged (then flushed, then their expectations written) per progress line
MAX_TEXT_CHARS = 100_000  # per question or answer: the same bound as a label's comment

Progress = Callable[[str], None]


class TraceFileError(LabelFileError):
    """The file as a whole cannot be read (missing, unknown format, bad header)."""


LAYOUT = Layout(COLUMNS, REQUIRED, error=TraceFileError)  # read like a label file (``formats``)


@dataclass(frozen=True)
class TraceRow:
    line: int
    question: str
    answer: str
    key: str
    expectations: dict


@dataclass
class TraceImportReport:
    rows: int = 0
    bad: list[BadRow] = field(default_factory=list)
    logged: int = 0
    already_present: int = 0
    expectations_added: int = 0  # existing traces that got the row's expectations
    to_log: int = 0  # (dry run) rows that would be logged

    def summary(self) -> str:
        text = f"logged {self.logged} trace(s), {self.already_present} already present (same key)"
        if self.expectations_added:
            text += f", expectations added to {self.expectations_added} existing trace(s)"
        return text + f", rejected {len(self.bad)}"


def derived_key(question: str, answer: str) -> str:
    return "import-" + hashlib.sha256(f"{question}\0{answer}".encode()).hexdigest()[:16]


def _text(fields: dict, name: str, required: bool, problems: list[str]) -> str | None:
    raw = fields.get(name)
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        if required:
            problems.append(f"field '{name}' is empty or missing")
        return None
    if not isinstance(raw, str):
        problems.append(f"field '{name}' must be text, got {type(raw).__name__} {raw!r}"[:200])
        return None
    if len(raw) > MAX_TEXT_CHARS:
        problems.append(f"field '{name}' is {len(raw):,} characters long, over the limit of {MAX_TEXT_CHARS:,}")
        return None
    return raw


def _expectations(raw, from_csv: bool, problems: list[str]) -> dict:
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return {}
    if from_csv and raw.lstrip().startswith("{"):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError as exc:
            problems.append(f"field 'expectations' starts with '{{' but is not a JSON object ({exc.msg})")
            return {}
    if isinstance(raw, str):
        return {"expected_response": raw}
    if not isinstance(raw, dict) or not raw:
        problems.append("field 'expectations' must be text or a non-empty JSON object, e.g. {\"expected_response\": \"...\"}")
        return {}
    empty = [name for name, value in raw.items() if value is None or value == ""]
    if empty:
        problems.append(f"field 'expectations' has empty value(s) for {', '.join(repr(n) for n in empty)}")
        return {}
    return raw


def _check(line: int, fields: dict, from_csv: bool) -> TraceRow | BadRow:
    problems: list[str] = []
    question = _text(fields, "question", True, problems)
    answer = _text(fields, "answer", True, problems)
    key = _text(fields, "key", False, problems)
    expectations = _expectations(fields.get("expectations"), from_csv, problems)
    if problems:
        return BadRow(line, tuple(problems))
    return TraceRow(line, question, answer, (key or "").strip() or derived_key(question, answer), expectations)


def read_rows(path: str | Path, fmt: str | None = None) -> tuple[list[TraceRow], list[BadRow]]:
    """(good rows, bad rows with their line); raises TraceFileError for the file as a whole."""
    fmt = detect_format(path, fmt)
    records, bad = read_file(path, fmt, LAYOUT)
    good, first_line_of_key = [], {}
    for record in records:
        line = record.line
        checked = _check(line, record.fields, from_csv=fmt == "csv")
        if isinstance(checked, BadRow):
            bad.append(checked)
            continue
        if checked.key in first_line_of_key:
            bad.append(BadRow(line, (f"key {checked.key!r} repeats line {first_line_of_key[checked.key]} (one trace per key)",)))
            continue
        first_line_of_key[checked.key] = line
        good.append(checked)
    return good, sorted(bad, key=lambda b: b.line)


def _ignore(message: str) -> None:
    pass


def import_traces(
    settings: Settings, experiment_id: str, path: str | Path, fmt: str | None = None,
    dry_run: bool = False, progress: Progress = _ignore,
) -> TraceImportReport:
    """Check every row, then log one trace per new key, or nothing when any row is bad."""
    from judgeloop.sme_labels.label_files.traces import traces_by_key

    rows, bad = read_rows(path, fmt)
    report = TraceImportReport(rows=len(rows) + len(bad), bad=bad)
    large = report.rows > BATCH_SIZE
    if large:
        progress(f"read {report.rows:,} row(s): {len(rows):,} good, {len(bad):,} bad")
    if bad:
        return report
    present = traces_by_key(settings, experiment_id, {row.key for row in rows})
    new = [row for row in rows if row.key not in present]
    existing = [row for row in rows if row.key in present]
    report.already_present, report.to_log = len(existing), len(new)
    if large:
        progress(f"{len(new):,} new trace(s) to log, {len(existing):,} already present")
    if dry_run:
        return report
    report.expectations_added = _complete_expectations(experiment_id, existing, present)
    started = time.monotonic()
    for start in range(0, len(new), BATCH_SIZE):
        batch = new[start : start + BATCH_SIZE]
        _log_batch(batch)
        report.logged += len(batch)
        if large:
            rate = report.logged / max(time.monotonic() - started, 1e-9)
            progress(f"logged {report.logged:,} of {len(new):,} trace(s) ({rate:,.0f} traces/s)")
    return report


def _log_batch(rows: list[TraceRow]) -> None:
    import mlflow

    from judgeloop.tracing.answers import as_chat_completion
    from judgeloop.tracing.traffic import SOURCE_TAG

    logged = []
    for row in rows:
        with mlflow.start_span(name=SPAN_NAME, span_type="AGENT") as span:
            span.set_inputs({"question": row.question})
            span.set_outputs(as_chat_completion(row.answer))
            mlflow.update_current_trace(client_request_id=row.key, tags={SOURCE_TAG: SOURCE})
            logged.append((span.trace_id, row))
    # Expectations are assessments on a stored trace: the trace must be written first.
    mlflow.flush_trace_async_logging()
    for trace_id, row in logged:
        _log_expectations(trace_id, row.expectations)


def _log_expectations(trace_id: str, expectations: dict) -> None:
    import mlflow
    from mlflow.entities import AssessmentSource

    source = AssessmentSource(source_type="HUMAN", source_id=EXPECTATION_SOURCE)
    for name, value in expectations.items():
        mlflow.log_expectation(trace_id=trace_id, name=name, value=value, source=source)


def _complete_expectations(experiment_id: str, rows: list[TraceRow], present: dict[str, set[str]]) -> int:
    """Give already imported traces the row's expectations they lack; how many traces got some."""
    from judgeloop.tracing.traces import read_many

    wanted = {next(iter(present[row.key])): row for row in rows if row.expectations and len(present[row.key]) == 1}
    if not wanted:
        return 0
    added = 0
    for trace_id, trace in read_many(experiment_id, list(wanted)).items():
        have = {a.name for a in trace.search_assessments(type="expectation")}
        missing = {name: value for name, value in wanted[trace_id].expectations.items() if name not in have}
        if missing:
            _log_expectations(trace_id, missing)
            added += 1
    return added
