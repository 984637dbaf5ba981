"""A GEPA run during an outage registers nothing: the production prompt stays the newest version,
whether the outage hits the reflection model (the fault-injecting OpenAI-compatible server) or
MLflow fails right after ``optimize_prompts`` registered GEPA's unchanged copy of production."""

import mlflow

from judgeloop.prompt_optimization import optimization, prompts
from tests.faulty_provider import FaultyProvider
from tests.support import materialize, metadata
from tests.test_prompt_optimization import aligned_store  # noqa: F401  (fixture)


def test_a_reflection_outage_registers_no_prompt_version(aligned_store, instance, monkeypatch):  # noqa: F811
    settings, _ = aligned_store
    monkeypatch.setenv("JUDGELOOP_LLM_MAX_RETRIES", "0")
    monkeypatch.setenv("JUDGELOOP_LLM_TIMEOUT_SECONDS", "5")
    with FaultyProvider({"reflection": "500"}) as provider:
        for key in ("OPENAI_API_BASE", "OPENAI_BASE_URL"):
            monkeypatch.setenv(key, provider.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-dummy-for-the-fake-server")
        monkeypatch.setenv("JUDGELOOP_REFLECTION_MODEL", "openai:/fake-reflection")
        result = materialize(instance, ["optimized_prompt"])
        reflections = provider.requests["reflection"]
    assert reflections >= 1  # GEPA did reach the provider, and every reflection failed
    meta = metadata(result, "optimized_prompt") if result.success else {}
    versions = [(int(v.version), v.template == prompts.production(settings).template, dict(v.tags or {}))
                for v in prompts._versions(settings.prompt_name)]
    assert [v for v, *_ in versions] == [1], (versions, meta.get("decision"))
    assert int(prompts.production(settings).version) == 1
    assert optimization.KEPT_TAG not in prompts.version_tags(settings.prompt_name, 1)



def test_a_failure_after_gepa_registered_its_copy_leaves_no_version(aligned_store, instance, monkeypatch):  # noqa: F811
    settings, _ = aligned_store
    monkeypatch.setenv("JUDGELOOP_REFLECTION_MODEL", "fake:/unavailable")  # GEPA hands production back
    monkeypatch.setenv("JUDGELOOP_LLM_MAX_RETRIES", "0")

    def tracking_server_fails(self, *args, **kwargs):
        # optimize_prompts links the version it just registered to its run: the server is down by then.
        raise mlflow.exceptions.MlflowException("503 Service Unavailable (injected)")

    monkeypatch.setattr(mlflow.MlflowClient, "link_prompt_version_to_run", tracking_server_fails)
    result = materialize(instance, ["optimized_prompt"])
    monkeypatch.undo()
    assert not result.success  # the failure is reported ...
    assert [int(v.version) for v in prompts._versions(settings.prompt_name)] == [1]  # ... and leaves no copy
    assert int(prompts.production(settings).version) == 1
