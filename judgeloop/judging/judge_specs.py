"""The judges a deployment aligns, one per quality dimension, from a judges file.

A judges file (TOML or YAML, ``JUDGELOOP_JUDGES_FILE``) lists judges under ``judges``; each has a
name, instructions, a feedback type with its scale or categories, and optionally its own model,
reviewers, label threshold, gate margin and weight in the prompt's optimization. Without a file,
the single-judge settings (``JUDGELOOP_JUDGE_NAME``, ``JUDGELOOP_FEEDBACK_TYPE``...) mean a file
of one judge. The whole file is validated at load: the first problem is one error naming the
file, the judge and the field, raised before anything uses it.

``settings_for`` turns one judge into the Settings every function of the loop already takes
(judge name, instructions, scale, model, threshold, gate margin), so a judge runs through the
same code as the single judge does.

TOML::

    [[judges]]
    name = "answer_quality"
    instructions = "Rate how well the answer in {{ outputs }} addresses {{ inputs }}."
    feedback_type = "likert"
    scale_min = 1
    scale_max = 4

    [[judges]]
    name = "answer_acceptable"
    instructions = "Is the answer in {{ outputs }} acceptable for {{ inputs }}?"
    feedback_type = "pass_fail"
    label_threshold = 10
"""

import re
import tomllib
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from judgeloop.settings import FeedbackType, Settings

# A judge's name is its label schema's, its scorer's and its Dagster partition's: kept to characters all three take.
NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}")


class JudgesFileError(ValueError):
    """The judges file cannot be used; the message names the file, the judge and the field."""


class JudgeSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    instructions: str
    feedback_type: FeedbackType = FeedbackType.LIKERT
    scale_min: int = 1
    scale_max: int = 4
    categories: tuple[str, ...] = ()
    model: str | None = Field(None, description="MLflow model URI of this judge; default: JUDGELOOP_JUDGE_MODEL.")
    reviewers: tuple[str, ...] | None = Field(None, description="SMEs for this judge; default: JUDGELOOP_REVIEWERS.")
    label_threshold: int | None = Field(None, ge=1, description="New labels that trigger its re-alignment.")
    gate_margin: float | None = Field(None, ge=0, description="How much worse it may measure and still be promoted.")
    weight: float = Field(1.0, gt=0, description="Its share in the score the agent prompt is optimized for.")

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not NAME.fullmatch(value):
            raise ValueError("must start with a letter and hold only letters, digits and _ (at most 64)")
        return value

    @field_validator("instructions")
    @classmethod
    def _instructions(cls, value: str) -> str:
        if "{{ inputs }}" not in value and "{{ outputs }}" not in value:
            raise ValueError("must reference {{ inputs }} and/or {{ outputs }} so the judge sees the trace")
        return value.strip()

    @field_validator("model")
    @classmethod
    def _model(cls, value: str | None) -> str | None:
        from judgeloop.model_calls.providers import MODEL_URI

        if value is not None and not MODEL_URI.fullmatch(value):
            raise ValueError("is not an MLflow model URI of the form provider:/model, e.g. openai:/gpt-4.1-mini")
        return value

    @model_validator(mode="after")
    def _scale(self):
        if self.feedback_type == FeedbackType.LIKERT and self.scale_min >= self.scale_max:
            raise ValueError(f"scale_min ({self.scale_min}) must be below scale_max ({self.scale_max})")
        if self.feedback_type == FeedbackType.CATEGORICAL and len(self.categories) < 2:
            raise ValueError("categorical feedback needs at least two categories")
        return self


def _read(path: Path) -> dict:
    try:
        text = path.read_text()
    except OSError as exc:
        raise JudgesFileError(f"judges file {path}: cannot read it ({exc})") from None
    try:
        if path.suffix.lower() == ".toml":
            return tomllib.loads(text)
        if path.suffix.lower() in (".yaml", ".yml"):
            import yaml

            return yaml.safe_load(text) or {}
    except (tomllib.TOMLDecodeError, ValueError) as exc:
        raise JudgesFileError(f"judges file {path}: not valid {path.suffix[1:].upper()} ({exc})") from None
    except Exception as exc:  # yaml.YAMLError, without importing yaml for TOML files
        raise JudgesFileError(f"judges file {path}: not valid YAML ({exc})") from None
    raise JudgesFileError(f"judges file {path}: name it .toml, .yaml or .yml (its format is told by its extension)")


def _problem(error: ValidationError) -> tuple[str, str]:
    first = error.errors()[0]
    field = ".".join(str(part) for part in first["loc"]) or "(the judge as a whole)"
    return field, first["msg"].removeprefix("Value error, ")


def parse(path: Path) -> list[JudgeSpec]:
    """Every judge of the file at ``path``, validated; ``JudgesFileError`` names the first problem."""
    data = _read(path)
    entries = data.get("judges") if isinstance(data, dict) else None
    if not isinstance(entries, list) or not entries:
        raise JudgesFileError(f"judges file {path}: no judges: list them under `judges` ([[judges]] in TOML)")
    specs, seen = [], set()
    for number, entry in enumerate(entries, start=1):
        name = entry.get("name") if isinstance(entry, dict) else None
        where = f"judges file {path}: judge {name!r} (entry {number})" if name else f"judges file {path}: entry {number}"
        if not isinstance(entry, dict):
            raise JudgesFileError(f"{where}: expected a table of fields, got {type(entry).__name__}")
        try:
            spec = JudgeSpec(**entry)
        except ValidationError as exc:
            field, message = _problem(exc)
            raise JudgesFileError(f"{where}, field {field!r}: {message}") from None
        if spec.name in seen:
            raise JudgesFileError(f"{where}, field 'name': {spec.name!r} is listed twice; each judge needs its own name")
        seen.add(spec.name)
        specs.append(spec)
    return specs


def from_settings(settings: Settings) -> JudgeSpec:
    """The one judge the single-judge settings describe."""
    return JudgeSpec(
        name=settings.judge_name, instructions=settings.judge_instructions, feedback_type=settings.feedback_type,
        scale_min=settings.scale_min, scale_max=settings.scale_max, categories=tuple(settings.categories),
    )


def load(settings: Settings) -> list[JudgeSpec]:
    """The deployment's judges: the judges file's, or the one the single-judge settings describe
    (``settings`` as ``settings_without_judges_file`` gives them)."""
    if settings.judges_file is None:
        return [from_settings(settings)]
    return parse(Path(settings.judges_file).expanduser())


def settings_for(settings: Settings, spec: JudgeSpec) -> Settings:
    """``settings`` as the loop's functions take them for judge ``spec`` (its name, rubric, scale,
    model, reviewers, threshold and margin; everything else the deployment's)."""
    update = {
        "judge_name": spec.name, "judge_instructions": spec.instructions, "feedback_type": spec.feedback_type,
        "scale_min": spec.scale_min, "scale_max": spec.scale_max,
        "categories": list(spec.categories) or settings.categories,
    }
    for field, value in (("judge_model", spec.model), ("label_threshold", spec.label_threshold), ("gate_margin", spec.gate_margin)):
        if value is not None:
            update[field] = value
    if spec.reviewers is not None:
        update["reviewers"] = list(spec.reviewers)
    return settings.model_copy(update=update)
