"""`judgeloop status`: judge versions, labels waiting, the sensor's last tick, the production prompt."""

import json
import shutil

import dagster as dg
import pytest

from judgeloop.judging import judges
from judgeloop.prompt_optimization import prompts
from judgeloop.sme_labels import labels, waiting
from judgeloop.cli import main
from judgeloop.sme_labels.labels import log_label
from judgeloop.settings import load_settings
from judgeloop.stack.store import connect



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
    assert "    v1: base (fake:/judge): promoted earlier" in out
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


def test_status_prints_no_litellm_cost_map_warnings(home, template, no_dagster):
    """Loading a registered MemAlign judge imports litellm; offline it must not try to fetch
    its price list (three "cost map fetch failed" warnings and ~10 s on every call)."""
    import os
    import subprocess
    import sys

    from mlflow import MlflowClient
    from mlflow.genai.judges.optimizers import MemAlignOptimizer

    from tests.conftest import REPO

    shutil.copytree(template[0], home)
    settings = load_settings()
    experiment_id = connect(settings)
    trace_ids = template[2][:4]
    for value, trace_id in zip((1, 2, 3, 4), trace_ids):
        log_label(trace_id, settings.judge_name, value, reviewer="alice")
    base = judges.build_judge(settings, settings.judge_model)
    traces = [MlflowClient().get_trace(trace_id) for trace_id in trace_ids]
    aligned = MemAlignOptimizer(reflection_lm=settings.reflection_model, embedding_model=settings.embedding_model).align(base, traces)
    judges.register(aligned, experiment_id)

    # A fresh process, without the switch this test process already set for itself.
    env = {k: v for k, v in os.environ.items() if k != "LITELLM_LOCAL_MODEL_COST_MAP"}
    env["PYTHONPATH"] = str(REPO)
    done = subprocess.run(
        [sys.executable, "-m", "judgeloop.cli", "status"], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert "1 version(s)" in done.stdout
    assert "cost map" not in (done.stdout + done.stderr).lower()


def test_status_says_what_each_version_stood_on_and_warns_below_the_base_judge(home, template, no_dagster, capsys, monkeypatch):
    """Per version: the gate's case, "on N of M held-out traces", the interval, blocked or in use and
    why; every promoted version on today's held-out labels; a warning when the judge in use agrees
    less with the experts than the base judge; the same as a chart."""
    from judgeloop.judging import scores, split

    shutil.copytree(template[0], home)
    _, experiment_id, trace_ids = template
    monkeypatch.setenv("JUDGELOOP_HELDOUT_FRACTION", "0.99")  # every labelled trace held out
    monkeypatch.setenv("JUDGELOOP_INTERVAL_MIN_TRACES", "2")
    settings = load_settings()
    connect(settings)
    judges.ensure_base_judge(settings, experiment_id, settings.judge_model)  # v1
    values = [1, 2, 3, 4, 4, 1]
    for trace_id, value in zip(trace_ids, values):
        log_label(trace_id, settings.judge_name, value, "rater-1")
        log_label(trace_id, settings.judge_name, value, "rater-2")
    heldout = split.split(sorted(trace_ids), settings.heldout_fraction)[1]
    v2 = judges.register(judges.build_judge(settings, settings.judge_model), experiment_id)
    v3 = judges.register(judges.build_judge(settings, settings.judge_model), experiment_id)
    for version, passed, case in ((v2, True, "not_worse"), (v3, False, "measured_worse")):
        judges.record_lineage(experiment_id, version, {
            "kind": "aligned", "previous_version": version - 1, "label_count": 4, "newest_label_ms": 1,
            "kappa_before": 0.4, "kappa_after": 0.3, "kappa_after_interval": [0.1, 0.5],
            "measured_traces": 200, "heldout_traces": 238,
            "gate": {"passed": passed, "case": case, "reason": f"v{version} {case}, because"},
        })
    judges.promote(experiment_id, v2)
    truth = dict(zip(trace_ids, values))
    scores.save(settings, 1, {t: truth[t] for t in heldout})  # the base judge agrees with the experts
    scores.save(settings, v2, {t: 5 - truth[t] for t in heldout})  # the judge in use disagrees

    code, out = status(capsys)
    assert code == 0, out
    assert f"  * v{v2}: aligned from v1" in out and "in use; gate not_worse" in out
    assert "[0.100, 0.500] on 200 of 238 held-out traces of that day" in out
    assert f"    v{v3}: aligned" in out and "blocked; gate measured_worse" in out and f"why: v{v3} measured_worse, because" in out
    assert f"of {len(heldout)} held-out traces, stored scores" in out
    assert "    v1 (base): kappa 1.000" in out and f"v{v2} (aligned, in use): kappa" in out
    assert "experts vs experts: kappa 1.000" in out
    assert f"WARNING: the judge in use (v{v2}) agrees less with the experts than the base judge (v1)" in out

    chart = home / "history.svg"
    code, out = status(capsys, "--json", "--chart", str(chart))
    report = json.loads(out)
    versions = {v["version"]: v for v in report["judge"]["versions"]}
    assert versions[v3]["state"] == "blocked" and versions[v3]["gate_case"] == "measured_worse"
    assert versions[v2]["measured_on"] == "on 200 of 238 held-out traces"
    assert [v["version"] for v in report["reference"]["versions"]] == [1, v2]  # v3 was never in use
    assert report["reference"]["warning"]
    svg = chart.read_text()
    assert svg.startswith("<svg") and ">v1<" in svg and f">v{v2} (in use)<" in svg and "experts vs experts" in svg
