"""Unity Catalog evaluation datasets as MLflow calls them (``mlflow/genai/datasets/__init__.py``:
``create_dataset(name, experiment_ids)``, ``get_dataset(name)``, ``delete_dataset(name)``; the
object's use in ``mlflow/genai/datasets/evaluation_dataset.py``), kept as one JSON file per table
in ``FAKE_DATABRICKS_UC_DIR`` so every process of a test sees the same tables.
"""

import json
import os
import uuid
from pathlib import Path


def _root() -> Path:
    root = Path(os.environ["FAKE_DATABRICKS_UC_DIR"])
    root.mkdir(parents=True, exist_ok=True)
    return root


def _path(name: str) -> Path:
    return _root() / f"{name}.json"


class UCDataset:
    def __init__(self, name: str):
        self.name = name
        data = json.loads(_path(name).read_text())
        self.dataset_id = data["dataset_id"]
        self.experiment_ids = data["experiment_ids"]
        self._records = data["records"]
        self.digest = None
        self.source_type = "databricks-uc-table"
        self.create_time = data["create_time"]
        self.schema = None
        self.profile = None
        self.version = None

    def _save(self) -> None:
        _path(self.name).write_text(json.dumps({
            "dataset_id": self.dataset_id, "experiment_ids": self.experiment_ids,
            "create_time": self.create_time, "records": self._records,
        }))

    def merge_records(self, records) -> "UCDataset":
        by_inputs = {json.dumps(r["inputs"], sort_keys=True): r for r in self._records}
        for record in records:
            row = _as_record(record)
            key = json.dumps(row["inputs"], sort_keys=True)
            if key in by_inputs:  # records merge on identical inputs
                existing = by_inputs[key]
                existing["expectations"] = {**(existing.get("expectations") or {}), **(row.get("expectations") or {})}
                if row.get("outputs") is not None:
                    existing["outputs"] = row["outputs"]
            else:
                row["dataset_record_id"] = f"dr-{uuid.uuid4().hex[:16]}"
                self._records.append(row)
                by_inputs[key] = row
        self._save()
        return UCDataset(self.name)

    def to_df(self):
        import pandas as pd

        columns = ["dataset_record_id", "inputs", "outputs", "expectations", "source_id"]
        return pd.DataFrame([{c: r.get(c) for c in columns} for r in self._records], columns=columns)

    def set_profile(self, profile):
        return self

    def list_versions(self):
        return []


def _as_record(record) -> dict:
    from mlflow.entities import Trace

    if isinstance(record, Trace):
        root = next(s for s in record.data.spans if s.parent_id is None)
        expectations = {
            a.name: a.expectation.value for a in record.info.assessments or [] if getattr(a, "expectation", None)
        }
        return {"inputs": root.inputs or {}, "outputs": root.outputs, "expectations": expectations,
                "source_id": record.info.trace_id}
    return {"inputs": record.get("inputs") or {}, "outputs": record.get("outputs"),
            "expectations": record.get("expectations") or {}, "source_id": record.get("source_id")}


def create_dataset(name: str, experiment_ids=None):
    if _path(name).exists():
        raise ValueError(f"Table {name} already exists")
    _path(name).write_text(json.dumps({
        "dataset_id": uuid.uuid4().hex, "experiment_ids": list(experiment_ids or []),
        "create_time": None, "records": [],
    }))
    return UCDataset(name)


def get_dataset(name: str, version=None):
    if not _path(name).exists():
        raise ValueError(f"Table {name} does not exist")
    return UCDataset(name)


def delete_dataset(name: str):
    _path(name).unlink(missing_ok=True)
