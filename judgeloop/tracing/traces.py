"""Runs the agent (or takes existing production traces), scores them with the judge, and tags
the traces where the agent answered AND the judge scored with ``eval=complete``.

Re-running is incremental: questions that already have a complete trace are not asked again,
and existing traces that are already tagged are not re-scored.
"""

import hashlib
import importlib
import json
import logging
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable

EVAL_TAG = "eval"
EVAL_COMPLETE = "complete"
QUESTION_TAG = "judgeloop.question_id"
SOURCE_TAG = "judgeloop.source"  # also judgeloop.tracing.traffic.SOURCE_TAG
JUDGE_SOURCES = ("LLM_JUDGE", "CODE")  # sources of the judge's own feedback (never an expert's)

log = logging.getLogger(__name__)


@dataclass
class TaggingReport:
    run_id: str | None = None
    evaluated: int = 0
    tagged: int = 0
    already_tagged: int = 0
    agent_errors: int = 0
    judge_errors: int = 0
    first_errors: list[str] = field(default_factory=list)
    scores: Counter = field(default_factory=Counter)
    tagged_trace_ids: list[str] = field(default_factory=list)


def question_id(inputs: dict) -> str:
    return hashlib.sha256(json.dumps(inputs, sort_keys=True, default=str).encode()).hexdigest()[:16]


def load_agent(spec: str) -> Callable:
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise ValueError(f"JUDGELOOP_AGENT={spec!r} must look like 'package.module:function'")
    try:
        return getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"JUDGELOOP_AGENT={spec!r} cannot be imported: {exc}") from exc


def search_all(experiment_id: str, filter_string: str | None = None, max_results: int = 500) -> list:
    """Every matching trace, following page tokens (search_traces pages at max_results)."""
    from mlflow import MlflowClient

    client, found, token = MlflowClient(), [], None
    while True:
        page = client.search_traces(
            locations=[experiment_id], filter_string=filter_string, max_results=max_results, page_token=token
        )
        found.extend(page)
        token = page.token
        if not token:
            return found


# Ids put into a search filter verbatim; anything else is read on its own (get_trace).
_PLAIN_ID = re.compile(r"^[A-Za-z0-9_.:-]+$")
READ_CHUNK = 100  # ids per search request: keeps the filter string and each response small


def read_many(experiment_id: str, trace_ids) -> dict:
    """``{trace id: trace}`` for the experiment's traces, with spans and every assessment.

    One ``search_traces`` per ``READ_CHUNK`` ids (MLflow then reads them in batches) instead of
    two round trips per trace with ``get_trace``. An id the search does not return (a trace of
    another experiment, a store whose search rejects the filter) is read with ``get_trace``,
    which raises as before for a trace that does not exist.
    """
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    client = MlflowClient()
    wanted = list(dict.fromkeys(trace_ids))
    found: dict = {}
    plain = [tid for tid in wanted if _PLAIN_ID.match(tid)]
    for start in range(0, len(plain), READ_CHUNK):
        chunk = plain[start : start + READ_CHUNK]
        quoted = ", ".join(f"'{tid}'" for tid in chunk)
        try:
            page = search_all(experiment_id, f"trace.request_id IN ({quoted})", max_results=len(chunk))
        except MlflowException as exc:
            log.info("bulk trace read unavailable (%s); reading traces one by one", exc)
            break
        found.update((trace.info.trace_id, trace) for trace in page if trace.info.trace_id in chunk)
    for tid in wanted:
        if tid not in found:
            found[tid] = client.get_trace(tid)
    return {tid: found[tid] for tid in wanted}


def tagged_trace_ids(experiment_id: str) -> list[str]:
    """Complete production traces: what the dataset and the review queue are built from."""
    from judgeloop.tracing.traffic import is_production

    found = search_all(experiment_id, f"tag.{EVAL_TAG} = '{EVAL_COMPLETE}'")
    return [t.info.trace_id for t in found if is_production(t)]


def _root_inputs(trace) -> dict:
    spans = trace.data.spans if trace.data else []
    root = next((s for s in spans if s.parent_id is None), spans[0] if spans else None)
    inputs = root.inputs if root is not None else None
    return inputs if isinstance(inputs, dict) else {"request": inputs}


def _latest_judge_assessment(trace, judge_name: str):
    candidates = [
        a for a in (trace.info.assessments or [])
        if a.name == judge_name and a.source.source_type != "HUMAN" and getattr(a, "feedback", None) is not None
    ]
    return max(candidates, key=lambda a: a.create_time_ms or 0, default=None)


