import dagster as dg
from pydantic import Field, PrivateAttr, create_model

from judgeloop.run_names import RESOURCE_KEY
from judgeloop.settings import RUN_CONFIG_FIELDS, Settings, load_settings


class LaunchRefusedError(RuntimeError):
    """A launch's run config asked for something a launch may not have; refused before any asset runs."""


def env_sourced_fields(run_config: dict | None) -> list[str]:
    """Fields of this resource a launch's run config sets as ``{env: NAME}``.

    Dagster resolves ``{env: NAME}`` for every ``str`` field in the worker's environment, which
    holds MLflow's and the providers' credentials: a launch (the GraphQL API needs no login)
    could read any of them into a model URI or an experiment name, and from there into errors,
    metadata and logs. The values a launch may choose are typed in, never read from there.
    """
    config = ((run_config or {}).get("resources", {}).get(RESOURCE_KEY) or {}).get("config") or {}
    return sorted(name for name, value in config.items() if isinstance(value, dict) and "env" in value)


MAX_RUNTIME_TAG = "dagster/max_runtime"


def refuse_a_raised_time_limit(tags: dict, max_run_seconds: int) -> None:
    """A launch may shorten its run's time limit (tag ``dagster/max_runtime``), never lengthen or drop it:
    run monitoring would otherwise let a run tagged 999999999 hold the run slot for ever."""
    given = tags.get(MAX_RUNTIME_TAG)
    if given is None:
        return
    try:
        seconds = float(given)
    except ValueError:
        seconds = float("inf")
    if not 0 < seconds <= max_run_seconds:
        raise LaunchRefusedError(
            f"Run refused: its tag {MAX_RUNTIME_TAG}={str(given)[:40]!r} exceeds the deployment's limit of "
            f"{max_run_seconds} s (JUDGELOOP_MAX_RUN_SECONDS); a launch may only set a shorter one."
        )


class _JudgeloopConfigBase(dg.ConfigurableResource):
    _settings: Settings | None = PrivateAttr(None)
    _experiment_id: str | None = PrivateAttr(None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        # Before any asset runs, so the resolved values are never used, shown or stored.
        run = getattr(context, "dagster_run", None)
        fields = env_sourced_fields(run.run_config if run is not None else None)
        if fields:
            raise LaunchRefusedError(
                f"Run config of resource {RESOURCE_KEY!r} refused: {', '.join(fields)} read from an environment "
                "variable ({env: ...}). A launch may give these values only as text; otherwise the deployment's "
                "JUDGELOOP_* environment variables set them."
            )
        if run is not None and MAX_RUNTIME_TAG in (run.tags or {}):
            refuse_a_raised_time_limit(run.tags, self.settings().max_run_seconds)
        from judgeloop.model_calls.providers import MODEL_URI

        not_uris = [name for name in RUN_CONFIG_FIELDS if name.endswith("_model") and getattr(self, name)
                    and not MODEL_URI.fullmatch(getattr(self, name))]
        if not_uris:
            # The value is not repeated: whatever was typed there may be a credential.
            raise LaunchRefusedError(
                f"Run config of resource {RESOURCE_KEY!r} refused: {', '.join(not_uris)} is not an MLflow model URI "
                "of the form provider:/model, e.g. openai:/gpt-4.1-mini (the value is not shown)."
            )

    def settings(self) -> Settings:
        """The run's settings: the deployment's (environment) with this run's overrides, built once."""
        if self._settings is None:
            self._settings = load_settings(**self.model_dump())
        return self._settings

    def connect(self) -> tuple[Settings, str]:
        """Settings and experiment id; the store is set up once per run, not once per step."""
        from judgeloop.stack.store import connect

        settings = self.settings()
        if self._experiment_id is None:
            self._experiment_id = connect(settings)
        return settings, self._experiment_id

    def workspace(self):
        """The run's one workspace (local MLflow or Databricks), built with its settings and shared by
        its steps and the core functions they call (``judgeloop.workspace.for_settings``)."""
        from judgeloop.workspace import for_settings

        return for_settings(self.settings())

    def ui_url(self, settings: Settings) -> str:
        return settings.resolved_mlflow_ui_url


# Only the fields in RUN_CONFIG_FIELDS are run config; each takes its type and description from
# Settings, so the two cannot drift. Anything else in a launch's run config (tracking_uri,
# gate_margin, ...) is refused by Dagster's config validation before the run starts.
JudgeloopConfig = create_model(
    "JudgeloopConfig",
    __base__=_JudgeloopConfigBase,
    __doc__=(
        "What a run may choose: the experiment, the judge and the model URIs. Unset fields fall back to "
        "JUDGELOOP_* environment variables, then defaults. Where the store is, its credentials and the "
        "gate's thresholds are deployment settings (environment only): anyone who can launch a run in "
        "Dagster's UI could otherwise send MLflow's credentials to their own host or switch the gate off."
    ),
    __module__=__name__,
    **{
        name: (Settings.model_fields[name].annotation | None, Field(None, description=Settings.model_fields[name].description))
        for name in RUN_CONFIG_FIELDS
    },
)
