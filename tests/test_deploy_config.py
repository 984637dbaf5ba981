"""deploy/: the instance config validates with Dagster's own schema, including the config of
every class it names (storage, run coordinator, run launcher), so it cannot rot unnoticed."""

from pathlib import Path

import pytest
import yaml
from dagster import DagsterInstance
from dagster._config import process_config
from dagster._core.instance.config import dagster_instance_config
from dagster._serdes import class_from_code_pointer

from judgeloop.stack import servers
from judgeloop.run_names import CODE_LOCATION

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"


def _check_class(entry: dict) -> None:
    cls = class_from_code_pointer(entry["module"], entry["class"])
    result = process_config(cls.config_type(), entry.get("config") or {})
    assert result.success, f"{entry['class']}: {[error.message for error in result.errors]}"


def test_deploy_dagster_yaml_passes_dagster_validation(monkeypatch):
    from dagster_postgres.utils import pg_config

    monkeypatch.setenv("DAGSTER_POSTGRES_URL", "postgresql+psycopg2://dagster@db/judgeloop")
    config, _ = dagster_instance_config(str(DEPLOY))
    postgres = process_config(pg_config(), config["storage"]["postgres"])
    assert postgres.success, [error.message for error in postgres.errors]
    assert config["run_coordinator"]["class"] == "QueuedRunCoordinator"
    _check_class(config["run_coordinator"])
    _check_class(config["run_launcher"])
    # The realign pool has one slot in the deployment, as it has under `judgeloop up`.
    assert config["concurrency"]["pools"]["default_limit"] == 1


def test_deploy_dagster_yaml_rejects_a_broken_launcher(tmp_path):
    # The check above is only worth something if a wrong field fails it.
    broken = yaml.safe_load((DEPLOY / "dagster.yaml").read_text())
    broken["run_launcher"]["config"]["netwrok"] = broken["run_launcher"]["config"].pop("network")
    with pytest.raises(AssertionError, match="DockerRunLauncher"):
        _check_class(broken["run_launcher"])


def test_workspace_points_at_a_code_server_of_this_location():
    entry = yaml.safe_load((DEPLOY / "workspace.yaml").read_text())["load_from"][0]["grpc_server"]
    assert entry["location_name"] == CODE_LOCATION and entry["port"]


@pytest.mark.parametrize("database_url", [None, "postgresql+psycopg2://u@db/judgeloop"])
def test_judgeloop_up_dagster_yaml_validates(tmp_path, monkeypatch, database_url):
    monkeypatch.setenv(servers.DAGSTER_STORAGE_URL_VARIABLE, "postgresql+psycopg2://u@db/judgeloop")
    servers.write_dagster_yaml(tmp_path, database_url)
    config, _ = dagster_instance_config(str(tmp_path))
    assert config["concurrency"]["pools"]["default_limit"] == 1
    assert ("storage" in config) == bool(database_url)
    # Queued runs start within a second of the sensor's request, one at a time.
    assert config["run_coordinator"]["config"]["dequeue_interval_seconds"] == 1
    if database_url:
        return  # the instance would connect to the database
    with DagsterInstance.from_config(str(tmp_path)) as instance:
        assert instance.run_coordinator.dequeue_interval_seconds == 1
        queue = instance.get_concurrency_config().run_queue_config
        # One run of the loop at a time; live agreement in a queue of its own beside it.
        assert queue.max_concurrent_runs == 2
        assert {(limit["value"], limit["limit"]) for limit in queue.tag_concurrency_limits} == {("loop", 1), ("after", 1)}


def test_the_promotion_steps_share_the_realign_pool_in_code():
    # Declared on the assets themselves, so any deployment's instance limit applies to them.
    from judgeloop_assets.definitions import defs
    from judgeloop.run_names import REALIGN_POOL

    pools = {key: node.pool for key, node in
             ((k, defs.resolve_assets_def(k).node_def) for k in ("aligned_judge", "optimized_prompt"))}
    assert pools == {"aligned_judge": REALIGN_POOL, "optimized_prompt": REALIGN_POOL}
