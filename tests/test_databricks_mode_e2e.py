"""The whole loop in Databricks mode against the fake workspace: foundation, SME labels through
the review queue, one sensor-triggered re-alignment, promotion, prompt optimization, status.
Every model role is a databricks:/ serving endpoint answered by the fake."""

from pathlib import Path

import dagster as dg
import pytest

from judgeloop.judging import judges
from judgeloop.prompt_optimization import prompts
from judgeloop.sme_labels import labels
from judgeloop.tracing import demo
from judgeloop.settings import load_settings
from judgeloop.stack.store import connect
from judgeloop_assets.definitions import defs
from judgeloop_assets.resources import JudgeloopConfig
from tests.fake_databricks import reviewer
from tests.fake_databricks.running import databricks_mode, fake_workspace
from tests.support import accept_any_split, materialize, metadata

pytestmark = pytest.mark.slow

ENDPOINTS = {
    # "generic": the stand-in judge keeps its generic rule, so GEPA's better prompt scores higher
    # (with its memory it rates like the remembered answers and the prompt cannot move it).
    "JUDGELOOP_JUDGE_MODEL": "databricks:/judge-generic-endpoint",
    "JUDGELOOP_REFLECTION_MODEL": "databricks:/reflection-endpoint",
    "JUDGELOOP_EMBEDDING_MODEL": "databricks:/databricks-gte-large-en",
    "JUDGELOOP_AGENT_MODEL": "databricks:/agent-endpoint",
}


def tick(instance, cursor):
    context = dg.build_sensor_context(
        instance=instance, cursor=cursor, resources={"judgeloop": JudgeloopConfig()}, definitions=defs
    )
    return defs.resolve_sensor_def("sme_labels_sensor").evaluate_tick(context)


def test_the_loop_on_a_databricks_workspace(home, instance, monkeypatch, tmp_path):
    with fake_workspace(tmp_path / "workspace") as running:
        databricks_mode(monkeypatch, running, home, "/Users/engineer@example.com/judgeloop")
        for key, value in ENDPOINTS.items():
            monkeypatch.setenv(key, value)
        monkeypatch.setenv("JUDGELOOP_DEMO_ITEMS", "24")
        monkeypatch.setenv("JUDGELOOP_GATE_MARGIN", "2.0")  # the gate itself is tested elsewhere
        accept_any_split(monkeypatch)  # 20 traces: fewer than 3 held out about 1 run in 70
        monkeypatch.setenv("JUDGELOOP_GEPA_MAX_METRIC_CALLS", "24")
        settings = load_settings()
        experiment_id = connect(settings)
        demo.seed(settings, experiment_id)
        monkeypatch.setenv("JUDGELOOP_EXPECTATIONS_PATH", str(demo.write_expectations(settings)))

        foundation = materialize(instance, ["base_judge", "tagged_traces", "eval_dataset", "labeling_session", "agent_prompt"])
        assert foundation.success
        labeling = metadata(foundation, "labeling_session")
        assert labeling["labeling_url"].startswith(running.url) and labeling["schema_name"] == settings.judge_name
        assert metadata(foundation, "eval_dataset")["dataset_name"] == "main.judgeloop.answer_quality_eval"
        assert metadata(foundation, "agent_prompt")["prompt_name"] == "main.judgeloop.judgeloop_agent_system_prompt"

        # SMEs answer in the review queue: HUMAN feedback named like the question, item completed.
        assert tick(instance, None).skip_message.startswith("0 new SME label(s)")
        written = demo.release_labels(load_settings(), experiment_id, 40).written
        assert written == 40
        labelled = {label.trace_id for label in labels.current_labels(load_settings(), experiment_id)[0]}
        for trace_id in labelled:
            reviewer.set_status(running.url, experiment_id, labeling["queue_id"], trace_id, "COMPLETE", "dapi-fake-ana")

        fired = tick(instance, None)
        assert len(fired.run_requests) == 1 and fired.run_requests[0].tags["judgeloop/new_labels"] == "40"
        request = fired.run_requests[0]
        run = defs.resolve_job_def(request.job_name or "realign_judge").execute_in_process(
            instance=instance, tags={**request.tags, "dagster/run_key": request.run_key}  # as the daemon tags it
        )
        assert run.success
        aligned = metadata(run, "aligned_judge")
        assert aligned["judge_version"] == 2 and judges.promoted_version(experiment_id) == 2
        assert aligned["labels_alignment"] + aligned["labels_heldout"] == 40
        optimized = metadata(run, "optimized_prompt")
        assert optimized["judge_version"] == 2 and optimized["metric_calls_spent"] > 0
        assert prompts.latest(prompts.name(settings)).version >= 2
        # Lineage: experiment tags for the judge, Unity Catalog version tags for the prompt.
        assert judges.lineage(experiment_id, 2)["kind"] == "aligned" and judges.lineage(experiment_id, 2)["previous_version"] == 1
        gepa = prompts.latest(prompts.name(settings), source="gepa")
        assert prompts.version_tags(prompts.name(settings), gepa.version)["judgeloop.judge_version"] == "2"
        assert running.fake.requests.get("serving:embeddings", 0) > 0 and running.fake.requests["serving:chat"] > 0
        # Every role reached its own serving endpoint (reflection through litellm's databricks/ provider).
        for uri in ENDPOINTS.values():
            assert running.fake.requests.get(f"endpoint:{uri.split(':/', 1)[1]}", 0) > 0, uri
        # The judge was registered through the managed-evals scorer API: one version per registration.
        [versions] = [v for (_, key), v in running.fake.scorer_versions.items() if v[0]["display_name"] == settings.judge_name]
        assert [v["scorer_version"] for v in versions] == [1, 2]

        idle = tick(instance, fired.cursor)
        assert not idle.run_requests and idle.skip_message.startswith("0 new SME label(s)")

        from judgeloop.commands.status import collect

        status = collect(load_settings())
        assert status["judge"]["promoted_version"] == 2 and status["labels"]["usable"] == 40
        assert status["prompt"]["name"] == "main.judgeloop.judgeloop_agent_system_prompt"

    # The token is never stored: not in the MLflow store, the Unity Catalog tables, the state folder or Dagster.
    from tests.fake_databricks.running import ENGINEER_TOKEN

    for root in (tmp_path, Path(instance.root_directory)):  # home is inside tmp_path
        for path in (p for p in root.rglob("*") if p.is_file()):
            assert ENGINEER_TOKEN.encode() not in path.read_bytes(), path
