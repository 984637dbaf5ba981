"""The one place that decides where judgeloop runs: stores, model URIs, thresholds.

Every value comes from an environment variable prefixed ``JUDGELOOP_``, with local defaults
that keep all state in one git-ignored folder. A Dagster run may override only the fields in
``RUN_CONFIG_FIELDS`` (see ``judgeloop_assets.resources``): where the store is, its credentials
and the gate's thresholds belong to the deployment, not to whoever can launch a run. Secrets (provider API keys) are never settings: providers
read them from their own environment variables, so they never reach metadata or logs.
"""

from enum import Enum
from pathlib import Path

from pydantic import Field, PrivateAttr, field_validator, model_validator
from typing import Annotated, Literal

from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


def _default_home() -> Path:
    # A checkout keeps its state next to workspace.yaml; an installed package uses ~/.judgeloop.
    repo_root = Path(__file__).resolve().parent.parent
    if (repo_root / "workspace.yaml").exists():
        return repo_root / ".judgeloop"
    return Path.home() / ".judgeloop"


class FeedbackType(str, Enum):
    LIKERT = "likert"
    PASS_FAIL = "pass_fail"
    CATEGORICAL = "categorical"


DEFAULT_INSTRUCTIONS = (
    "You review answers that a support assistant gave to user questions. "
    "Read the user's question in {{ inputs }} and the assistant's answer in {{ outputs }}. "
    "Rate how well the answer addresses the question: is it on topic, correct, complete "
    "and directly useful to the person who asked?"
)

# A workspace's built-in embedding endpoint: without it MemAlign would default to an external provider.
DATABRICKS_EMBEDDING_MODEL = "databricks:/databricks-gte-large-en"

