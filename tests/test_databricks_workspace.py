"""The workspace interface on both backends: a local store, and a fake Databricks workspace
(tests/fake_databricks) in front of a real local mlflow server."""

import pytest

from judgeloop import workspace
from judgeloop.sme_labels import labels
from judgeloop.tracing import datasets
from judgeloop.settings import load_settings
from judgeloop.stack.store import connect
from judgeloop.workspace import WorkspaceNotReadyError
from tests.fake_databricks import reviewer
from tests.fake_databricks.running import databricks_mode, fake_workspace


@pytest.fixture(scope="module")
def fake(tmp_path_factory):
    with fake_workspace(tmp_path_factory.mktemp("databricks")) as running:
        yield running


@pytest.fixture
def dbx(fake, home, monkeypatch, request):
    """Databricks mode against the fake, one experiment per test."""
    databricks_mode(monkeypatch, fake, home, f"/Shared/{request.node.name}")
    monkeypatch.setenv("JUDGELOOP_REVIEWERS", "ana@example.com,ben@example.com")
    return fake


def seed(settings, experiment_id, count=4):
    from judgeloop.tracing import feedbackqa, production
    from tests.conftest import feedbackqa_root

    items = feedbackqa.load_items(feedbackqa_root(), "WHO", limit=count)
    return list(production.seed_traces(experiment_id, items).values())


def writes(fake) -> int:
    return sum(n for key, n in fake.fake.requests.items() if key.split(" ")[0] in {"POST", "PATCH", "DELETE", "PUT"})


def test_assets_and_sensor_never_ask_which_workspace_they_talk_to():
    import re
    from pathlib import Path

    repo = Path(__file__).resolve().parent.parent
    asks = re.compile(r"is_databricks|databricks|\.kind\b|LocalWorkspace")
    offenders = [
        f"{path.relative_to(repo)}:{number}"
        for folder in ("judgeloop_assets", "sensors")
        for path in sorted((repo / folder).rglob("*.py"))
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if asks.search(line)
    ]
    assert offenders == []


# Local ---------------------------------------------------------------------------------


def test_local_store_gets_the_local_workspace(home, template):
    settings = load_settings()
    place = workspace.for_settings(settings)
    assert place.kind == "local"
    assert place.prompt_name() == settings.prompt_name


def test_local_dataset_is_found_again_by_id(home):
    settings = load_settings()
    experiment_id = connect(settings)
    place = workspace.for_settings(settings)
    first = place.dataset(experiment_id)
    assert place.dataset(experiment_id).dataset_id == first.dataset_id


# Databricks ----------------------------------------------------------------------------


def test_databricks_embeddings_default_to_the_workspace_endpoint(home, monkeypatch):
    from judgeloop.model_calls import providers

    monkeypatch.delenv("JUDGELOOP_EMBEDDING_MODEL")
    with pytest.raises(providers.ModelNotConfiguredError, match="JUDGELOOP_EMBEDDING_MODEL"):
        providers.require_model(load_settings(), "embeddings")  # locally there is no default
    monkeypatch.setenv("JUDGELOOP_TRACKING_URI", "databricks")
    monkeypatch.setenv("DATABRICKS_HOST", "https://workspace.example.com")
    assert providers.require_model(load_settings(), "embeddings") == "databricks:/databricks-gte-large-en"
    monkeypatch.setenv("JUDGELOOP_EMBEDDING_MODEL", "databricks:/my-embeddings")
    assert load_settings().embedding_model == "databricks:/my-embeddings"


def test_databricks_names_come_from_unity_catalog(dbx):
    place = workspace.for_settings(load_settings())
    assert place.kind == "databricks"
    assert place.prompt_name() == "main.judgeloop.judgeloop_agent_system_prompt"
    assert place.dataset_table() == "main.judgeloop.answer_quality_eval"


def test_databricks_trace_search_falls_back_from_the_v4_endpoint(dbx):
    from judgeloop.tracing import traces

    settings = load_settings()
    experiment_id = connect(settings)
    trace_ids = seed(settings, experiment_id, count=2)
    asked_v4 = sum(n for key, n in dbx.fake.requests.items() if key.startswith("POST /api/4.0/"))
    assert sorted(t.info.trace_id for t in traces.search_all(experiment_id)) == sorted(trace_ids)
    assert sum(n for key, n in dbx.fake.requests.items() if key.startswith("POST /api/4.0/")) > asked_v4


