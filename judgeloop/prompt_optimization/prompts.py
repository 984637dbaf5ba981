"""The agent's system prompt in the MLflow prompt registry, with a production alias."""

from dataclasses import dataclass

from judgeloop.settings import Settings


@dataclass(frozen=True)
class PromptState:
    name: str
    version: int
    created: bool
    production_version: int
    template: str


def name(settings: Settings) -> str:
    """The prompt's registry name in this workspace (a Unity Catalog name on Databricks)."""
    from judgeloop.workspace import for_settings

    return for_settings(settings).prompt_name()


def _versions(name: str) -> list:
    from mlflow import MlflowClient

    try:
        versions = MlflowClient().search_prompt_versions(name)
    except Exception:  # no prompt of that name yet
        return []
    return list(getattr(versions, "prompt_versions", versions) or [])


def latest(name: str, source: str | None = None):
    """The newest version, or the newest registered from ``source`` ("settings", "gepa")."""
    items = [v for v in _versions(name) if source is None or (v.tags or {}).get("judgeloop.source") == source]
    return max(items, key=lambda v: int(v.version), default=None)


def versions_after(name: str, version: int) -> list:
    """Versions newer than ``version``, oldest first (read fresh, never from a cache)."""
    return sorted((v for v in _versions(name) if int(v.version) > int(version)), key=lambda v: int(v.version))


def production(settings: Settings):
    import mlflow

    try:
        return mlflow.genai.load_prompt(
            f"prompts:/{name(settings)}@{settings.production_alias}", cache_ttl_seconds=0
        )
    except Exception:
        return None


def ensure_registered(settings: Settings) -> PromptState:
    """Register the configured prompt when its text changed; the first version goes to production."""
    import mlflow

    text = settings.agent_system_prompt.strip()
    if not text:
        raise ValueError("JUDGELOOP_AGENT_SYSTEM_PROMPT is empty: the agent needs a system prompt.")
    # Compared with the newest version from settings, not the newest overall: GEPA's versions
    # differ from the configured text by design and must not trigger a re-registration.
    current = latest(name(settings), source="settings")
    created = current is None or current.template.strip() != text
    if created:
        current = mlflow.genai.register_prompt(
            name=name(settings),
            template=text,
            commit_message="from judgeloop settings (JUDGELOOP_AGENT_SYSTEM_PROMPT)",
            tags={"judgeloop.source": "settings"},
        )
    prod = production(settings)
    if prod is None:
        mlflow.genai.set_prompt_alias(name(settings), settings.production_alias, int(current.version))
        prod = current
    return PromptState(name(settings), int(current.version), created, int(prod.version), prod.template)


def promote(settings: Settings, version: int) -> None:
    import mlflow

    mlflow.genai.set_prompt_alias(name(settings), settings.production_alias, int(version))


def tag_version(name: str, version: int, tags: dict) -> None:
    import mlflow

    for key, value in tags.items():
        mlflow.genai.set_prompt_version_tag(name, int(version), key, str(value))


def version_tags(name: str, version: int) -> dict:
    from mlflow import MlflowClient

    return dict(MlflowClient().get_prompt_version(name, int(version)).tags or {})


def delete_version(name: str, version: int) -> None:
    from mlflow import MlflowClient

    MlflowClient().delete_prompt_version(name, str(version))
