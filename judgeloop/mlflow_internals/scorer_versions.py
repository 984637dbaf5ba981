"""A registered scorer's version numbers, read from MLflow's tracking store (its private accessor).

MLflow's public ``list_scorer_versions`` rebuilds every version as a judge object, which imports
the MemAlign optimizer and dspy (about 10 s on a loaded 2-core machine) just to read numbers. The
store's own method returns the records. tests/test_judge_versions_in_mlflow.py pins this to the
public call's answer.
"""


def scorer_version_numbers(experiment_id: str, name: str) -> list[int]:
    """Sorted version numbers of scorer ``name`` in the experiment (MLflow raises when there is none)."""
    from mlflow.tracking._tracking_service.utils import _get_store

    return sorted({v.scorer_version for v in _get_store().list_scorer_versions(experiment_id, name)})