def test_databricks_queue_holds_each_trace_once_with_the_judge_question(dbx):
    settings = load_settings()
    experiment_id = connect(settings)
    trace_ids = seed(settings, experiment_id)
    place = workspace.for_settings(settings)
    first = place.open_labeling(experiment_id, trace_ids, "")
    again = place.open_labeling(experiment_id, trace_ids, "")
    assert (first.items_added, again.items_added, again.pending) == (4, 0, 4)
    assert first.schema_name == settings.judge_name and again.queue_id == first.queue_id
    assert first.url.startswith(dbx.url) and first.queue_id in first.url
    assert first.reviewers == ["ana@example.com", "ben@example.com"]


def test_databricks_dataset_is_a_unity_catalog_table_merged_once(dbx):
    settings = load_settings()
    experiment_id = connect(settings)
    trace_ids = seed(settings, experiment_id, count=3)
    place = workspace.for_settings(settings)
    report = datasets.merge_traces(place, experiment_id, trace_ids, progress=lambda _: None)
    again = datasets.merge_traces(place, experiment_id, trace_ids, progress=lambda _: None)
    assert report.name == "main.judgeloop.answer_quality_eval"
    assert again.added == 0 and again.record_count == report.record_count > 0
    assert len(datasets.load_records(place.dataset(experiment_id))) == report.record_count


def test_databricks_labels_are_read_from_the_queue_incrementally(dbx, monkeypatch):
    import mlflow

    monkeypatch.setenv("JUDGELOOP_LABEL_RECONCILE_TICKS", "3")
    settings = load_settings()
    experiment_id = connect(settings)
    trace_ids = seed(settings, experiment_id)
    place = workspace.for_settings(settings)
    queue = place.open_labeling(experiment_id, trace_ids, "")
    first = labels.changed_since(settings, experiment_id)  # tick 1: nothing labelled yet
    assert first.labels == []

    label_id = reviewer.answer(dbx.url, experiment_id, queue.queue_id, trace_ids[0], settings.judge_name, 3, "dapi-fake-ana")
    second = labels.changed_since(settings, experiment_id, first.cursor)  # tick 2
    assert [(l.trace_id, l.value, l.reviewer) for l in second.labels] == [(trace_ids[0], 3, "ana@example.com")]
    assert second.rows_read == 1  # only the trace whose item moved was read

    # An edit after completion does not move the item: the periodic full reconcile (tick 3) finds it.
    mlflow.update_assessment(trace_ids[0], label_id, mlflow.entities.Feedback(name=settings.judge_name, value=4))
    third = labels.changed_since(settings, experiment_id, labels.Cursor.decode(second.cursor.encode()))
    assert [l.value for l in third.labels] == [4] and third.rows_read == len(trace_ids)
    idle = labels.changed_since(settings, experiment_id, third.cursor)  # tick 4: idle
    assert idle.labels == [] and idle.rows_read == 0


def test_databricks_label_check_reads_the_labels_that_arrived(dbx):
    settings = load_settings()
    experiment_id = connect(settings)
    trace_ids = seed(settings, experiment_id, count=2)
    place = workspace.for_settings(settings)
    queue = place.open_labeling(experiment_id, trace_ids, "")
    assert place.check_label_names(experiment_id).passed
    reviewer.answer(dbx.url, experiment_id, queue.queue_id, trace_ids[0], " Answer_Quality", 2, "dapi-fake-ben")
    assert place.check_label_names(experiment_id).passed  # MemAlign's own matching: trimmed, case-insensitive
    reviewer.answer(dbx.url, experiment_id, queue.queue_id, trace_ids[1], "helpfulness", 2, "dapi-fake-ben")
    check = place.check_label_names(experiment_id)
    assert not check.passed and check.metadata["labels_named_unlike_judge"] == "helpfulness"