def evaluate_and_tag(
    experiment_id: str,
    judge,
    records: list[dict] | None = None,
    agent: Callable | None = None,
    progress: Callable[[str], None] = log.info,
    judge_version: int | None = None,
    settings=None,
) -> TaggingReport:
    """Score traces with ``judge`` and tag the complete ones.

    With ``agent`` and ``records`` (``{"question": ..., ...}`` dicts, already validated), the
    agent answers each record not answered before. Without an agent, the experiment's
    untagged traces are scored as they are. With ``judge_version`` (the registered version
    ``judge`` is), each score is kept as that version's stored score (see ``judgeloop.judging.scores``).
    With ``settings`` naming request/response fields, the judge reads the question and answer
    picked out of each trace (``judgeloop.tracing.trace_fields``).
    """
    import mlflow
    from mlflow import MlflowClient
    from mlflow.entities import Trace

    report = TaggingReport()
    done = {t.info.trace_id: t for t in search_all(experiment_id, f"tag.{EVAL_TAG} = '{EVAL_COMPLETE}'")}
    report.already_tagged = len(done)
    from judgeloop.tracing.traffic import is_production

    # Untagged production traces: new traffic, or traces a failed or interrupted run scored
    # without getting to tag them. Those scores are kept (adopted), not paid for again.
    untagged = [
        t for t in search_all(experiment_id)
        if t.info.trace_id not in done and t.info.tags.get(EVAL_TAG) is None and is_production(t)
    ]
    recovered = recover_scores(judge.name, untagged, judge_version, report)
    if recovered:
        progress(f"kept {len(recovered)} score(s) an earlier run wrote without tagging their traces")
    answered_now = {question_id(_root_inputs(t)) for t in untagged if t.info.trace_id in recovered}

    if agent is not None:
        answered = {t.info.tags.get(QUESTION_TAG) for t in done.values()} | answered_now
        todo = [r for r in records or [] if question_id(r) not in answered]
        progress(f"{len(todo)} of {len(records or [])} questions need an answer ({len(answered)} already complete)")
        if not todo:
            return report
        result = mlflow.genai.evaluate(data=[{"inputs": r} for r in todo], predict_fn=agent, scorers=[judge])
    else:
        # Only production traffic: the optimizer's own agent runs are traced here too.
        pending = [t for t in untagged if t.info.trace_id not in recovered]
        progress(f"{len(pending)} existing traces to score ({len(done) + len(recovered)} already complete)")
        data = _as_read(settings, pending, report)
        if not data:
            return report
        result = mlflow.genai.evaluate(data=data, scorers=[judge])

    report.run_id = result.run_id
    mlflow.flush_trace_async_logging()
    # evaluate() returns the traces it read back after scoring (with their assessments): use
    # them instead of one get_trace round trip per trace; fetch only what it did not return.
    frame = result.result_df
    returned = dict(zip(frame["trace_id"], frame["trace"])) if "trace" in frame.columns else {}
    trace_ids = [tid for tid in frame["trace_id"].tolist() if tid]
    client = MlflowClient()
    for index, trace_id in enumerate(trace_ids, start=1):
        trace = returned.get(trace_id)
        if isinstance(trace, str):
            trace = Trace.from_json(trace)
        if not hasattr(trace, "info") or _latest_judge_assessment(trace, judge.name) is None:
            trace = client.get_trace(trace_id)
        report.evaluated += 1
        inputs = _root_inputs(trace)
        label = inputs.get("question", trace_id) if isinstance(inputs, dict) else trace_id
        if trace.info.state != "OK":
            report.agent_errors += 1
            _note(report, f"agent failed on {label!r} (trace {trace_id})" + _span_error(trace))
            continue
        assessment = _latest_judge_assessment(trace, judge.name)
        if assessment is None or assessment.error is not None or assessment.value is None:
            report.judge_errors += 1
            message = assessment.error.error_message if assessment is not None and assessment.error else "no score"
            _note(report, f"judge failed on {label!r} (trace {trace_id}): {message}")
            if assessment is not None:  # a failure is not a score: nothing stays behind that no version owns
                _delete(trace_id, assessment)
            continue
        _tag(client, trace_id, inputs, assessment, judge_version, report)
        if index % 25 == 0:
            progress(f"checked {index}/{len(trace_ids)} traces, {report.tagged} tagged")
    progress(
        f"evaluated {report.evaluated}, tagged {report.tagged}, agent errors {report.agent_errors}, "
        f"judge errors {report.judge_errors}"
    )
    return report


