"""``judgeloop status`` reads the label sensor's state and newest tick from Dagster's default sqlite
storage without importing Dagster (``judgeloop_assets.sensor_rows``): checked here against what
``DagsterInstance`` itself reads, on the pinned Dagster, with state and ticks stored the way the
daemon stores them."""

import subprocess
import sys
import time

import dagster as dg
import pytest
from dagster._core.definitions.run_request import InstigatorType
from dagster._core.remote_origin import InProcessCodeLocationOrigin, RemoteInstigatorOrigin, RemoteRepositoryOrigin
from dagster._core.scheduler.instigation import InstigatorState, InstigatorStatus, SensorInstigatorData, TickData, TickStatus
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
from dagster_shared.error import SerializableErrorInfo

from judgeloop.settings import load_settings
from judgeloop.stack import servers
from judgeloop_assets import sensor_rows, sensor_state

NAME = "sme_labels_sensor"


def _origin(name: str) -> RemoteInstigatorOrigin:
    location = InProcessCodeLocationOrigin(LoadableTargetOrigin(module_name="judgeloop_assets.definitions"), location_name="judgeloop")
    return RemoteInstigatorOrigin(RemoteRepositoryOrigin(location, "__repository__"), name)


def _store(instance, name: str, cursor: str, ticks: list[dict]) -> None:
    origin = _origin(name)
    instance.add_instigator_state(InstigatorState(
        origin, InstigatorType.SENSOR, InstigatorStatus.RUNNING, SensorInstigatorData(cursor=cursor, min_interval=30),
    ))
    for tick in ticks:
        instance.create_tick(TickData(
            instigator_origin_id=origin.get_id(), instigator_name=name, instigator_type=InstigatorType.SENSOR,
            selector_id=origin.get_selector().get_id(), **{"run_ids": [], **tick},
        ))


@pytest.fixture
def dagster_home(tmp_path):
    home = tmp_path / "dagster"
    servers.write_dagster_yaml(home)  # the instance config judgeloop up runs Dagster with
    return home


def _both_readers(home, monkeypatch):
    fast = sensor_state.sensor_status(home, load_settings(), NAME)
    monkeypatch.setattr(sensor_rows, "default_storage_file", lambda _home: None)  # force DagsterInstance
    slow = sensor_state.sensor_status(home, load_settings(), NAME)
    return fast, slow


def test_the_sqlite_reader_reads_what_dagster_reads(dagster_home, monkeypatch):
    now = time.time()
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        _store(instance, "new_traffic_sensor", "other", [{"status": TickStatus.SUCCESS, "timestamp": now + 5}])
        _store(instance, NAME, '{"base": {"t": 12}}', [
            {"status": TickStatus.SKIPPED, "timestamp": now - 20, "skip_reason": "older"},
            {"status": TickStatus.SUCCESS, "timestamp": now - 10, "run_ids": ["r-1", "r-2"]},
            {"status": TickStatus.FAILURE, "timestamp": now, "error": SerializableErrorInfo(" MLflow is down \n", [], "OSError")},
        ])
    assert sensor_rows.default_storage_file(dagster_home) is not None
    fast, slow = _both_readers(dagster_home, monkeypatch)
    assert fast == slow
    assert fast["state"] == "RUNNING" and fast["cursor"] == '{"base": {"t": 12}}'
    assert fast["last_tick"]["status"] == "FAILURE" and fast["last_tick"]["error"] == "MLflow is down"


def test_a_sensor_that_never_ticked_reads_alike(dagster_home, monkeypatch):
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        _store(instance, NAME, None, [])
    fast, slow = _both_readers(dagster_home, monkeypatch)
    assert fast == slow and fast["last_tick"] is None


def test_status_reads_the_sensor_without_importing_dagster(dagster_home, monkeypatch):
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        _store(instance, NAME, "c", [{"status": TickStatus.SKIPPED, "timestamp": time.time(), "skip_reason": "why"}])
    code = (
        "import sys; from pathlib import Path; from judgeloop.settings import load_settings; "
        "from judgeloop_assets.sensor_state import sensor_status; "
        f"r = sensor_status(Path({str(dagster_home)!r}), load_settings(), {NAME!r}); "
        "assert r['last_tick']['skip_reason'] == 'why', r; "
        "assert not [m for m in sys.modules if m == 'dagster' or m.startswith('dagster.')], 'dagster imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_another_storage_is_read_through_dagster(tmp_path):
    home = tmp_path / "dagster"
    home.mkdir()
    (home / "dagster.yaml").write_text("storage:\n  postgres:\n    postgres_url: postgresql://x/y\n")
    (home / "schedules").mkdir()
    (home / sensor_rows.SCHEDULES_DB).write_text("")
    assert sensor_rows.default_storage_file(home) is None