def test_databricks_label_files_and_status(dbx, tmp_path, capsys, monkeypatch):
    """`labels import/export` and `status` in Databricks mode: imported labels are HUMAN feedback
    with the reviewer's workspace identity, and the next label read finds them without a full reconcile."""
    import json

    from mlflow import MlflowClient

    from judgeloop.cli import main
    from tests.fake_databricks.running import ENGINEER_TOKEN

    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    settings = load_settings()
    experiment_id = connect(settings)
    trace_ids = seed(settings, experiment_id, count=3)
    place = workspace.for_settings(settings)
    place.open_labeling(experiment_id, trace_ids[:2], "")
    before = labels.changed_since(settings, experiment_id)  # the sensor's first (full) read

    # The third trace is not in the queue: its label must still count (the trace joins the queue).
    path = tmp_path / "labels.csv"
    path.write_text(
        "trace_id,value,comment,reviewer\n"
        f"{trace_ids[0]},3,clear,ana@example.com\n{trace_ids[2]},1,wrong,ben@example.com\n"
    )
    assert main(["labels", "import", str(path)]) == 0, capsys.readouterr().err
    stored = [a for t in trace_ids for a in MlflowClient().get_trace(t).info.assessments or []]
    assert {(a.name, a.source.source_type, a.source.source_id) for a in stored} == {
        (settings.judge_name, "HUMAN", "ana@example.com"), (settings.judge_name, "HUMAN", "ben@example.com"),
    }
    after = labels.changed_since(settings, experiment_id, before.cursor)
    assert sorted((l.trace_id, l.reviewer) for l in after.labels) == sorted(
        [(trace_ids[0], "ana@example.com"), (trace_ids[2], "ben@example.com")]
    )
    assert after.rows_read == 2  # the import completed the two items: no need to re-read the queue

    out = tmp_path / "out.jsonl"
    capsys.readouterr()
    assert main(["labels", "export", str(out)]) == 0
    exported = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted((r["trace_id"], r["value"], r["reviewer"]) for r in exported) == sorted(
        [(trace_ids[0], 3, "ana@example.com"), (trace_ids[2], 1, "ben@example.com")]
    )

    assert main(["status", "--json"]) == 0
    text = capsys.readouterr().out
    report = json.loads(text)
    assert report["labels"]["usable"] == 2 and report["prompt"]["name"] == place.prompt_name()
    queue = report["review"]["queue"]
    assert (queue["complete"], queue["pending"]) == (2, 1) and queue["url"].startswith(dbx.url)
    assert ENGINEER_TOKEN not in text


# Bad input: each a clear error naming the setting, raised before anything is written -------


@pytest.mark.parametrize("unset", [["DATABRICKS_HOST"], ["DATABRICKS_TOKEN"], ["DATABRICKS_HOST", "DATABRICKS_TOKEN"]])
def test_databricks_missing_credentials_name_the_variables(dbx, monkeypatch, unset):
    for key in unset:
        monkeypatch.delenv(key)
    before = writes(dbx)
    with pytest.raises(WorkspaceNotReadyError, match="DATABRICKS_HOST and DATABRICKS_TOKEN") as caught:
        connect(load_settings())
    assert "dapi-fake-engineer" not in str(caught.value)
    assert writes(dbx) == before


def test_databricks_profile_in_databrickscfg_signs_in(dbx, home, monkeypatch):
    from judgeloop.model_calls import providers
    from tests.fake_databricks.running import ENGINEER_TOKEN

    config = home.parent / "databrickscfg"
    config.write_text(f"[judgeloop]\nhost = {dbx.url}\ntoken = {ENGINEER_TOKEN}\n")
    monkeypatch.setenv("DATABRICKS_CONFIG_FILE", str(config))
    monkeypatch.delenv("DATABRICKS_HOST")
    monkeypatch.delenv("DATABRICKS_TOKEN")
    monkeypatch.setenv("DATABRICKS_CONFIG_PROFILE", "missing")
    with pytest.raises(WorkspaceNotReadyError, match="DATABRICKS_CONFIG_PROFILE"):
        connect(load_settings())
    monkeypatch.setenv("DATABRICKS_CONFIG_PROFILE", "judgeloop")
    settings = load_settings()
    assert connect(settings) == connect(settings)  # MLflow signs in with the same profile
    assert workspace.for_settings(settings).check_credentials() == "engineer@example.com"
    monkeypatch.setenv("JUDGELOOP_JUDGE_MODEL", "databricks:/judge-endpoint")
    assert providers.require_model(load_settings(), "judge") == "databricks:/judge-endpoint"  # the profile counts


