"""A local or self-hosted MLflow store: open-source label schemas and review queues, datasets by id."""

from judgeloop.workspace import LabelingReport, LabelNameCheck, QueueState, Workspace

# Dataset names are not unique on open-source MLflow: the id is remembered on the experiment.
DATASET_TAG = "judgeloop.eval_dataset_id"


class LocalWorkspace(Workspace):
    kind = "local"

    def check_ready(self) -> None:
        return None  # nothing to authenticate; the store is created on first use

    def open_labeling(self, experiment_id: str, trace_ids: list[str], mlflow_ui_url: str) -> LabelingReport:
        from judgeloop.sme_labels import labeling

        return labeling.open_session(self.settings, experiment_id, trace_ids, mlflow_ui_url)

    def review_queue(self, experiment_id: str, mlflow_ui_url: str) -> QueueState | None:
        from judgeloop.sme_labels import labeling

        queue = labeling.find_queue(self.settings, experiment_id)
        if queue is None:
            return None
        items = labeling.queue_items(queue.queue_id)
        statuses = [str(getattr(i.status, "value", i.status)) for i in items]
        return QueueState(
            name=queue.name, queue_id=queue.queue_id, url=labeling.review_url(mlflow_ui_url, experiment_id, queue.queue_id),
            trace_ids=[i.item_id for i in items], complete=statuses.count("complete"), pending=statuses.count("pending"),
        )

    def complete_labelled_items(self, experiment_id: str, current: list | None = None, written=()) -> int:
        from judgeloop.sme_labels import labeling

        # Labels are read from the whole store here: traces outside the queue need not join it.
        return labeling.complete_labelled_items(self.settings, experiment_id, current)

    def refresh_queue(self, experiment_id: str, rerank: bool = False):
        from judgeloop.sme_labels import labeling

        return labeling.refresh_window(self.settings, experiment_id, rerank=rerank)

    def check_label_names(self, experiment_id: str) -> LabelNameCheck:
        from mlflow.genai import label_schemas

        from judgeloop.sme_labels import labeling

        schema = label_schemas.get_label_schema(labeling.schema_name(self.settings), experiment_id=experiment_id)
        expected = labeling.describe_input(labeling.schema_input(self.settings))
        actual = labeling.describe_input(schema.input)
        return LabelNameCheck(
            passed=schema.name == self.settings.judge_name and actual == expected,
            metadata={
                "schema_name": schema.name, "judge_name": self.settings.judge_name,
                "schema_input": actual, "expected_input": expected,
            },
        )

    def dataset(self, experiment_id: str):
        from mlflow.genai import datasets

        from judgeloop.stack.store import get_experiment_tag, set_experiment_tag

        name = f"{self.settings.experiment_name}-eval"
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

    def prompt_name(self) -> str:
        return self.settings.prompt_name

    def changed_since(self, experiment_id: str, cursor, **options):
        from judgeloop.mlflow_internals import label_rows

        return label_rows.changed_since_in_store(self.settings, experiment_id, cursor, **options)
