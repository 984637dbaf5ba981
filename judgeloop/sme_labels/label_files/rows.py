"""What a well-formed label row is: a pydantic model checked against the judge's scale.

``check_rows`` adds what only the whole file and the store can tell: unknown traces (or a
trace key no trace or several traces carry), unassigned reviewers, a (trace, reviewer) pair
given twice.
"""

from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, ValidationInfo, field_validator

from judgeloop.sme_labels import labels as labels_core
from judgeloop.sme_labels.label_files.formats import BadRow, RawRow
from judgeloop.settings import FeedbackType, Settings

# One limit for CSV and JSONL alike, checked per row before anything is written. 100,000
# characters is some 40 pages of text, far more than any reviewer's comment, and keeps a label
# (and a whole label file) a size the store, the review UI and a spreadsheet handle comfortably.
MAX_COMMENT_CHARS = 100_000
# MLflow keeps an assessment's source id in a 250-character column: a longer reviewer name is a
# bad row (named by its length, not printed whole), never a failed write halfway through a file.
MAX_REVIEWER_CHARS = 250


class LabelRow(BaseModel):
    """A row that passed every check: value already in the judge's own type.

    Validate with ``context={"settings": settings}``: the value is checked against its scale.
    """

    model_config = ConfigDict(frozen=True)

    line: int
    trace_id: str
    value: Any
    comment: str | None
    reviewer: str
    trace_key: str | None = None  # set when the trace was found by its key, not its id
    judge: str | None = None  # the file's judge column; None means the deployment's judge

    @field_validator("judge", mode="before")
    @classmethod
    def _judge(cls, raw, info: ValidationInfo):
        # A label counts for the judge of its name only: a row for another judge is refused, not
        # written under this one.
        if raw is None or (isinstance(raw, str) and not raw.strip()):
            return None
        expected = info.context["settings"].judge_name
        if not isinstance(raw, str) or raw.strip() != expected:
            raise ValueError(f"judge {str(raw)[:80]!r} is not this deployment's judge {expected!r}")
        return raw.strip()

    @field_validator("trace_id", "reviewer", mode="before")
    @classmethod
    def _required_text(cls, raw, info: ValidationInfo):
        if raw is None or (isinstance(raw, str) and not raw.strip()):
            raise ValueError(f"missing {info.field_name.replace('_', ' ')}")
        if not isinstance(raw, str):
            raise ValueError(f"{info.field_name} must be text, got {type(raw).__name__} {str(raw)[:80]!r}")
        if info.field_name == "reviewer" and len(raw.strip()) > MAX_REVIEWER_CHARS:
            raise ValueError(f"reviewer is {len(raw.strip()):,} characters long, over the limit of {MAX_REVIEWER_CHARS}")
        return raw.strip()

    @field_validator("comment", mode="before")
    @classmethod
    def _comment(cls, raw):
        # Kept exactly, whitespace included, so that it round-trips.
        if raw is None or raw == "":
            return None
        if not isinstance(raw, str):
            raise ValueError(f"comment must be text, got {type(raw).__name__} {raw!r}")
        if len(raw) > MAX_COMMENT_CHARS:
            raise ValueError(f"comment is {len(raw):,} characters long, over the limit of {MAX_COMMENT_CHARS:,}")
        return raw

    @field_validator("value", mode="before")
    @classmethod
    def _value(cls, raw, info: ValidationInfo):
        settings: Settings = info.context["settings"]
        if raw is None or (isinstance(raw, str) and not raw.strip()):
            raise ValueError("missing value")
        value = coerce_value(settings, raw)
        problem = labels_core.check_value(settings, value)
        if problem:
            raise ValueError(problem)
        return labels_core.normalize(settings, value)

    @classmethod
    def from_raw(cls, settings: Settings, raw: RawRow, found_by_key: str | None = None) -> "LabelRow":
        """``found_by_key``: the trace id the row's trace key named, used in place of its trace_id."""
        fields = {key: raw.fields.get(key) for key in ("trace_id", "value", "comment", "reviewer", "judge")}
        extra = {}
        if found_by_key is not None:
            extra = {"trace_id": found_by_key, "trace_key": raw.fields.get("trace_key")}
        return cls.model_validate({"line": raw.line, **fields, **extra}, context={"settings": settings})


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


def _reasons(error: ValidationError) -> list[str]:
    reasons = []
    for detail in error.errors():
        cause = (detail.get("ctx") or {}).get("error")
        reasons.append(str(cause) if cause is not None else f"{'.'.join(map(str, detail['loc']))}: {detail['msg']}")
    return reasons


def _trimmed_text(value) -> str | None:
    return value.strip() or None if isinstance(value, str) else None


def _by_key(raw: RawRow, experiment_id: str, known: set[str], by_key: dict[str, set[str]], reasons: list[str]):
    """The trace id a row's trace key names when its trace_id is not a trace of the experiment."""
    trace_id = _trimmed_text(raw.fields.get("trace_id"))
    key = raw.fields.get("trace_key")
    if key is not None and not isinstance(key, str):
        reasons.append(f"trace_key must be text, got {type(key).__name__} {key!r}")
        key = None
    key = _trimmed_text(key)
    if trace_id in known:
        return None
    if key is None:
        if trace_id:
            reasons.append(f"unknown trace id {trace_id!r} (not in experiment {experiment_id})")
        return None
    matches = sorted(by_key.get(key, ()))
    if len(matches) == 1:
        return matches[0]
    unknown_id = f"unknown trace id {trace_id!r} and " if trace_id else ""
    if not matches:
        reasons.append(f"{unknown_id}no trace of experiment {experiment_id} carries trace key {key!r}")
    else:
        shown = ", ".join(matches[:3]) + (", ..." if len(matches) > 3 else "")
        reasons.append(f"{unknown_id}trace key {key!r} is ambiguous: {len(matches)} traces carry it ({shown})")
    return None


def check_rows(
    settings: Settings,
    experiment_id: str,
    raw_rows: list[RawRow],
    known: set[str],
    by_key: dict[str, set[str]] | None = None,
) -> tuple[list[LabelRow], list[BadRow]]:
    """Every problem of every row; only rows without any problem come back as LabelRows.

    ``known``: the trace ids of the experiment among those the rows name. ``by_key``: for the
    trace keys of rows whose trace id is not known, the traces of the experiment carrying them.
    """
    assigned = set(settings.reviewers)
    good, bad = [], []
    first_line: dict[tuple[str, str], int] = {}
    for raw in raw_rows:
        reasons: list[str] = []
        row = None
        found = _by_key(raw, experiment_id, known, by_key or {}, reasons)
        try:
            row = LabelRow.from_raw(settings, raw, found)
        except ValidationError as exc:
            reasons.extend(r for r in _reasons(exc) if not (found is None and reasons and r == "missing trace id"))
        trace_id = found or _trimmed_text(raw.fields.get("trace_id"))
        reviewer = _trimmed_text(raw.fields.get("reviewer"))
        if reviewer and assigned and reviewer not in assigned and len(reviewer) <= MAX_REVIEWER_CHARS:
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
            good.append(row)
    return good, bad
