"""A Dagster launch may choose models and the judge, never where the store is, its credentials
or the gate's thresholds: anyone who can reach Dagster's UI could otherwise send MLflow's
credentials to their own host or switch the gate off."""

import dagster as dg
import pytest

from judgeloop.settings import RUN_CONFIG_FIELDS, Settings
from judgeloop_assets.definitions import defs
from judgeloop.run_names import FOUNDATION_JOB, REALIGN_JOB
from judgeloop_assets.resources import JudgeloopConfig

DEPLOYMENT_ONLY = {
    "tracking_uri": "http://203.0.113.9:5000",
    "backend_store_uri": "sqlite:////tmp/elsewhere.db",
    "home": "/tmp/elsewhere",
    "gate_margin": 2.0,
    "min_heldout_labels": 0,
    "label_threshold": 1,
    "agent": "os:system",
    "mlflow_ui_url": "http://203.0.113.9",
}


def test_a_launch_overriding_a_deployment_setting_is_refused(instance):
    for job in (REALIGN_JOB, FOUNDATION_JOB):
        for field, value in DEPLOYMENT_ONLY.items():
            run_config = {"resources": {"judgeloop": {"config": {field: value}}}}
            with pytest.raises(dg.DagsterInvalidConfigError, match=field):
                defs.resolve_job_def(job).execute_in_process(run_config=run_config, instance=instance)
    assert not instance.get_runs()  # refused before any run (or MLflow call) started


def test_run_config_offers_only_run_choices_typed_like_settings(monkeypatch):
    monkeypatch.setenv("JUDGELOOP_JUDGE_MODEL", "fake:/judge")
    config_fields = set(JudgeloopConfig.model_fields)
    assert config_fields == set(RUN_CONFIG_FIELDS)
    assert not config_fields & set(DEPLOYMENT_ONLY)
    for name in RUN_CONFIG_FIELDS:
        assert JudgeloopConfig.model_fields[name].description == Settings.model_fields[name].description
    chosen = JudgeloopConfig(judge_model="fake:/other-judge", judge_name="tone").settings()
    assert (chosen.judge_model, chosen.judge_name) == ("fake:/other-judge", "tone")
    assert JudgeloopConfig().settings().judge_model == "fake:/judge"  # unset: the environment's
