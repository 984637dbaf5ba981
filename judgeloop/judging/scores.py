"""Judge scores are data: a judge version's score on a trace is paid for once, stored, reused.

A score is stored in MLflow as the judge's own feedback on the trace (LLM_JUDGE source, named
like the judge) carrying the judge version in its metadata. A registered judge version never
changes (its instructions and memory are frozen at registration), so its score on a trace
stays valid: a re-alignment measures the promoted judge only on held-out traces it never
scored, and the aligned judge's scores, stored once it is registered, are what the next
re-alignment reuses if it gets promoted.

What is not a score: a provider error (429, 500, timeout) and an answer off the judge's scale
or unparseable. Neither is stored, both are counted with their reason, and the trace is tried
again next time. They never enter agreement as a value.
"""

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from judgeloop.sme_labels import labels
from judgeloop.mlflow_internals import mlflow_schema
from judgeloop.mlflow_internals.label_rows import readable_engine
from judgeloop.mlflow_internals.sqlite_store import retry_locked
from judgeloop.settings import FeedbackType, Settings

log = logging.getLogger(__name__)

VERSION_KEY = "judgeloop.judge_version"


@dataclass
class Scores:
    """One judge's values on a set of traces, and what they cost."""

    values: dict[str, object] = field(default_factory=dict)  # trace id -> value on the judge's scale
    reused: int = 0  # values read back from MLflow
    paid: int = 0  # judge calls made now
    provider_errors: dict[str, str] = field(default_factory=dict)  # trace id -> error text
    invalid_answers: dict[str, str] = field(default_factory=dict)  # trace id -> why the answer is not a score

    @property
    def unscored(self) -> int:
        return len(self.provider_errors) + len(self.invalid_answers)

    def summary(self) -> str:
        parts = [f"{len(self.values)} scored ({self.reused} reused, {self.paid} judge calls)"]
        if self.provider_errors:
            parts.append(f"{len(self.provider_errors)} provider errors")
        if self.invalid_answers:
            parts.append(f"{len(self.invalid_answers)} invalid answers")
        return ", ".join(parts)


def _is_stored_score(assessment, judge_name: str, version: int) -> bool:
    return (
        assessment.source.source_type == "LLM_JUDGE"
        and assessment.name == judge_name
        and assessment.valid is not False
        and getattr(assessment, "feedback", None) is not None
        and assessment.feedback.error is None
        and str((assessment.metadata or {}).get(VERSION_KEY)) == str(version)
    )


def stored_value(settings: Settings, trace, version: int):
    """The stored score of judge ``version`` on ``trace`` (the first one written), or None."""
    found = [a for a in trace.info.assessments or [] if _is_stored_score(a, settings.judge_name, version)]
    if not found:
        return None
    first = min(found, key=lambda a: (a.create_time_ms or 0, a.assessment_id))
    value, reason = as_score(settings, first.feedback.value)
    return None if reason else value


def stored_scores(settings: Settings, experiment_id: str, trace_ids, versions) -> dict[int, dict[str, object]]:
    """``{version: {trace id: stored score}}`` of each judge version on ``trace_ids`` (no judge is called).

    On a SQL store one query per 500 traces (``mlflow_schema.judge_scores``); otherwise the traces
    are read through the API. The first score written per (trace, version) counts, as in ``stored_value``.
    """
    import json

    wanted = {str(v) for v in versions}
    found: dict[int, dict[str, tuple]] = {int(v): {} for v in versions}
    engine = readable_engine(settings)
    if engine is not None:
        for trace_id, raw_value, raw_metadata, created, assessment_id in mlflow_schema.judge_scores(
            engine, experiment_id, settings.judge_name, set(trace_ids)
        ):
            version = str(json.loads(raw_metadata or "{}").get(VERSION_KEY))
            if version not in wanted:
                continue
            try:
                value = json.loads(raw_value)
            except (TypeError, ValueError):
                value = raw_value
            value, reason = as_score(settings, value)
            key = (created or 0, assessment_id)
            current = found[int(version)].get(trace_id)
            if reason is None and (current is None or key < current[0]):
                found[int(version)][trace_id] = (key, value)
        return {v: {t: value for t, (_, value) in by_trace.items()} for v, by_trace in found.items()}
    from judgeloop.tracing.traces import read_many

    read = read_many(experiment_id, list(trace_ids))
    result: dict[int, dict[str, object]] = {}
    for version in versions:
        values = {t: stored_value(settings, trace, version) for t, trace in read.items()}
        result[int(version)] = {t: v for t, v in values.items() if v is not None}
    return result


