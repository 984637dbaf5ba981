"""Labels exported from one store import into another that holds the same traffic under new
trace ids, matched by the trace's own key (the demo's item key, or the client request id)."""

import csv
import io
import json

import mlflow
import pytest

from judgeloop.tracing import demo
from judgeloop.cli import main
from judgeloop.sme_labels.labels import current_labels, log_label
from judgeloop.settings import load_settings
from judgeloop.stack.store import connect


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def request(client_request_id: str, question: str) -> str:
    """A trace the application logged with its own request id."""
    with mlflow.start_span(name="support_agent") as span:
        span.set_inputs({"question": question})
        span.set_outputs("an answer")
        mlflow.update_current_trace(client_request_id=client_request_id)
    return span.trace_id


def seeded_store(monkeypatch, home, duplicated_request=False):
    """A store seeded by the demo, plus traces the application keyed by its own request ids."""
    monkeypatch.setenv("JUDGELOOP_HOME", str(home))
    settings = load_settings()
    experiment_id = connect(settings)
    by_item = demo.seed(settings, experiment_id)
    by_request = {"req-42": request("req-42", "Is it safe to travel?"), "req-dup": request("req-dup", "And now?")}
    if duplicated_request:
        request("req-dup", "A retry logged under the same request id")
    return settings, experiment_id, by_item, by_request


def rows_of(path, fmt) -> list[dict]:
    text = path.read_text(encoding="utf-8")
    if fmt == "csv":
        return list(csv.DictReader(io.StringIO(text, newline="")))
    return [json.loads(line) for line in text.splitlines()]


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_labels_move_between_stores_by_trace_key(home, tmp_path, monkeypatch, capsys, fmt):
    monkeypatch.setenv("JUDGELOOP_DEMO_ITEMS", "4")
    settings, experiment_a, items_a, requests_a = seeded_store(monkeypatch, tmp_path / "store-a")
    keys = sorted(items_a)
    log_label(items_a[keys[0]], settings.judge_name, 4, "rater-1", "=spot on")
    log_label(items_a[keys[0]], settings.judge_name, 3, "rater-2", "fine")
    log_label(items_a[keys[1]], settings.judge_name, 1, "rater-1", "wrong\r\npassage")
    log_label(requests_a["req-42"], settings.judge_name, 2, "rater-1", "vague")
    log_label(requests_a["req-dup"], settings.judge_name, 2, "rater-2", None)
    exported = tmp_path / f"from-a.{fmt}"
    assert run(capsys, "labels", "export", str(exported))[0] == 0
    assert sorted((r["trace_key"], r["reviewer"]) for r in rows_of(exported, fmt)) == sorted(
        [(keys[0], "rater-1"), (keys[0], "rater-2"), (keys[1], "rater-1"), ("req-42", "rater-1"), ("req-dup", "rater-2")]
    )

    settings, experiment_b, items_b, requests_b = seeded_store(monkeypatch, tmp_path / "store-b", duplicated_request=True)
    assert set(items_b) == set(items_a) and not set(items_b.values()) & set(items_a.values())  # new trace ids
    code, out, err = run(capsys, "labels", "import", str(exported))
    assert code == 1
    (problem,) = [line for line in err.splitlines() if ": line " in line]
    assert "unknown trace id" in problem and "trace key 'req-dup' is ambiguous: 2 traces carry it" in problem
    assert current_labels(settings, experiment_b)[0] == []  # nothing written

    code, out, err = run(capsys, "labels", "import", str(exported), "--allow-partial")
    assert "written 4, edited 0, unchanged 0, rejected 1; 4 row(s) matched by trace key" in out, err
    found = {(label.trace_id, label.reviewer): (label.value, label.comment) for label in current_labels(settings, experiment_b)[0]}
    assert found == {
        (items_b[keys[0]], "rater-1"): (4, "=spot on"),
        (items_b[keys[0]], "rater-2"): (3, "fine"),
        (items_b[keys[1]], "rater-1"): (1, "wrong\r\npassage"),
        (requests_b["req-42"], "rater-1"): (2, "vague"),
    }
    code, out, _ = run(capsys, "labels", "import", str(exported), "--allow-partial")
    assert "written 0, edited 0, unchanged 4, rejected 1" in out  # matched by key again: nothing to change

    # Back in the first store the same file still matches by trace id, not by key.
    monkeypatch.setenv("JUDGELOOP_HOME", str(tmp_path / "store-a"))
    connect(load_settings())
    code, out, err = run(capsys, "labels", "import", str(exported))
    assert code == 0 and "written 0, edited 0, unchanged 5, rejected 0" in out and "matched by trace key" not in out, err


def test_a_key_alone_names_the_trace_and_an_unknown_key_is_a_bad_row(home, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("JUDGELOOP_DEMO_ITEMS", "2")
    settings, experiment_id, items, requests = seeded_store(monkeypatch, tmp_path / "store")
    first = sorted(items)[0]
    path = tmp_path / "labels.csv"
    path.write_text(
        "trace_key,value,reviewer\n"
        f"{first},3,rater-1\n"
        "req-42,2,rater-1\n"
        "req-nobody-sent,1,rater-1\n"
        f"{first},4,rater-1\n"
    )
    code, out, err = run(capsys, "labels", "import", str(path))
    assert code == 1
    assert f"line 4: no trace of experiment {experiment_id} carries trace key 'req-nobody-sent'" in err
    assert "line 5: same trace and reviewer as line 2" in err
    assert "missing trace id" not in err
