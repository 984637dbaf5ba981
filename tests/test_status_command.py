"""`judgeloop status`: judge versions, labels waiting, the sensor's last tick, the production prompt."""

import json
import shutil

import dagster as dg
import pytest

from judgeloop import judges, labels, prompts, waiting
from judgeloop.cli import main
from judgeloop.labels import log_label
from judgeloop.settings import load_settings
from judgeloop.store import connect



@pytest.fixture
def no_dagster(monkeypatch):
    monkeypatch.delenv("DAGSTER_HOME", raising=False)


def status(capsys, *flags) -> tuple[int, str]:
    code = main(["status", *flags])
    return code, capsys.readouterr().out


def test_status_before_anything_exists(home, no_dagster, capsys):
    code, out = status(capsys)
    assert code == 0
    assert "not created yet" in out
    assert "0 version(s), promoted none" in out
    assert "labels: 0 usable on 0 trace(s), 0 rejected; 0 waiting" in out
    assert "sensor sme_labels_sensor: last tick unknown" in out
    assert "production prompt 'judgeloop-agent-system-prompt'@production: none" in out
    assert not (home / "mlflow.db").exists()  # status reads; it does not create a store

    code, out = status(capsys, "--json")
    report = json.loads(out)
    assert code == 0
    assert report["judge"] == {"name": "answer_quality", "promoted_version": None, "base_version": None, "versions": []}
    assert report["labels"]["usable"] == 0 and report["labels"]["waiting"] == 0
    assert report["sensor"]["last_tick"] is None and report["sensor"]["dagster_home"] is None
    assert report["prompt"]["production_version"] is None


def test_status_on_an_empty_experiment(home, template, no_dagster, capsys):
    shutil.copytree(template[0], home)
    code, out = status(capsys, "--json")
    report = json.loads(out)
    assert code == 0
    assert report["experiment"]["id"] == template[1]
    assert report["judge"]["versions"] == [] and report["labels"]["usable"] == 0


def _sensor_tick(dagster_home, skip_reason: str, timestamp: float, cursor: str | None = None) -> None:
    """Store a sensor state (with its cursor) and one tick the way the daemon does for sme_labels_sensor."""
    from dagster._core.definitions.run_request import InstigatorType
    from dagster._core.remote_origin import RegisteredCodeLocationOrigin, RemoteInstigatorOrigin, RemoteRepositoryOrigin
    from dagster._core.scheduler.instigation import (
        InstigatorState, InstigatorStatus, SensorInstigatorData, TickData, TickStatus,
    )

    origin = RemoteInstigatorOrigin(
        RemoteRepositoryOrigin(RegisteredCodeLocationOrigin("judgeloop"), "__repository__"), "sme_labels_sensor"
    )
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        state = instance.add_instigator_state(
            InstigatorState(origin, InstigatorType.SENSOR, InstigatorStatus.DECLARED_IN_CODE, SensorInstigatorData(cursor=cursor))
        )
        for offset, reason in ((-60, "an older tick"), (0, skip_reason)):
            instance.create_tick(
                TickData(
                    instigator_origin_id=state.instigator_origin_id, instigator_name="sme_labels_sensor",
                    instigator_type=InstigatorType.SENSOR, status=TickStatus.SKIPPED, timestamp=timestamp + offset,
                    selector_id=state.selector_id, skip_reason=reason,
                )
            )


def _evaluate_sensor(cursor: str | None):
    from judgeloop_assets.definitions import defs
    from judgeloop_assets.resources import JudgeloopConfig

    with dg.instance_for_test() as instance:
        context = dg.build_sensor_context(
            instance=instance, cursor=cursor, resources={"judgeloop": JudgeloopConfig()}, definitions=defs
        )
        return defs.resolve_sensor_def("sme_labels_sensor").evaluate_tick(context)