DEFAULT_AGENT_PROMPT = (
    "You are a support assistant. Answer the user's question using the retrieved passage."
)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="JUDGELOOP_", extra="ignore")
    # Read once per Settings object (one per command, sensor tick or run): each read probes a process.
    _running_stack: dict | None = PrivateAttr(None)
    # The workspace these settings point at, built once (``judgeloop.workspace.for_settings``).
    _workspace: object = PrivateAttr(None)

    home: Path = Field(default_factory=_default_home, description="State folder (MLflow store, DAGSTER_HOME).")
    tracking_uri: str | None = Field(None, description="MLflow tracking URI; default: sqlite under home.")
    backend_store_uri: str | None = Field(
        None, description="SQL database behind an http tracking server, read by the label sensor."
    )
    database_url: str | None = Field(
        None,
        description="SQL database (e.g. postgresql://...) for MLflow's backend store and Dagster's storage; "
        "default: sqlite files under home.",
    )
    artifacts_destination: str | None = Field(
        None,
        description="Where `judgeloop up`'s MLflow server stores artifacts, e.g. s3://bucket/judgeloop "
        "(S3-compatible stores: MLFLOW_S3_ENDPOINT_URL); default: a folder under home.",
    )
    dagster_url: str | None = Field(None, description="Dagster webserver used by `judgeloop labels notify`.")
    mlflow_ui_url: str | None = Field(None, description="MLflow UI base URL for links; default: the tracking server.")
    experiment_name: str = "judgeloop"

    judges_file: Path | None = Field(
        None,
        description="TOML or YAML file listing several judges (one per quality dimension); unset: the one judge "
        "the judge_* settings describe (judgeloop.judging.judge_specs).",
    )
    judge_name: str = "answer_quality"
    judge_instructions: str = DEFAULT_INSTRUCTIONS
    feedback_type: FeedbackType = FeedbackType.LIKERT
    scale_min: int = 1
    scale_max: int = 4
    categories: Annotated[list[str], NoDecode] = Field(default_factory=lambda: ["Bad", "Could be Improved", "Acceptable", "Excellent"])

    judge_model: str | None = Field(None, description="MLflow model URI of the judge, e.g. openai:/gpt-4.1-mini")
    reflection_model: str | None = Field(None, description="Model URI MemAlign and GEPA reflect with.")
    embedding_model: str | None = Field(None, description="Embedding model URI for MemAlign's memory.")
    agent_model: str | None = Field(None, description="Model URI of the demo agent.")

    agent: str | None = Field(None, description="Agent callable 'module:function'; unset = evaluate existing traces.")
    questions_path: Path | None = Field(None, description="Questions (JSONL/JSON/txt) the agent answers.")
    request_field: str | None = Field(
        None, description="Dotted path to the question in a trace's root span inputs, e.g. messages.-1.content."
    )
    response_field: str | None = Field(
        None, description="Dotted path to the answer in a trace's root span outputs, e.g. choices.0.message.content."
    )
    feedbackqa_path: Path | None = Field(
        None, description="Folder of FeedbackQA <domain>/feedback_valid.json; default: the sample shipped in the package."
    )
    demo_domain: str = "WHO"
    demo_items: int = 40

    reviewers: Annotated[list[str], NoDecode] = Field(default_factory=list, description="SMEs assigned to the review queue.")
    queue_order: Literal["active", "insertion"] = Field(
        "active",
        description="Review queue order: active (held-out traces at random, alignment traces where the judge "
        "is likely wrong, one per question per round) or insertion (as tagged).",
    )
    queue_window: int = Field(
        20, ge=0, description="Pending items the review queue shows at a time (topped up and re-ranked); 0 = every trace."
    )

    heldout_fraction: float = 0.34
    min_alignment_labels: int = 4
    min_heldout_labels: int = 3
    gate_margin: float = Field(
        0.0, ge=0, description="Tolerance: how much lower a new judge's held-out kappa may measure than the judge in use's and still replace it."
    )
    heldout_max: int = Field(200, ge=1, description="Most held-out traces a judge is measured on (a stable, stratified sample).")
    min_scored_heldout: int = Field(
        3, ge=1, description="Fewer scored held-out traces than this for either judge fails the gate (never promotes)."
    )
    interval_min_traces: int = Field(
        10, ge=2, description="Held-out traces both judges scored needed for bootstrap intervals; below, the numbers carry none."
    )
    bootstrap_resamples: int = Field(2000, ge=0, description="Bootstrap resamples per interval.")
    live_agreement_window: int = Field(50, ge=1, description="Newest SME labels the rolling live agreement is measured on.")
    live_agreement_threshold: float = Field(
        0.3, description="Rolling live kappa below which the live_agreement check warns (non-blocking)."
    )
    live_agreement_min_labels: int = Field(10, ge=1, description="Rolling labels needed before the live check can warn.")
    label_threshold: int = 5
    # An idle tick is one index probe of MLflow's assessments table (bench/sensor_tick.py), so
    # polling every 5 s costs little and keeps label-to-promotion latency low (bench/latency.py).
    sensor_interval_seconds: int = 5
    traffic_interval_seconds: int = Field(
        60, ge=1, description="How often new_traffic_sensor looks for production traces logged since the foundation."
    )

    # Limits on model calls and runs: a provider that rate-limits or never answers must fail a
    # run with a message, not hold the only run slot for ever.
    llm_timeout_seconds: float = Field(60.0, gt=0, description="Seconds one LLM request may take before it is abandoned.")
    llm_max_retries: int = Field(2, ge=0, le=10, description="Retries of a failed LLM request (back-off 1 s, 2 s, 4 s...).")
    max_run_seconds: int = Field(3600, gt=0, description="Longest a Dagster run may take (tag dagster/max_runtime).")

    prompt_name: str = "judgeloop-agent-system-prompt"
    agent_system_prompt: str = DEFAULT_AGENT_PROMPT
    production_alias: str = "production"
    gepa_max_metric_calls: int = 60
    prompt_promotion_margin: float = 0.0
    # True: traffic keeps arriving without reference answers; optimization uses the records that
    # have them (and waits while too few do). False fails optimized_prompt naming each record.
    skip_records_without_expectations: bool = True
    expectations_path: Path | None = Field(
        None, description="JSONL of {question, expectations} attached to eval_dataset records (GEPA needs them)."
    )

    # Databricks mode (JUDGELOOP_TRACKING_URI=databricks): where Unity Catalog keeps the dataset and prompt.
    uc_schema: str | None = Field(None, description="Unity Catalog schema 'catalog.schema' for the dataset and prompt.")
    dataset_table: str | None = Field(None, description="Evaluation dataset table 'catalog.schema.table' (Databricks).")
    label_reconcile_ticks: int = Field(
        20, description="Databricks: every N label reads re-read all the review queue's traces (catches late edits)."
    )

    @field_validator("reviewers", "categories", mode="before")
    @classmethod
    def _split_csv(cls, value):
        # Environment variables carry lists as "a,b,c"; JSON lists also work.
        if isinstance(value, str) and not value.strip().startswith("["):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("tracking_uri", "backend_store_uri", "database_url")
    @classmethod
    def _with_driver(cls, value):
        # A pasted postgresql:// URL would pick a driver that is not installed (see database_url).
        from judgeloop.stack.database_url import for_sqlalchemy

        return for_sqlalchemy(value) if value else value

    @model_validator(mode="after")
    def _check_ranges(self):
        if self.scale_min >= self.scale_max:
            raise ValueError(f"scale_min ({self.scale_min}) must be below scale_max ({self.scale_max})")
        if not 0 < self.heldout_fraction < 1:
            raise ValueError(f"heldout_fraction must be between 0 and 1, got {self.heldout_fraction}")
        if self.feedback_type == FeedbackType.CATEGORICAL and len(self.categories) < 2:
            raise ValueError("categorical feedback needs at least two categories (JUDGELOOP_CATEGORIES)")
        return self

    @model_validator(mode="after")
    def _databricks_embeddings(self):
        if self.embedding_model is None and (self.tracking_uri or "").startswith("databricks"):
            self.embedding_model = DATABRICKS_EMBEDDING_MODEL
        return self

    def model_copy(self, *, update=None, deep: bool = False) -> "Settings":
        # A copy points somewhere else (``judgeloop up`` hands its own URLs on): it reads the state
        # file and builds its workspace itself, never sharing the original's.
        copy = super().model_copy(update=update, deep=deep)
        copy._forget_what_was_read()
        return copy

    def _forget_what_was_read(self) -> None:
        self._running_stack, self._workspace = None, None

    def workspace_built_once(self, build):
        """The workspace for these settings: ``build(self)`` the first time, the same object after."""
        if self._workspace is None:
            self._workspace = build(self)
        return self._workspace

    @property
    def resolved_home(self) -> Path:
        return self.home.expanduser().resolve()

    @property
    def running_stack(self) -> dict:
        """What a live ``judgeloop up`` on this state folder announced (empty when none runs).

        While it runs, commands in other shells go through its MLflow server instead of
        writing the sqlite file beside it (several writers on one sqlite file lock it).
        """
        from judgeloop.stack import running_stack

        if self._running_stack is None:
            # A file it cannot read is refused, never skipped.
            self._running_stack = running_stack.read_state(self.resolved_home)
        return self._running_stack

    @property
    def resolved_tracking_uri(self) -> str:
        if self.tracking_uri:
            return self.tracking_uri
        return (
            self.running_stack.get("tracking_uri") or self.database_url or f"sqlite:///{self.resolved_home / 'mlflow.db'}"
        )

    @property
    def resolved_backend_store_uri(self) -> str | None:
        return self.backend_store_uri or self.database_url or self.running_stack.get("backend_store_uri")

    @property
    def resolved_dagster_url(self) -> str:
        return self.dagster_url or self.running_stack.get("dagster_url") or "http://127.0.0.1:3000"

    @property
    def resolved_mlflow_ui_url(self) -> str:
        if self.mlflow_ui_url:
            return self.mlflow_ui_url.rstrip("/")
        uri = self.resolved_tracking_uri
        return uri.rstrip("/") if uri.startswith("http") else "http://127.0.0.1:5000"

    @property
    def artifact_location(self) -> str:
        return (self.resolved_home / "mlartifacts").as_uri()

    @property
    def dagster_home(self) -> Path:
        return self.resolved_home / "dagster"


