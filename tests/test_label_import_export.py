"""`judgeloop labels import/export/notify`: files of SME labels in and out of MLflow, and the re-align trigger."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import mlflow
import pytest
from mlflow import MlflowClient

from judgeloop.judging import judges
from judgeloop.sme_labels import labels
from judgeloop.sme_labels.notify import decide_notify
from judgeloop_assets import dagster_client
from judgeloop.cli import main
from judgeloop.sme_labels.labels import log_label
from judgeloop.settings import load_settings



@pytest.fixture
def store(template_store):
    return template_store


def assessments(trace_ids) -> list:
    client = MlflowClient()
    return [a for tid in trace_ids for a in client.get_trace(tid).info.assessments or []]


def current(settings, experiment_id) -> dict:
    found, _ = labels.current_labels(settings, experiment_id)
    return {(label.trace_id, label.reviewer): (label.value, label.comment) for label in found}


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_good_csv_is_written_as_human_labels(store, tmp_path, capsys):
    settings, experiment_id, (t1, t2, t3, *_) = store
    path = tmp_path / "labels.csv"
    path.write_text(
        "trace_id,value,comment,reviewer\n"
        f"{t1},3,clear answer,rater-1\n"
        f'{t2},1,"off topic, and\nwrong",rater-2\n'  # quoted comment over two lines
        f"{t3}, 4 ,,rater-1\n"
    )
    code, out, err = run(capsys, "labels", "import", str(path))
    assert code == 0, err
    assert "written 3, edited 0, unchanged 0, rejected 0" in out
    assert current(settings, experiment_id) == {
        (t1, "rater-1"): (3, "clear answer"),
        (t2, "rater-2"): (1, "off topic, and\nwrong"),
        (t3, "rater-1"): (4, None),
    }
    stored = assessments([t1, t2, t3])
    assert {a.source.source_type for a in stored} == {"HUMAN"}
    assert {a.name for a in stored} == {settings.judge_name}
    assert all(isinstance(a.value, int) for a in stored)  # "3" in the CSV is stored as 3


def test_good_jsonl_is_written(store, tmp_path, capsys):
    settings, experiment_id, (t1, t2, *_) = store
    path = tmp_path / "labels.jsonl"
    path.write_text(
        json.dumps({"trace_id": t1, "value": 2, "comment": None, "reviewer": "rater-1"}) + "\n\n"
        + json.dumps({"trace_id": t2, "value": "4", "reviewer": "rater-2", "comment": "good\u2028line"}) + "\n"
    )
    code, out, err = run(capsys, "labels", "import", str(path))
    assert code == 0, err
    assert "written 2, edited 0, unchanged 0, rejected 0" in out
    assert current(settings, experiment_id) == {(t1, "rater-1"): (2, None), (t2, "rater-2"): (4, "good\u2028line")}


def test_pass_fail_values_from_csv_text(store, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("JUDGELOOP_FEEDBACK_TYPE", "pass_fail")
    settings = load_settings()
    _, experiment_id, (t1, t2, t3, *_) = store
    path = tmp_path / "labels.csv"
    path.write_text(f"trace_id,value,reviewer\n{t1},Pass,r1\n{t2},false,r1\n{t3},maybe,r1\n")
    code, _, err = run(capsys, "labels", "import", str(path), "--allow-partial")
    assert code == 1
    assert "line 4: value 'maybe' is not pass/fail" in err
    assert current(settings, experiment_id) == {(t1, "r1"): (True, None), (t2, "r1"): (False, None)}


def test_every_bad_row_is_reported_and_nothing_is_written(store, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("JUDGELOOP_REVIEWERS", "rater-1,rater-2")
    _, experiment_id, trace_ids = store
    t1, t2, t3, t4, t5, t6 = trace_ids
    path = tmp_path / "labels.csv"
    path.write_text(
        "trace_id,value,comment,reviewer\n"       # 1
        f"{t1},3,fine,rater-1\n"                  # 2 good
        "tr-does-not-exist,3,,rater-1\n"          # 3 unknown trace
        f"{t2},7,,rater-1\n"                      # 4 out of range
        f"{t3},great,,rater-1\n"                  # 5 wrong type
        f"{t4},2,no reviewer,\n"                  # 6 missing reviewer
        ",2,,rater-2\n"                           # 7 missing trace id
        f"{t5},,,rater-2\n"                       # 8 missing value
        f"{t6},2,,rater-2,extra\n"                # 9 malformed: too many fields
        f"{t6},2.5,,rater-2\n"                    # 10 not a whole step
        f"{t1},4,again,rater-1\n"                 # 11 same trace and reviewer as line 2
        f'{t2},2,"two\nlines",rater-2\n'          # 12-13 good, spans two lines
        f"{t3},1,,mallory\n"                      # 14 reviewer not assigned
        f'{t4},1,"unterminated,rater-2\n'         # 15 malformed quoting, to the end of file
    )
    code, out, err = run(capsys, "labels", "import", str(path))
    assert code == 1
    expected = {
        3: "unknown trace id 'tr-does-not-exist'",
        4: "value 7 is outside 1-4",
        5: "value 'great' is not a number",
        6: "missing reviewer",
        7: "missing trace id",
        8: "missing value",
        9: "malformed row: 5 fields, the header has 4",
        10: "value 2.5 is not a whole step",
        11: "same trace and reviewer as line 2",
        14: "reviewer 'mallory' is not assigned",
        15: "malformed CSV",
    }
    reported = [line for line in err.splitlines() if ": line " in line]
    assert len(reported) == len(expected), err
    for number, reason in expected.items():
        assert any(f"line {number}: " in line and reason in line for line in reported), (number, reason, err)
    assert "line 2:" not in err and "line 12:" not in err
    assert "nothing written: 11 bad row(s)" in out
    assert "written 0, edited 0, unchanged 0, rejected 11" in out
    assert assessments(trace_ids) == []


def test_bad_jsonl_rows(store, tmp_path, capsys):
    _, _, (t1, t2, *_) = store
    path = tmp_path / "labels.jsonl"
    path.write_text(
        json.dumps({"trace_id": t1, "value": 3, "reviewer": "r1"}) + "\n"          # 1 good
        + "{not json\n"                                                              # 2
        + "[1, 2]\n"                                                                 # 3
        + json.dumps({"trace_id": t2, "value": 3, "reviewer": "r1", "score": 1}) + "\n"  # 4 unknown key
        + json.dumps({"trace_id": t2, "value": True, "reviewer": "r1"}) + "\n"      # 5 bool for likert
        + json.dumps({"trace_id": t2, "value": 3, "reviewer": 42}) + "\n"           # 6 reviewer not text
    )
    code, _, err = run(capsys, "labels", "import", str(path))
    assert code == 1
    for number, reason in {
        2: "not valid JSON", 3: "expected a JSON object", 4: "unknown key(s) 'score'",
        5: "value True is not a number", 6: "reviewer must be text",
    }.items():
        assert f"line {number}: " in err and reason in err.split(f"line {number}: ")[1].splitlines()[0], (number, err)
    assert assessments([t1, t2]) == []


def test_allow_partial_writes_only_the_good_rows(store, tmp_path, capsys):
    settings, experiment_id, (t1, t2, t3, *_) = store
    path = tmp_path / "labels.csv"
    path.write_text(f"trace_id,value,comment,reviewer\n{t1},3,,r1\n{t2},9,,r1\n{t3},2,,r2\n")
    code, out, err = run(capsys, "labels", "import", str(path), "--allow-partial")
    assert code == 1  # something was bad
    assert "line 3: value 9 is outside 1-4" in err
    assert "written 2, edited 0, unchanged 0, rejected 1" in out
    assert current(settings, experiment_id) == {(t1, "r1"): (3, None), (t3, "r2"): (2, None)}


def test_importing_twice_changes_nothing(store, tmp_path, capsys):
    _, _, trace_ids = store
    t1, t2, t3, *_ = trace_ids
    path = tmp_path / "labels.csv"
    path.write_text(f"trace_id,value,comment,reviewer\n{t1},3,ok,r1\n{t2},1,,r1\n{t3},4,great,r2\n")
    assert run(capsys, "labels", "import", str(path))[0] == 0
    before = sorted(a.assessment_id for a in assessments(trace_ids))
    code, out, _ = run(capsys, "labels", "import", str(path))
    assert code == 0
    assert "written 0, edited 0, unchanged 3, rejected 0" in out
    assert sorted(a.assessment_id for a in assessments(trace_ids)) == before
    assert len(before) == 3


def test_an_edited_row_overrides_the_old_label(store, tmp_path, capsys):
    settings, experiment_id, (t1, t2, *_) = store
    path = tmp_path / "labels.csv"
    path.write_text(f"trace_id,value,comment,reviewer\n{t1},1,first thought,r1\n{t2},2,,r1\n")
    run(capsys, "labels", "import", str(path))
    (old,) = assessments([t1])
    path.write_text(f"trace_id,value,comment,reviewer\n{t1},4,on reflection,r1\n{t2},2,,r1\n")
    code, out, _ = run(capsys, "labels", "import", str(path))
    assert code == 0
    assert "written 0, edited 1, unchanged 1, rejected 0" in out
    by_id = {a.assessment_id: a for a in assessments([t1])}
    assert len(by_id) == 2
    assert by_id[old.assessment_id].valid is False and by_id[old.assessment_id].value == 1
    (new,) = [a for a in by_id.values() if a.assessment_id != old.assessment_id]
    assert new.valid is not False and new.value == 4 and new.rationale == "on reflection"
    assert new.overrides == old.assessment_id and new.source.source_type == "HUMAN" and new.source.source_id == "r1"
    assert current(settings, experiment_id)[(t1, "r1")] == (4, "on reflection")
    # A comment-only change is an edit too.
    path.write_text(f"trace_id,value,comment,reviewer\n{t1},4,on reflection,r1\n{t2},2,now with a comment,r1\n")
    assert "edited 1, unchanged 1" in run(capsys, "labels", "import", str(path))[1]


def test_a_stored_out_of_range_label_is_corrected_by_override(store, tmp_path, capsys):
    settings, experiment_id, (t1, *_) = store
    bad = log_label(t1, settings.judge_name, 7, "r1")  # the UI's number box allows this
    path = tmp_path / "labels.csv"
    path.write_text(f"trace_id,value,comment,reviewer\n{t1},4,,r1\n")
    assert "edited 1" in run(capsys, "labels", "import", str(path))[1]
    assert {a.assessment_id: a.valid for a in assessments([t1])}[bad] is False
    assert current(settings, experiment_id) == {(t1, "r1"): (4, None)}


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_export_then_import_changes_nothing(store, tmp_path, capsys, fmt):
    settings, experiment_id, trace_ids = store
    t1, t2, t3, t4, *_ = trace_ids
    log_label(t1, settings.judge_name, 3, "r1", 'says "yes", then\nno')
    log_label(t2, settings.judge_name, 1, "r1", "  ")  # a blank comment is kept as it is
    edited = log_label(t3, settings.judge_name, 1, "r2", "first")
    mlflow.override_feedback(
        trace_id=t3, assessment_id=edited, value=2, rationale="second",
        source=mlflow.entities.AssessmentSource(source_type="HUMAN", source_id="r2"),
    )
    log_label(t4, settings.judge_name, 9, "r2")  # unusable: not exported
    log_label(t4, settings.judge_name, 4, "r1", "ünïcode")
    path = tmp_path / f"export.{fmt}"
    code, _, err = run(capsys, "labels", "export", str(path))
    assert code == 0 and f"exported 4 current label(s) as {fmt}" in err
    before = sorted(a.assessment_id for a in assessments(trace_ids))
    code, out, err = run(capsys, "labels", "import", str(path))
    assert code == 0, err
    assert "written 0, edited 0, unchanged 4, rejected 0" in out
    assert sorted(a.assessment_id for a in assessments(trace_ids)) == before


def test_export_to_stdout(store, capsys):
    settings, _, (t1, *_) = store
    log_label(t1, settings.judge_name, 2, "r1", "meh")
    code, out, _ = run(capsys, "labels", "export", "--format", "jsonl")
    assert code == 0
    assert [json.loads(line) for line in out.splitlines()] == [
        {"trace_id": t1, "value": 2, "comment": "meh", "reviewer": "r1", "trace_key": "WHO-0", "judge": "answer_quality"}
    ]
    code, out, _ = run(capsys, "labels", "export", "-")
    assert out.splitlines() == ["trace_id,value,comment,reviewer,trace_key,judge", f"{t1},2,meh,r1,WHO-0,answer_quality"]


def test_a_row_for_another_judge_is_refused_naming_its_line(store, tmp_path, capsys):
    """A label counts for the judge of its name only: a file's judge column must name this judge."""
    settings, experiment_id, (t1, t2, *_) = store
    path = tmp_path / "labels.csv"
    path.write_text(f"trace_id,value,reviewer,judge\n{t1},3,r1,answer_quality\n{t2},1,r1,tone\n")
    code, _, err = run(capsys, "labels", "import", str(path))
    assert code != 0 and "line 3" in err and "judge 'tone' is not this deployment's judge 'answer_quality'" in err
    assert labels.current_labels(settings, experiment_id)[0] == []  # nothing written
    path.write_text(f"trace_id,value,reviewer,judge\n{t1},3,r1,answer_quality\n{t2},1,r1,\n")  # empty: this judge
    code, _, _ = run(capsys, "labels", "import", str(path))
    assert code == 0 and len(labels.current_labels(settings, experiment_id)[0]) == 2