def test_status_on_a_populated_store(home, template, tmp_path, capsys, monkeypatch):
    shutil.copytree(template[0], home)
    _, experiment_id, (t1, t2, t3, t4, t5, _) = template
    settings = load_settings()
    connect(settings)
    judges.ensure_base_judge(settings, experiment_id, settings.judge_model)  # v1
    for trace_id, value in ((t1, 3), (t2, 1), (t3, 4)):
        log_label(trace_id, settings.judge_name, value, "rater-1")
    aligned_up_to = max(label.updated_ms for label in labels.current_labels(settings, experiment_id)[0])
    # The sensor's position after a successful re-alignment took these three labels.
    used = waiting.RealignState(base=labels.changed_since(settings, experiment_id).cursor)
    v2 = judges.register(judges.build_judge(settings, settings.judge_model), experiment_id)
    judges.record_lineage(
        experiment_id, v2,
        {"kind": "aligned", "previous_version": 1, "label_count": 3, "newest_label_ms": aligned_up_to,
         "kappa_before": 0.125, "kappa_after": 0.5},
    )
    judges.promote(experiment_id, v2)
    log_label(t4, settings.judge_name, 2, "rater-2")
    log_label(t5, settings.judge_name, 2, "rater-2")
    log_label(t5, settings.judge_name, 9, "rater-1")  # outside 1-4: rejected

    dagster_home = tmp_path / "dagster-home"
    dagster_home.mkdir()
    monkeypatch.setenv("DAGSTER_HOME", str(dagster_home))
    # The real sensor ticks on this store; status must print the number the tick printed.
    tick = _evaluate_sensor(used.encode())
    # Registered after the tick: with a production prompt never optimized with the aligned v2,
    # the sensor would (rightly) request that optimization instead of skipping.
    prompts.ensure_registered(settings)  # production v1
    assert "2 new SME label(s) waiting, 5 needed to re-align" in tick.skip_message
    _sensor_tick(dagster_home, tick.skip_message, 1_700_000_000.0, cursor=tick.cursor)

    code, out = status(capsys)
    assert code == 0, out
    assert f"(id {experiment_id})" in out
    assert "2 version(s), promoted v2" in out
    assert "    v1: base (fake:/judge)" in out
    assert "  * v2: aligned from v1 on 3 label(s)" in out and "held-out kappa 0.125 -> 0.500" in out
    assert "labels: 5 usable on 5 trace(s), 1 rejected; 2 waiting for alignment" in out
    assert "the newest label a re-alignment took" in out
    assert (
        "sensor sme_labels_sensor: last tick 2023-11-14 22:13:20 UTC SKIPPED: "
        "2 new SME label(s) waiting, 5 needed to re-align"
    ) in out
    assert "production prompt 'judgeloop-agent-system-prompt'@production: v1" in out

    code, out = status(capsys, "--json")
    report = json.loads(out)
    assert code == 0
    assert report["judge"]["promoted_version"] == 2 and report["judge"]["base_version"] == 1
    versions = {v["version"]: v for v in report["judge"]["versions"]}
    assert versions[1]["kind"] == "base" and not versions[1]["promoted"]
    assert versions[2]["promoted"] and versions[2]["kappa_before"] == 0.125 and versions[2]["kappa_after"] == 0.5
    assert report["labels"] == {
        "usable": 5, "rejected": 1, "waiting": 2, "threshold": 5, "traces": 5, "reviewers": ["rater-1", "rater-2"],
        "newest_label_ms": report["labels"]["newest_label_ms"], "aligned_up_to_ms": aligned_up_to,
        "in_running_realignment": 0, "failed_realignments": 0,
    }
    assert report["sensor"]["last_tick"]["status"] == "SKIPPED"
    assert report["sensor"]["last_tick"]["timestamp"] == 1_700_000_000.0
    assert report["sensor"]["dagster_home"] == str(dagster_home)
    assert report["prompt"]["production_version"] == 1


def test_status_with_a_dagster_instance_that_never_ticked(home, tmp_path, capsys, monkeypatch):
    dagster_home = tmp_path / "dagster-home"
    dagster_home.mkdir()
    monkeypatch.setenv("DAGSTER_HOME", str(dagster_home))
    code, out = status(capsys)
    assert code == 0
    assert "sensor sme_labels_sensor: last tick unknown (never ticked)" in out