def test_databricks_rejected_token_is_named_and_never_printed(dbx, monkeypatch):
    monkeypatch.setenv("DATABRICKS_TOKEN", "dapi-expired-secret")
    before = writes(dbx)
    with pytest.raises(WorkspaceNotReadyError, match="expired or revoked; renew DATABRICKS_TOKEN") as caught:
        connect(load_settings())
    assert "dapi-expired-secret" not in str(caught.value)
    assert writes(dbx) == before


@pytest.mark.parametrize("command", [["status"], ["labels", "export", "-"]])
def test_databricks_commands_name_a_rejected_token_in_one_line(dbx, monkeypatch, capsys, command):
    from judgeloop.cli import main

    monkeypatch.setenv("DATABRICKS_TOKEN", "dapi-expired-secret")
    assert main(command) == 2
    err = capsys.readouterr().err
    assert err.splitlines()[-1].startswith("judgeloop: The workspace at") and "renew DATABRICKS_TOKEN" in err
    assert "Traceback" not in err and "dapi-expired-secret" not in err


@pytest.mark.parametrize(
    "setting, value",
    [("JUDGELOOP_UC_SCHEMA", "main"), ("JUDGELOOP_DATASET_TABLE", "main.eval"), ("JUDGELOOP_PROMPT_NAME", "main.p")],
)
def test_databricks_unity_catalog_names_must_have_their_parts(dbx, monkeypatch, setting, value):
    monkeypatch.setenv(setting, value)
    before = writes(dbx)
    with pytest.raises(WorkspaceNotReadyError, match=f"{setting}={value!r} is not a"):
        connect(load_settings())
    assert writes(dbx) == before


def test_databricks_unity_catalog_schema_is_required(dbx, monkeypatch):
    monkeypatch.delenv("JUDGELOOP_UC_SCHEMA")
    before = writes(dbx)
    with pytest.raises(WorkspaceNotReadyError, match="JUDGELOOP_UC_SCHEMA is not set"):
        connect(load_settings())
    assert writes(dbx) == before


def test_databricks_without_the_extra_says_how_to_install_it(dbx, monkeypatch):
    import sys

    import databricks

    monkeypatch.setattr(databricks, "__path__", [p for p in databricks.__path__ if "agents_boundary" not in p])
    for name in [m for m in sys.modules if m.startswith("databricks.agents")]:
        monkeypatch.delitem(sys.modules, name)
    before = writes(dbx)
    with pytest.raises(WorkspaceNotReadyError, match=r"pip install -e '\.\[databricks\]'"):
        connect(load_settings())
    assert writes(dbx) == before


def test_databricks_queue_asking_another_question_is_refused_before_writing(dbx):
    from mlflow.genai.databricks import review_queues as rq

    settings = load_settings()
    experiment_id = connect(settings)
    trace_ids = seed(settings, experiment_id, count=2)
    other = rq.create_review_question(experiment_id, title="helpfulness", type="FEEDBACK", input=rq.InputText())
    rq.create_review_queue(experiment_id, f"{settings.judge_name}-review", question_ids=[other.question_id])
    before = writes(dbx)
    with pytest.raises(WorkspaceNotReadyError, match="JUDGELOOP_JUDGE_NAME"):
        workspace.for_settings(settings).open_labeling(experiment_id, trace_ids, "")
    assert writes(dbx) == before


def test_databricks_prompt_lives_in_unity_catalog_with_its_alias(dbx):
    from judgeloop.prompt_optimization import prompts

    settings = load_settings()
    connect(settings)
    state = prompts.ensure_registered(settings)
    assert (state.name, state.version, state.production_version) == ("main.judgeloop.judgeloop_agent_system_prompt", 1, 1)
    prompts.tag_version(state.name, 1, {"judgeloop.checked": "yes"})
    assert prompts.version_tags(state.name, 1)["judgeloop.checked"] == "yes"
    assert prompts.production(settings).template == settings.agent_system_prompt
    assert not prompts.ensure_registered(settings).created