@pytest.mark.parametrize(
    "name,text,message",
    [
        ("labels.txt", "trace_id,value,reviewer\n", "cannot tell the format"),
        ("labels.csv", "trace,value,reviewer\nx,1,r\n", "line 1: unknown column(s) 'trace'; missing column(s) trace_id"),
        ("labels.csv", "", "the file is empty"),
        ("missing.csv", None, "no such file"),
    ],
)
def test_unusable_files(store, tmp_path, capsys, name, text, message):
    path = tmp_path / name
    if text is not None:
        path.write_text(text)
    code, _, err = run(capsys, "labels", "import", str(path))
    assert code == 2 and message in err


def test_dry_run_writes_nothing(store, tmp_path, capsys):
    _, _, (t1, t2, *_) = store
    path = tmp_path / "labels.csv"
    path.write_text(f"trace_id,value,comment,reviewer\n{t1},3,,r1\n{t2},3,,r1\n")
    code, out, _ = run(capsys, "labels", "import", str(path), "--dry-run")
    assert code == 0 and "would write 2, edit 0, leave 0 unchanged" in out
    assert assessments([t1, t2]) == []


# --- labels notify: the decision ------------------------------------------------------------


@pytest.fixture
def judged(store, monkeypatch):
    """The store with a promoted base judge; alignment minimums low enough for a few labels."""
    monkeypatch.setenv("JUDGELOOP_MIN_ALIGNMENT_LABELS", "0")
    monkeypatch.setenv("JUDGELOOP_MIN_HELDOUT_LABELS", "0")
    settings, experiment_id, trace_ids = store
    settings = load_settings()
    judges.ensure_base_judge(settings, experiment_id, settings.judge_model)
    return settings, experiment_id, trace_ids


