"""What differs between a local (or self-hosted) MLflow and a Databricks workspace, behind one interface.

The assets, the sensor and the commands call a ``Workspace`` and never ask which kind it is:
- where SMEs label (label schema + review queue, and the URL to send them to), the queue's
  progress, completing the items of labels written outside the review form, and the check
  that the labels which actually arrive are named like the judge;
- the evaluation dataset (looked up by id on open-source MLflow, by Unity Catalog name on
  Databricks);
- the prompt's registry name;
- reading new SME labels incrementally (MLflow's assessments table locally, the review
  queue's items on Databricks).

``for_settings`` picks the implementation from the tracking URI, once per Settings object
(``judgeloop_assets.resources`` hands a run's or a tick's one object to its assets and sensors);
``check_ready`` raises a clear error naming the setting to fix before anything is written.
"""

from abc import ABC, abstractmethod
from dataclasses import dataclass, field

from judgeloop.settings import Settings, is_databricks


class WorkspaceNotReadyError(RuntimeError):
    """A setting, credential or package the workspace needs is missing; the message names it."""


@dataclass(frozen=True)
class LabelingReport:
    schema_id: str
    schema_name: str
    queue_id: str
    queue_name: str
    url: str
    items_added: int
    pending: int
    complete: int
    reviewers: list[str]
    order_rule: str = ""  # the order items join the queue in (``queue_ranking.rule_text``)
    window: int = 0  # pending items shown at a time; 0 = every trace


@dataclass(frozen=True)
class QueueState:
    """Where the judge's review queue stands (``judgeloop status``)."""

    name: str
    queue_id: str
    url: str
    trace_ids: list[str]
    complete: int
    pending: int


@dataclass(frozen=True)
class LabelNameCheck:
    """Whether the labels SMEs give are named like the judge (MemAlign ignores any other name)."""

    passed: bool
    metadata: dict = field(default_factory=dict)


class Workspace(ABC):
    kind: str

    def __init__(self, settings: Settings):
        self.settings = settings

    @abstractmethod
    def check_ready(self) -> None:
        """Raise ``WorkspaceNotReadyError`` naming what to set; called before the first write."""

    # Where SMEs label -------------------------------------------------------------------
    @abstractmethod
    def open_labeling(self, experiment_id: str, trace_ids: list[str], mlflow_ui_url: str) -> LabelingReport:
        """Label schema named like the judge + review queue holding every given trace once."""

    @abstractmethod
    def check_label_names(self, experiment_id: str) -> LabelNameCheck:
        """Whether the schema, and the labels that arrived so far, carry the judge's name."""

    @abstractmethod
    def review_queue(self, experiment_id: str, mlflow_ui_url: str) -> QueueState | None:
        """The judge's review queue and its items, or None before ``open_labeling`` created it."""

    @abstractmethod
    def complete_labelled_items(self, experiment_id: str, current: list | None = None, written=()) -> int:
        """Mark pending queue items complete when their trace has a label that counts (labels written
        outside the review form: a label file, the demo's ratings); returns how many were completed.
        ``written``: the traces just labelled, which join the queue first where labels are read from
        the queue's traces only (Databricks)."""

    def refresh_queue(self, experiment_id: str, rerank: bool = False):
        """Top the review queue's pending window up in the queue's order (re-ranked with ``rerank``,
        after a newly promoted judge). Where the queue holds every trace, nothing to do."""
        return None

    # Evaluation dataset -----------------------------------------------------------------
    @abstractmethod
    def dataset(self, experiment_id: str):
        """The experiment's evaluation dataset (an ``EvaluationDataset``), created once."""

    # Prompt registry --------------------------------------------------------------------
    @abstractmethod
    def prompt_name(self) -> str:
        """The agent prompt's name in this workspace's prompt registry."""

    # SME labels -------------------------------------------------------------------------
    @abstractmethod
    def changed_since(self, experiment_id: str, cursor):
        """``labels.LabelBatch`` of SME labels created, edited or restored after ``cursor``."""


def for_settings(settings: Settings) -> Workspace:
    """The workspace ``settings`` point at, built once per Settings object (one per command, sensor
    tick or run) and handed to every caller: its clients, engine and caches are then shared, not
    re-derived per call."""
    return settings.workspace_built_once(_build)


def _build(settings: Settings) -> Workspace:
    if is_databricks(settings):
        from judgeloop.workspace.databricks import DatabricksWorkspace

        return DatabricksWorkspace(settings)
    from judgeloop.workspace.local import LocalWorkspace

    return LocalWorkspace(settings)
