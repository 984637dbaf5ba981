import dagster as dg
from pydantic import Field, PrivateAttr, create_model

from judgeloop.settings import RUN_CONFIG_FIELDS, Settings, load_settings


class _JudgeloopConfigBase(dg.ConfigurableResource):
    _settings: Settings | None = PrivateAttr(None)

    def settings(self) -> Settings:
        """The run's settings: the deployment's (environment) with this run's overrides, built once."""
        if self._settings is None:
            self._settings = load_settings(**self.model_dump())
        return self._settings

    def connect(self) -> tuple[Settings, str]:
        from judgeloop.store import connect

        settings = self.settings()
        return settings, connect(settings)

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
