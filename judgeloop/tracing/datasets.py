"""The persistent evaluation dataset built from the tagged traces."""

from dataclasses import dataclass

@dataclass(frozen=True)
class DatasetReport:
    dataset_id: str
    name: str
    record_count: int
    added: int


def merge_traces(workspace, experiment_id: str, trace_ids: list[str], progress=print, settings=None) -> DatasetReport:
    """Merge the traces into the workspace's evaluation dataset (``judgeloop.workspace``).

    Only traces the dataset holds no record of are read and merged: new traffic joins the
    dataset without re-reading everything it already holds. With ``settings``, each trace is
    merged as the loop reads it (``trace_fields.view``: the question and answer picked out of a
    nested trace).
    """
    from judgeloop.tracing.trace_fields import view
    from judgeloop.tracing.traces import read_many

    dataset = workspace.dataset(experiment_id)
    frame = dataset.to_df()
    before = len(frame)
    held = set(frame["source_id"].dropna()) if "source_id" in frame.columns else set()
    todo = [tid for tid in trace_ids if tid not in held]
    if len(todo) < len(trace_ids):
        progress(f"{len(trace_ids) - len(todo)} of {len(trace_ids)} traces are already in dataset {dataset.name}")
    batch = 100
    for start in range(0, len(todo), batch):
        # One search per batch, not one get_trace round trip per trace (800 traces: 29 s -> a few).
        traces = [view(settings, t) for t in read_many(experiment_id, todo[start : start + batch]).values()]
        dataset.merge_records(traces)
        progress(f"merged {min(start + batch, len(todo))}/{len(todo)} traces into dataset {dataset.name}")
    # Looked up again: a Unity Catalog dataset caches its records on the object it was read as.
    dataset = workspace.dataset(experiment_id)
    after = len(dataset.to_df())
    return DatasetReport(dataset.dataset_id, dataset.name, after, after - before)


def load_records(dataset) -> list[dict]:
    """Records as plain dicts: ``{"inputs", "expectations", "source_id", "record_id"}``."""
    df = dataset.to_df()
    return [
        {
            "record_id": row.get("dataset_record_id"),
            "inputs": row.get("inputs") or {},
            "expectations": row.get("expectations") or {},
            "source_id": row.get("source_id"),
        }
        for row in df.to_dict("records")
    ]


def set_expectations(dataset, expectations_by_question: dict[str, dict]) -> int:
    """Attach expectations to records by their question (records merge on identical inputs)."""
    updates = [
        {"inputs": record["inputs"], "expectations": expectations_by_question[record["inputs"].get("question")]}
        for record in load_records(dataset)
        if record["inputs"].get("question") in expectations_by_question
        and record["expectations"] != expectations_by_question[record["inputs"].get("question")]
    ]
    if updates:
        dataset.merge_records(updates)
    return len(updates)


def load_expectations(path) -> dict[str, dict]:
    """``{question: expectations}`` from JSONL lines ``{"question": ..., "expectations": {...}}``."""
    import json
    from pathlib import Path

    found = {}
    for line_no, line in enumerate(Path(path).read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path} line {line_no}: not valid JSON ({exc.msg})") from exc
        if not isinstance(row.get("question"), str) or not isinstance(row.get("expectations"), dict) or not row["expectations"]:
            raise ValueError(f"{path} line {line_no}: needs a 'question' string and a non-empty 'expectations' object")
        found[row["question"]] = row["expectations"]
    return found