def _aligned_version(settings, experiment_id, newest_label_ms, promote=True) -> int:
    previous = judges.promoted_version(experiment_id)
    version = judges.register(judges.build_judge(settings, settings.judge_model), experiment_id)
    judges.record_lineage(
        experiment_id, version,
        {"kind": "aligned", "previous_version": previous, "newest_label_ms": newest_label_ms,
         "kappa_before": 0.1, "kappa_after": 0.5, "label_count": 3},
    )
    if promote:
        judges.promote(experiment_id, version)
    return version


def test_notify_decision(store, judged, monkeypatch):
    settings, experiment_id, (t1, t2, t3, t4, *_) = judged
    decision = decide_notify(settings, experiment_id)
    assert not decision.launch and "nothing new" in decision.reason  # no labels at all

    log_label(t1, settings.judge_name, 3, "r1")
    log_label(t2, settings.judge_name, 2, "r1")
    decision = decide_notify(settings, experiment_id)
    # The base judge was aligned on nothing: every usable label is new.
    assert decision.launch and decision.new_labels == 2 and decision.promoted_version == 1
    assert decision.tags["judgeloop/trigger"] == "notify"

    newest = max(label.updated_ms for label in labels.current_labels(settings, experiment_id)[0])
    v2 = _aligned_version(settings, experiment_id, newest)
    decision = decide_notify(settings, experiment_id)
    assert not decision.launch and f"judge v{v2} is aligned on every usable label" in decision.reason

    log_label(t3, settings.judge_name, 4, "r2")
    decision = decide_notify(settings, experiment_id)
    assert decision.launch and decision.new_labels == 1 and decision.aligned_up_to_ms == newest

    # Those labels were then tried by v3, whose gate failed (not promoted): no relaunch, unless forced.
    newest = max(label.updated_ms for label in labels.current_labels(settings, experiment_id)[0])
    v3 = _aligned_version(settings, experiment_id, newest, promote=False)
    decision = decide_notify(settings, experiment_id)
    assert not decision.launch and f"judge v{v3}" in decision.reason and "gate failed" in decision.reason
    assert decide_notify(settings, experiment_id, force=True).launch
    log_label(t4, settings.judge_name, 1, "r2")
    assert decide_notify(settings, experiment_id).launch

    monkeypatch.setenv("JUDGELOOP_MIN_ALIGNMENT_LABELS", "100")
    decision = decide_notify(load_settings(), experiment_id)
    assert not decision.launch and "too few labelled traces" in decision.reason