def as_score(settings: Settings, value) -> tuple[object, str | None]:
    """(value in the judge's own type, None) or (None, why it is not a score on this scale)."""
    if value is None:
        return None, "no value"
    if settings.feedback_type == FeedbackType.LIKERT and isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            return None, f"answer {value!r} is not a number"
    reason = labels.check_value(settings, value)
    if reason:
        return None, f"answer {reason.removeprefix('value ')}"
    return labels.normalize(settings, value), None


def call_judge(settings: Settings, judge, traces: list, workers: int = 4) -> Scores:
    """Score ``traces`` with ``judge`` now (every trace is a paid call)."""
    result = Scores(paid=len(traces))

    from judgeloop.tracing.trace_fields import view

    def one(trace):
        try:
            return judge(trace=view(settings, trace)), None
        except Exception as exc:  # one trace's provider failure must not sink the whole measurement
            return None, f"{type(exc).__name__}: {exc}"

    if not traces:
        return result
    with ThreadPoolExecutor(max_workers=workers) as pool:
        answers = list(pool.map(one, traces))
    for trace, (feedback, failure) in zip(traces, answers):
        trace_id = trace.info.trace_id
        if failure is None and feedback.error is not None:
            failure = getattr(feedback.error, "error_message", None) or str(feedback.error)
        if failure is not None:
            log.warning("judge failed on trace %s: %s", trace_id, failure)
            result.provider_errors[trace_id] = failure[:300]
            continue
        value, reason = as_score(settings, feedback.value)
        if reason:
            result.invalid_answers[trace_id] = reason
        else:
            result.values[trace_id] = value
    return result


def save(settings: Settings, version: int, values: dict[str, object], rationale: str = "") -> int:
    """Store judge ``version``'s ``values`` as its feedback on each trace; returns how many were written."""
    import mlflow
    from mlflow.entities import AssessmentSource

    source = AssessmentSource(source_type="LLM_JUDGE", source_id=f"{settings.judge_name}/v{version}")
    for trace_id, value in values.items():
        retry_locked(
            lambda: mlflow.log_feedback(
                trace_id=trace_id,
                name=settings.judge_name,
                value=value,
                rationale=rationale or None,
                source=source,
                metadata={VERSION_KEY: str(version)},
            ),
            f"score on trace {trace_id}",
        )
    return len(values)


def adopt(trace_id: str, assessment, version: int) -> None:
    """Make the judge's own feedback from ``mlflow.genai.evaluate`` the stored score of ``version``.

    The evaluation already paid for that score; marking it (metadata only, value untouched)
    lets every later measurement of the same version reuse it instead of calling the judge again.
    """
    import mlflow

    assessment.metadata = {**(assessment.metadata or {}), VERSION_KEY: str(version)}
    retry_locked(
        lambda: mlflow.update_assessment(trace_id=trace_id, assessment_id=assessment.assessment_id, assessment=assessment),
        f"score on trace {trace_id}",
    )


def measure(settings: Settings, judge, version: int | None, traces: dict, raw: dict | None = None, store: bool = True) -> Scores:
    """Judge ``version``'s scores on ``traces`` ({id: trace to score}), reusing stored ones.

    ``raw`` ({id: trace as stored}) is where stored scores are looked up (default: ``traces``
    themselves, which is fine when they were read from the store with their assessments).
    ``version`` None means a judge not registered yet: every trace is paid for and nothing is
    stored (``save`` it after registration). New scores of a registered version are stored.
    """
    raw = raw if raw is not None else traces
    reused: dict[str, object] = {}
    if version is not None:
        for trace_id in traces:
            value = stored_value(settings, raw[trace_id], version) if trace_id in raw else None
            if value is not None:
                reused[trace_id] = value
    todo = [trace for trace_id, trace in traces.items() if trace_id not in reused]
    result = call_judge(settings, judge, todo)
    if version is not None and store and result.values:
        save(settings, version, result.values)
    result.values = {**reused, **result.values}
    result.reused = len(reused)
    return result
