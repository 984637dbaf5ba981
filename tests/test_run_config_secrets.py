"""A launch cannot read the deployment's credentials through the run config it may set.

Dagster resolves ``{env: NAME}`` in run config from the worker's environment, which holds
MLflow's password and the providers' keys; anyone who reaches Dagster's GraphQL API can launch
a run. Neither such a source nor a secret-like literal typed into a model field may come back
in an error, an event log (``logsForRun``) or anything the run writes."""

import pytest

from judgeloop.settings import RUN_CONFIG_FIELDS
from judgeloop_assets.definitions import defs
from judgeloop.run_names import FOUNDATION_JOB, REALIGN_JOB

SECRET = "hKIzQ7vPwS3cretAdm1nPassw0rd"
MODEL_FIELDS = [name for name in RUN_CONFIG_FIELDS if name.endswith("_model")]
# What a mistaken or hostile launch may type into a model field: a password, a provider key, a
# URL carrying credentials. None is a model URI; none may be repeated back.
SECRET_LITERALS = [SECRET, f"sk-proj-{SECRET}", f"http://admin:{SECRET}@127.0.0.1:5000", f"{SECRET}:/x y"]


def _launch(instance, job: str, config: dict):
    return defs.resolve_job_def(job).execute_in_process(
        run_config={"resources": {"judgeloop": {"config": config}}}, instance=instance, raise_on_error=False
    )


def _everything_the_run_left(instance, result) -> str:
    """Every event of the run as a reader of its logs (GraphQL ``logsForRun``, the UI) gets it."""
    records = instance.all_logs(result.run_id)
    return "\n".join(f"{record.user_message}\n{record.dagster_event!r}\n{record.error_info!r}" for record in records)


@pytest.mark.parametrize("field", RUN_CONFIG_FIELDS)
def test_a_run_config_value_read_from_the_environment_is_refused_unread(field, home, instance, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", SECRET)
    result = _launch(instance, FOUNDATION_JOB, {field: {"env": "MLFLOW_TRACKING_PASSWORD"}})
    assert not result.success
    left = _everything_the_run_left(instance, result)
    assert SECRET not in left
    assert f"{field} read from an environment variable" in left
    assert not result.get_asset_materialization_events()
    assert not (home / "mlflow.db").exists()  # refused before anything was written


@pytest.mark.parametrize("value", SECRET_LITERALS)
@pytest.mark.parametrize("field", MODEL_FIELDS)
def test_a_secret_like_model_value_is_refused_without_repeating_it(field, value, home, instance, monkeypatch):
    for job in (FOUNDATION_JOB, REALIGN_JOB):
        result = _launch(instance, job, {field: value})
        assert not result.success
        left = _everything_the_run_left(instance, result)
        assert SECRET not in left, left[left.find(SECRET) - 300:][:600]
        assert f"{field} is not an MLflow model URI" in left
    assert not (home / "mlflow.db").exists()


@pytest.mark.parametrize("value", SECRET_LITERALS)
def test_a_secret_like_model_setting_is_not_repeated_by_the_configuration_report(value, home, monkeypatch):
    """The same rule for the deployment's own variables: a password pasted into the wrong one."""
    from judgeloop.model_calls.providers import configuration_report, require_model
    from judgeloop.settings import load_settings

    monkeypatch.setenv("JUDGELOOP_REFLECTION_MODEL", value)
    report = "\n".join(configuration_report(load_settings()))
    assert "JUDGELOOP_REFLECTION_MODEL (run config: reflection_model) is not an MLflow model URI" in report
    assert SECRET not in report
    with pytest.raises(Exception) as refused:
        require_model(load_settings(), "reflection")
    assert SECRET not in str(refused.value)


def test_a_model_uri_typed_into_the_run_config_still_works(home, instance):
    result = _launch(instance, FOUNDATION_JOB, {"judge_model": "fake:/judge", "experiment_name": "chosen-at-launch"})
    assert result.success