def _as_read(settings, pending: list, report: TaggingReport) -> list:
    """What ``evaluate`` scores: the traces themselves, or, with request/response field settings,
    each trace with the question and answer picked out of it (a trace without those fields is
    reported and left untagged)."""
    from judgeloop.tracing import trace_fields

    if settings is None or not trace_fields.configured(settings):
        return pending
    rows = []
    for trace in pending:
        try:
            inputs, outputs = trace_fields.question_and_answer(settings, trace)
        except trace_fields.FieldNotFoundError as exc:
            report.agent_errors += 1
            _note(report, str(exc))
            continue
        rows.append({"trace": trace, "inputs": inputs, "outputs": outputs})
    return rows


def _tag(client, trace_id: str, inputs, assessment, judge_version: int | None, report: TaggingReport) -> None:
    from judgeloop.judging import scores
    from judgeloop.mlflow_internals.sqlite_store import retry_locked

    # The score is marked first: a run stopped between the two leaves a trace whose score a
    # re-run adopts (``recover_scores``), never an unmarked one beside a complete tag.
    if judge_version is not None:
        scores.adopt(trace_id, assessment, judge_version)
    retry_locked(lambda: client.set_trace_tag(trace_id, QUESTION_TAG, question_id(inputs)), f"tag on trace {trace_id}")
    retry_locked(lambda: client.set_trace_tag(trace_id, EVAL_TAG, EVAL_COMPLETE), f"tag on trace {trace_id}")
    report.tagged += 1
    report.tagged_trace_ids.append(trace_id)
    report.scores[str(assessment.value)] += 1


def _delete(trace_id: str, assessment) -> None:
    import mlflow

    try:
        mlflow.delete_assessment(trace_id=trace_id, assessment_id=assessment.assessment_id)
    except Exception as exc:  # best effort: an unmarked failure is ignored by every reader anyway
        log.info("could not delete failed judge feedback %s on %s: %s", assessment.assessment_id, trace_id, exc)


def _own_score(assessment, judge_name: str, judge_version: int | None) -> bool:
    """Judge feedback a tagging run wrote: unmarked (evaluate's own) or marked as this version."""
    from judgeloop.judging.scores import VERSION_KEY

    # evaluate() writes a score as LLM_JUDGE feedback and a failed call as CODE feedback with an error.
    if assessment.name != judge_name or assessment.source.source_type not in JUDGE_SOURCES:
        return False
    if getattr(assessment, "feedback", None) is None or assessment.valid is False:
        return False
    marked = (assessment.metadata or {}).get(VERSION_KEY)
    return marked is None or (judge_version is not None and str(marked) == str(judge_version))


def recover_scores(judge_name: str, untagged: list, judge_version: int | None, report: TaggingReport) -> set[str]:
    """Tag the untagged traces that already carry a score of this judge; drop failed feedback.

    A run that failed or was stopped after ``evaluate`` scored a trace and before it was tagged
    leaves the score behind unmarked. Keeping it (marked as ``judge_version``) is what makes a
    re-run pay only for what is missing and leaves no judge feedback that no version owns.
    Returns the ids of the traces tagged here.
    """
    from mlflow import MlflowClient

    client, recovered = MlflowClient(), set()
    for trace in untagged:
        own = [a for a in trace.info.assessments or [] if _own_score(a, judge_name, judge_version)]
        failed = [a for a in own if a.feedback.error is not None or a.value is None]
        for assessment in failed:
            _delete(trace.info.trace_id, assessment)
        good = [a for a in own if a not in failed]
        if not good or trace.info.state != "OK":
            continue
        first, *extra = sorted(good, key=lambda a: (a.create_time_ms or 0, a.assessment_id))
        for duplicate in extra:  # two interrupted runs scored it twice: one score is the version's
            _delete(trace.info.trace_id, duplicate)
        _tag(client, trace.info.trace_id, _root_inputs(trace), first, judge_version, report)
        recovered.add(trace.info.trace_id)
    return recovered


def orphan_scores(experiment_id: str, judge_name: str) -> int:
    """Judge feedback on the experiment's traces that no judge version owns (should be 0)."""
    from judgeloop.judging.scores import VERSION_KEY

    return sum(
        1
        for trace in search_all(experiment_id)
        for a in trace.info.assessments or []
        if a.name == judge_name and a.source.source_type in JUDGE_SOURCES and a.valid is not False
        and VERSION_KEY not in (a.metadata or {})
    )


def _span_error(trace) -> str:
    for span in trace.data.spans if trace.data else []:
        for event in span.events or []:
            if event.name == "exception":
                return f": {event.attributes.get('exception.message', '')}"
    return ""


def _note(report: TaggingReport, message: str) -> None:
    log.warning(message)
    if len(report.first_errors) < 5:
        report.first_errors.append(message)