def test_notify_without_a_promoted_judge(store, capsys):
    settings, experiment_id, (t1, *_) = store
    log_label(t1, settings.judge_name, 3, "r1")
    decision = decide_notify(settings, experiment_id)
    assert not decision.launch and "no judge is promoted" in decision.reason
    code, out, _ = run(capsys, "labels", "notify", "--dagster-url", "http://127.0.0.1:9")  # never contacted
    assert code == 0 and "no judge is promoted" in out


# --- labels notify: the HTTP part against a fake GraphQL endpoint ----------------------------


class FakeDagster:
    """A tiny /graphql endpoint: records request bodies, answers runsOrError and launches."""

    def __init__(self, active_runs=(), launch_result=None):
        self.bodies: list[dict] = []
        self.active = [{"runId": run_id, "status": "STARTED"} for run_id in active_runs]
        self.launch_result = launch_result or {"__typename": "LaunchRunSuccess", "run": {"runId": "run-1234"}}
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                fake.bodies.append({"path": self.path, **body})
                if "launchPipelineExecution" in body["query"]:
                    data = {"launchPipelineExecution": fake.launch_result}
                else:
                    data = {"runsOrError": {"__typename": "Runs", "results": fake.active}}
                payload = json.dumps({"data": data}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()

    def launches(self) -> list[dict]:
        return [b for b in self.bodies if "launchPipelineExecution" in b["query"]]


def test_launch_posts_dagsters_own_mutation():
    with FakeDagster() as dagster:
        run_id = dagster_client.DagsterClient(dagster.url).launch("realign_judge", {"judgeloop/trigger": "notify"})
    assert run_id == "run-1234"
    (body,) = dagster.bodies
    assert body["path"] == "/graphql"
    assert "launchPipelineExecution(executionParams: $executionParams)" in body["query"]
    params = body["variables"]["executionParams"]
    assert {k: params["selector"][k] for k in ("repositoryLocationName", "repositoryName", "pipelineName")} == {
        "repositoryLocationName": "judgeloop", "repositoryName": "__repository__", "pipelineName": "realign_judge",
    }
    assert params["executionMetadata"]["tags"] == [{"key": "judgeloop/trigger", "value": "notify"}]


def test_the_names_the_client_launches_exist_in_the_definitions():
    from judgeloop_assets.definitions import defs
    from judgeloop.run_names import FOUNDATION_JOB, REALIGN_JOB

    assert defs.resolve_job_def(FOUNDATION_JOB) and defs.resolve_job_def(REALIGN_JOB)


def test_graphql_documents_match_the_dagster_schema():
    from dagster_graphql.schema import create_schema
    from graphql import parse, validate

    schema = create_schema().graphql_schema
    for document in dagster_client.DOCUMENTS:
        assert validate(schema, parse(document)) == []
    # The one private method of DagsterGraphQLClient the client relies on (see its docstring).
    assert callable(getattr(dagster_client.DagsterGraphQLClient, "_execute", None))


def test_notify_command_launches_realign(judged, capsys, monkeypatch):
    settings, experiment_id, (t1, t2, *_) = judged
    log_label(t1, settings.judge_name, 3, "r1")
    with FakeDagster() as dagster:
        monkeypatch.setenv("JUDGELOOP_DAGSTER_URL", dagster.url)
        code, out, err = run(capsys, "labels", "notify")
    assert code == 0, err
    assert "launched realign_judge run run-1234" in out
    assert [b["variables"]["filter"]["pipelineName"] for b in dagster.bodies if "runsOrError" in b["query"]] == [
        "realign_judge"
    ]
    (launch,) = dagster.launches()
    tags = {t["key"]: t["value"] for t in launch["variables"]["executionParams"]["executionMetadata"]["tags"]}
    assert tags["judgeloop/trigger"] == "notify" and tags["judgeloop/new_labels"] == "1"

    # Nothing new after alignment: no request at all.
    newest = max(label.updated_ms for label in labels.current_labels(settings, experiment_id)[0])
    _aligned_version(settings, experiment_id, newest)
    with FakeDagster() as dagster:
        code, out, _ = run(capsys, "labels", "notify", "--dagster-url", dagster.url)
    assert code == 0 and "nothing new" in out and dagster.bodies == []


def test_notify_does_not_stack_runs_and_reports_failures(judged, capsys):
    settings, _, (t1, *_) = judged
    log_label(t1, settings.judge_name, 3, "r1")
    with FakeDagster(active_runs=["busy-1"]) as dagster:
        code, out, _ = run(capsys, "labels", "notify", "--dagster-url", dagster.url)
    assert code == 0 and "run busy-1 is already queued or running" in out and dagster.launches() == []

    failure = {"__typename": "PipelineNotFoundError", "message": "Could not find Pipeline judgeloop.__repository__.realign_judge"}
    with FakeDagster(launch_result=failure) as dagster:
        code, _, err = run(capsys, "labels", "notify", "--dagster-url", dagster.url)
    assert code == 1 and "PipelineNotFoundError" in err and "Could not find Pipeline" in err

    code, _, err = run(capsys, "labels", "notify", "--dagster-url", "http://127.0.0.1:9")
    assert code == 1 and "cannot reach Dagster at http://127.0.0.1:9" in err


def test_an_interrupted_import_can_be_rerun(store, tmp_path, capsys, monkeypatch):
    settings, experiment_id, (t1, t2, t3, *_) = store
    path = tmp_path / "labels.csv"
    path.write_text(f"trace_id,value,comment,reviewer\n{t1},3,,r1\n{t2},2,,r1\n{t3},1,,r1\n")
    real, calls = labels.log_label, []

    def flaky(*args, **kwargs):
        calls.append(args)
        if len(calls) == 2:
            raise RuntimeError("database is locked")
        return real(*args, **kwargs)

    monkeypatch.setattr(labels, "log_label", flaky)
    code, _, err = run(capsys, "labels", "import", str(path))
    assert code == 1 and "writing stopped at line 3 after 1 of 3 change(s)" in err and "database is locked" in err
    monkeypatch.setattr(labels, "log_label", real)
    code, out, _ = run(capsys, "labels", "import", str(path))
    assert code == 0 and "written 2, edited 0, unchanged 1, rejected 0" in out
    assert len(current(settings, experiment_id)) == 3


NASTY_COMMENTS = [
    "bare\rcarriage return", "line\nfeed", "windows\r\nline end", 'says "yes"', "a, b", "tab\there",
    "=HYPERLINK(\"x\")", "+cmd|' /C calc'!A0", "-1 point", "@SUM(A1:A9)", "ünïcødé ✓", "ends with\r",
]


def test_export_import_round_trip_is_byte_identical_for_nasty_comments(store, tmp_path, capsys):
    settings, experiment_id, trace_ids = store
    for i, comment in enumerate(NASTY_COMMENTS):
        log_label(trace_ids[i % len(trace_ids)], settings.judge_name, 1 + i % 4, f"rater-{i}", comment)
    first, second = tmp_path / "first.csv", tmp_path / "second.csv"
    code, _, err = run(capsys, "labels", "export", str(first))
    assert code == 0, err
    code, out, err = run(capsys, "labels", "import", str(first))
    assert code == 0, err
    assert f"written 0, edited 0, unchanged {len(NASTY_COMMENTS)}, rejected 0" in out
    assert {c for _, c in current(settings, experiment_id).values()} == set(NASTY_COMMENTS)
    code, _, err = run(capsys, "labels", "export", str(second))
    assert code == 0, err
    assert first.read_bytes() == second.read_bytes()


def test_line_numbers_are_physical_lines(store, tmp_path, capsys):
    settings, _, (t1, t2, *_) = store
    path = tmp_path / "labels.csv"
    # Line 2's comment holds a bare \r, line 3's a \r\n inside quotes (two physical lines);
    # the bad value on line 5 must be reported as line 5.
    path.write_bytes(
        b"trace_id,value,comment,reviewer\n"
        b'%s,3,"one\rline",r1\n'
        b'%s,2,"two\r\nlines",r2\n'
        b"%s,11,too high,r3\n" % (t1.encode(), t1.encode(), t2.encode())
    )
    code, out, err = run(capsys, "labels", "import", str(path))
    assert code != 0
    assert "line 5" in out + err and "line 4" not in out + err



def test_an_import_beside_a_server_writes_into_its_database(home, tmp_path, monkeypatch):
    """Beside a running judgeloop up (running.json names the sqlite file behind its MLflow server)
    the labels go into the database through MLflow's own store, not one HTTP request each."""
    from mlflow.store.tracking.rest_store import RestStore
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    from judgeloop.sme_labels.label_files import importing
    from judgeloop.stack.store import connect
    from judgeloop.tracing import feedbackqa, production
    from tests.conftest import feedbackqa_root
    from tests.local_mlflow_server import mlflow_server

    with mlflow_server(home, tmp_path / "logs") as (url, backend):
        # What running.json hands a shell beside `judgeloop up`.
        monkeypatch.setenv("JUDGELOOP_TRACKING_URI", url)
        monkeypatch.setenv("JUDGELOOP_BACKEND_STORE_URI", backend)
        settings = load_settings()
        assert (settings.resolved_tracking_uri, settings.resolved_backend_store_uri) == (url, backend)
        experiment_id = connect(settings)
        items = feedbackqa.load_items(feedbackqa_root(), "WHO", limit=6)
        trace_ids = list(production.seed_traces(experiment_id, items).values())
        writes = {"server": 0, "database": 0}
        for store, where in ((RestStore, "server"), (SqlAlchemyStore, "database")):
            original = store.create_assessment

            def counting(self, assessment, _original=original, _where=where):
                writes[_where] += 1
                return _original(self, assessment)

            monkeypatch.setattr(store, "create_assessment", counting)
        path = tmp_path / "labels.csv"
        path.write_text("trace_id,value,comment,reviewer\n" + "".join(f"{t},3,,r1\n" for t in trace_ids))
        report = importing.import_labels(settings, experiment_id, path)
        assert report.written == len(trace_ids)
        assert writes == {"server": 0, "database": len(trace_ids)}
        assert mlflow.get_tracking_uri() == url  # the process's store is given back
        assert len(labels.current_labels(settings, experiment_id)[0]) == len(trace_ids)  # read through the server too
        assert importing.writers_for(backend) == 1  # sqlite: one writer
