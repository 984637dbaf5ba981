"""What a well-formed label row is: a pydantic model checked against the judge's scale.

``check_rows`` adds what only the whole file and the store can tell: unknown traces,
unassigned reviewers, a (trace, reviewer) pair given twice.
"""

from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, ValidationInfo, field_validator

from judgeloop import labels as labels_core
from judgeloop.label_files.formats import BadRow, RawRow
from judgeloop.settings import FeedbackType, Settings


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

    @field_validator("trace_id", "reviewer", mode="before")
    @classmethod
    def _required_text(cls, raw, info: ValidationInfo):
        if raw is None or (isinstance(raw, str) and not raw.strip()):
            raise ValueError(f"missing {info.field_name.replace('_', ' ')}")
        if not isinstance(raw, str):
            raise ValueError(f"{info.field_name} must be text, got {type(raw).__name__} {raw!r}")
        return raw.strip()

    @field_validator("comment", mode="before")
    @classmethod
    def _comment(cls, raw):
        # Kept exactly, whitespace included, so that it round-trips.
        if raw is None or raw == "":
            return None
        if not isinstance(raw, str):
            raise ValueError(f"comment must be text, got {type(raw).__name__} {raw!r}")
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
    def from_raw(cls, settings: Settings, raw: RawRow) -> "LabelRow":
        fields = {key: raw.fields.get(key) for key in ("trace_id", "value", "comment", "reviewer")}
        return cls.model_validate({"line": raw.line, **fields}, context={"settings": settings})


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


def check_rows(
    settings: Settings, experiment_id: str, raw_rows: list[RawRow], known: set[str]
) -> tuple[list[LabelRow], list[BadRow]]:
    """Every problem of every row; only rows without any problem come back as LabelRows.

    ``known``: the trace ids of the experiment among those the rows name.
    """
    assigned = set(settings.reviewers)
    good, bad = [], []
    first_line: dict[tuple[str, str], int] = {}
    for raw in raw_rows:
        reasons: list[str] = []
        row = None
        try:
            row = LabelRow.from_raw(settings, raw)
        except ValidationError as exc:
            reasons.extend(_reasons(exc))
        trace_id = _trimmed_text(raw.fields.get("trace_id"))
        reviewer = _trimmed_text(raw.fields.get("reviewer"))
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
            good.append(row)
    return good, bad
