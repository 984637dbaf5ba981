"""The persistent evaluation dataset built from the tagged traces."""

from dataclasses import dataclass

DATASET_TAG = "judgeloop.eval_dataset_id"


@dataclass(frozen=True)
class DatasetReport:
    dataset_id: str
    name: str
    record_count: int
    added: int


def get_or_create(experiment_id: str, name: str):
    """The experiment's dataset called ``name``, created once.

    Dataset names are not unique on open-source MLflow (a second create makes a second
    dataset), so the id is remembered on the experiment and looked up before creating.
    """
    from mlflow.genai import datasets

    from judgeloop.store import get_experiment_tag, set_experiment_tag

    known = get_experiment_tag(experiment_id, DATASET_TAG)
    if known:
        try:
            return datasets.get_dataset(dataset_id=known)
        except Exception:  # deleted by hand: fall through and recreate
            pass
    found = datasets.search_datasets(experiment_ids=[experiment_id], filter_string=f"name = '{name}'", max_results=10)
    dataset = found[0] if found else datasets.create_dataset(name=name, experiment_id=[experiment_id])
    set_experiment_tag(experiment_id, DATASET_TAG, dataset.dataset_id)
    return dataset


def merge_traces(experiment_id: str, name: str, trace_ids: list[str], progress=print) -> DatasetReport:
    from mlflow import MlflowClient

    dataset = get_or_create(experiment_id, name)
    before = len(dataset.to_df())
    client = MlflowClient()
    batch = 100
    for start in range(0, len(trace_ids), batch):
        traces = [client.get_trace(tid) for tid in trace_ids[start : start + batch]]
        dataset.merge_records(traces)
        progress(f"merged {min(start + batch, len(trace_ids))}/{len(trace_ids)} traces into dataset {dataset.dataset_id}")
    after = len(dataset.to_df())
    return DatasetReport(dataset.dataset_id, dataset.name, after, after - before)


def load_records(dataset_id: str) -> list[dict]:
    """Records as plain dicts: ``{"inputs", "expectations", "source_id", "record_id"}``."""
    from mlflow.genai import datasets

    df = datasets.get_dataset(dataset_id=dataset_id).to_df()
    return [
        {
            "record_id": row.get("dataset_record_id"),
            "inputs": row.get("inputs") or {},
            "expectations": row.get("expectations") or {},
            "source_id": row.get("source_id"),
        }
        for row in df.to_dict("records")
    ]


def set_expectations(dataset_id: str, expectations_by_question: dict[str, dict]) -> int:
    """Attach expectations to records by their question (records merge on identical inputs)."""
    from mlflow.genai import datasets

    dataset = datasets.get_dataset(dataset_id=dataset_id)
    updates = [
        {"inputs": record["inputs"], "expectations": expectations_by_question[record["inputs"].get("question")]}
        for record in load_records(dataset_id)
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