# What a Dagster run's config may set (judgeloop_assets.resources.JudgeloopConfig): which
# experiment, judge and models a run uses. Never the store, credentials or gate thresholds.
RUN_CONFIG_FIELDS = ("experiment_name", "judge_name", "judge_model", "reflection_model", "embedding_model", "agent_model")


def load_settings(**overrides) -> Settings:
    """Settings from the environment, with explicit overrides (None means "not overridden").

    A judges file (``judges_file``) of one judge sets the judge (its name, rubric, scale, model,
    threshold and margin win over the JUDGELOOP_JUDGE_* settings); a file of several is refused
    by name, since the graph aligns one judge per deployment (``judgeloop judges`` lists them).
    """
    settings = settings_without_judges_file(**overrides)
    if settings.judges_file is None:
        return settings
    from judgeloop.judging import judge_specs

    specs = judge_specs.parse(settings.judges_file)
    if len(specs) > 1:
        raise judge_specs.JudgesFileError(
            f"judges file {settings.judges_file}: lists {len(specs)} judges ({', '.join(s.name for s in specs)}); "
            "the graph aligns one judge per deployment: keep one judge in the file, or run one deployment "
            "(experiment) per judge"
        )
    return judge_specs.settings_for(settings, specs[0])


def settings_without_judges_file(**overrides) -> Settings:
    """Settings as the environment gives them, the judges file not applied (``judgeloop judges`` reads it whole)."""
    return Settings(**{k: v for k, v in overrides.items() if v is not None})


def is_databricks(settings: Settings) -> bool:
    uri = settings.resolved_tracking_uri
    return uri == "databricks" or uri.startswith("databricks")

