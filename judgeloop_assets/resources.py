import os

import dagster as dg

from judgeloop.settings import Settings, load_settings


class JudgeloopConfig(dg.ConfigurableResource):
    """Where things run. Unset fields fall back to JUDGELOOP_* environment variables, then defaults.

    Model URIs live here (not API keys: providers read those from their own environment
    variables, so secrets never appear in run config, metadata or logs).
    """

    tracking_uri: str | None = None
    experiment_name: str | None = None
    judge_name: str | None = None
    judge_model: str | None = None
    reflection_model: str | None = None
    embedding_model: str | None = None
    agent_model: str | None = None
    agent: str | None = None
    questions_path: str | None = None
    label_threshold: int | None = None
    gate_margin: float | None = None
    mlflow_ui_url: str | None = None

    def settings(self) -> Settings:
        fields = self.model_dump(exclude={"mlflow_ui_url"})
        return load_settings(**fields)

    def connect(self) -> tuple[Settings, str]:
        from judgeloop.store import connect

        settings = self.settings()
        return settings, connect(settings)

    def ui_url(self, settings: Settings) -> str:
        if self.mlflow_ui_url or os.environ.get("JUDGELOOP_MLFLOW_UI_URL"):
            return (self.mlflow_ui_url or os.environ["JUDGELOOP_MLFLOW_UI_URL"]).rstrip("/")
        uri = settings.resolved_tracking_uri
        return uri.rstrip("/") if uri.startswith("http") else "http://127.0.0.1:5000"
