"""What the loop reads of a trace: its root span's inputs (the question) and outputs (the answer).

By default both are taken as they are: an ``@mlflow.trace`` function ``answer(question)`` has
inputs ``{"question": ...}`` and its return value as outputs, which is what the judge sees, what
a dataset record holds and what GEPA passes back to the agent (``agent(question=...)``).

Autologged traces nest them: an OpenAI chat completion's root span has inputs
``{"messages": [...], "model": ..., ...}`` and a ``ChatCompletion`` as outputs. Two settings pick
the text out (dotted paths; a number indexes a list, negative from the end; several paths separated
by commas are tried in order, for an experiment holding traffic of several shapes):

- ``JUDGELOOP_REQUEST_FIELD``, e.g. ``messages.-1.content`` (the last message: the user's turn);
- ``JUDGELOOP_RESPONSE_FIELD``, e.g. ``choices.0.message.content``.

With them, every consumer sees the same view of the trace: inputs ``{"question": <request field>}``
and outputs ``<response field>``: the base judge in ``tagged_traces``, the dataset's records, the
traces MemAlign learns from and remembers, and every later judge call. The stored trace is never
changed; the view is an in-memory copy.
"""

import copy
import json

from judgeloop.settings import Settings

VIEW_MARK = "judgeloop.view"  # on a view's in-memory info only: a view is never viewed twice


class FieldNotFoundError(ValueError):
    """A configured field path does not exist in a trace's root span."""


def lookup(value, path: str, what: str):
    """``value`` followed along the dotted ``path``; raise naming the first step that is missing."""
    current = value
    for step in path.split("."):
        if isinstance(current, list):
            try:
                current = current[int(step)]
                continue
            except (ValueError, IndexError):
                raise FieldNotFoundError(f"{what} has no item {step!r} (path {path!r})") from None
        if isinstance(current, dict) and step in current:
            current = current[step]
            continue
        found = f"keys {sorted(current)[:8]}" if isinstance(current, dict) else type(current).__name__
        raise FieldNotFoundError(f"{what} has no field {step!r} (path {path!r}; found {found})")
    return current


def pick(value, paths: str, what: str):
    """The first of the comma-separated ``paths`` that ``value`` has (traffic of several shapes in
    one experiment: ``messages.-1.content,question`` reads autologged chat and imported traces)."""
    errors = []
    for path in [p.strip() for p in paths.split(",") if p.strip()]:
        try:
            return lookup(value, path, what)
        except FieldNotFoundError as exc:
            errors.append(str(exc))
    raise FieldNotFoundError(errors[0] if len(errors) == 1 else f"{what} has none of the paths {paths!r}")


def configured(settings: Settings) -> bool:
    return bool(settings.request_field or settings.response_field)


def _root(trace):
    spans = trace.data.spans if trace.data else []
    return next((s for s in spans if s.parent_id is None), spans[0] if spans else None)


def question_and_answer(settings: Settings, trace) -> tuple[object, object]:
    """(inputs, outputs) as the loop reads them from ``trace`` (see the module docstring)."""
    root = _root(trace)
    inputs = root.inputs if root is not None else None
    outputs = root.outputs if root is not None else None
    where = f"trace {trace.info.trace_id}"
    if settings.request_field:
        inputs = {"question": pick(inputs, settings.request_field, f"{where}: the root span's inputs (JUDGELOOP_REQUEST_FIELD)")}
    if settings.response_field:
        outputs = pick(outputs, settings.response_field, f"{where}: the root span's outputs (JUDGELOOP_RESPONSE_FIELD)")
    return inputs, outputs


def view(settings: Settings | None, trace):
    """``trace`` as the loop reads it: unchanged without field settings, else an in-memory copy
    whose root span carries the picked question and answer."""
    if settings is None or not configured(settings) or (trace.info.tags or {}).get(VIEW_MARK):
        return trace
    from mlflow.entities import Span, Trace, TraceInfo
    from mlflow.entities.trace_data import TraceData

    inputs, outputs = question_and_answer(settings, trace)
    root = _root(trace)
    data = copy.deepcopy(root.to_dict())  # to_dict shares the span's own attribute dict
    data["attributes"]["mlflow.spanInputs"] = json.dumps(inputs, default=str)
    data["attributes"]["mlflow.spanOutputs"] = json.dumps(outputs, default=str)
    spans = [Span.from_dict(data) if span is root else span for span in trace.data.spans]
    info = TraceInfo.from_dict(trace.info.to_dict())
    info.tags = {**(info.tags or {}), VIEW_MARK: "1"}
    info.assessments = list(trace.info.assessments or [])
    return Trace(info=info, data=TraceData(spans=spans))
