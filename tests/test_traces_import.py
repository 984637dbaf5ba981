"""`judgeloop traces import`: traffic from a file becomes production traces the loop reads."""

import json

from judgeloop.tracing import trace_files, traces
from judgeloop.cli import main
from judgeloop.settings import load_settings
from judgeloop.stack.store import connect
from tests.support import materialize, metadata

FOUNDATION = ["base_judge", "tagged_traces", "eval_dataset", "labeling_session", "agent_prompt"]


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def _all(experiment_id):
    return {t.info.client_request_id: t for t in traces.search_all(experiment_id)}


def test_rows_become_keyed_production_traces_and_a_reimport_changes_nothing(home, tmp_path, capsys):
    path = _jsonl(tmp_path / "traffic.jsonl", [
        {"question": "How do I reset my password?", "answer": "Use the link on the sign-in page.", "key": "req-1"},
        {"question": "Can I pay by card?", "answer": "Yes, all major cards.", "expectations": "Yes: Visa and Mastercard."},
        {"question": "Where is my order?", "answer": "See Orders.", "key": "req-3",
         "expectations": {"expected_response": "Orders > Track", "must_mention": "tracking"}},
    ])
    assert main(["traces", "import", str(path)]) == 0
    assert "logged 3 trace(s), 0 already present" in capsys.readouterr().out
    experiment_id = connect(load_settings())
    found = _all(experiment_id)
    derived = trace_files.derived_key("Can I pay by card?", "Yes, all major cards.")
    assert set(found) == {"req-1", "req-3", derived}
    trace = traces.read_many(experiment_id, [found["req-3"].info.trace_id])[found["req-3"].info.trace_id]
    root = next(s for s in trace.data.spans if s.parent_id is None)
    assert root.inputs == {"question": "Where is my order?"}
    assert root.outputs["choices"][0]["message"]["content"] == "See Orders."
    assert trace.info.tags["judgeloop.source"] == "import"
    expected = {a.name: a.value for a in trace.search_assessments(type="expectation")}
    assert expected == {"expected_response": "Orders > Track", "must_mention": "tracking"}

    # Idempotent by key: nothing is logged twice, also for rows without a key of their own.
    assert main(["traces", "import", str(path)]) == 0
    assert "logged 0 trace(s), 3 already present" in capsys.readouterr().out
    assert len(traces.search_all(experiment_id)) == 3


def test_a_reimport_with_expectations_adds_them_to_the_traces_already_there(home, tmp_path, capsys):
    rows = [{"question": f"Question {i}?", "answer": f"Answer {i}.", "key": f"k{i}"} for i in range(3)]
    assert main(["traces", "import", str(_jsonl(tmp_path / "a.jsonl", rows))]) == 0
    rows[1]["expectations"] = "The reference answer."
    assert main(["traces", "import", str(_jsonl(tmp_path / "b.jsonl", rows))]) == 0
    assert "expectations added to 1 existing trace(s)" in capsys.readouterr().out
    experiment_id = connect(load_settings())
    trace_id = _all(experiment_id)["k1"].info.trace_id
    trace = traces.read_many(experiment_id, [trace_id])[trace_id]
    assert [a.value for a in trace.search_assessments(type="expectation")] == ["The reference answer."]


def test_bad_rows_are_reported_by_line_and_nothing_is_written(home, tmp_path, capsys):
    path = tmp_path / "traffic.csv"
    path.write_text(
        "question,answer,key,expectations\n"
        "What is the refund window?,30 days.,r1,\n"
        "Is shipping free?,,r2,\n"  # line 3: no answer
        '"A question spanning\ntwo lines?",Yes.,r3,\n'  # lines 4-5: fine
        "Do you ship abroad?,Yes.,r1,\n"  # line 6: key of line 2
        'Any discount?,No.,r4,{"expected_response": \n'  # line 7: broken JSON object
    )
    assert main(["traces", "import", str(path)]) == 1
    err = capsys.readouterr()
    assert "line 3: field 'answer' is empty or missing" in err.err
    assert "line 6: key 'r1' repeats line 2" in err.err
    assert "line 7: field 'expectations' starts with '{' but is not a JSON object" in err.err
    assert "line 4" not in err.err and "nothing written: 3 bad row(s)" in err.out
    experiment_id = connect(load_settings())
    assert traces.search_all(experiment_id) == []

    path.write_text("question,reply\nWhat?,That.\n")
    assert main(["traces", "import", str(path)]) == 2
    assert "line 1: unknown column(s) 'reply'; missing column(s) answer" in capsys.readouterr().err


def test_large_files_report_progress(home, tmp_path, capsys):
    rows = [{"question": f"Question number {i}?", "answer": f"Answer {i}."} for i in range(trace_files.BATCH_SIZE + 1)]
    assert main(["traces", "import", "--dry-run", str(_jsonl(tmp_path / "big.jsonl", rows))]) == 0
    err = capsys.readouterr().err
    assert "read 501 row(s): 501 good, 0 bad" in err and "501 new trace(s) to log, 0 already present" in err


def test_imported_traffic_runs_through_the_foundation_with_its_expectations(home, tmp_path, instance):
    rows = [
        {"question": f"How do I fix problem {i} with my router?", "answer": f"Restart the router, then check cable {i}.",
         "key": f"ticket-{i}", **({"expectations": f"Restart it and check cable {i}."} if i % 2 else {})}
        for i in range(12)
    ]
    assert main(["traces", "import", str(_jsonl(tmp_path / "t.jsonl", rows))]) == 0
    result = materialize(instance, FOUNDATION)
    assert result.success
    assert metadata(result, "tagged_traces")["traces_tagged"] == 12
    meta = metadata(result, "eval_dataset")
    assert meta["record_count"] == 12 and meta["records_with_expectations"] == 6
    assert metadata(result, "labeling_session")["items_added"] == 12
