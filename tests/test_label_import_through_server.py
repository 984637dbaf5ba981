"""`labels import` through a tracking server whose database this shell cannot reach (a team's
remote server) keeps several labels in flight, and still writes every label exactly once, reports
progress per batch, and a re-import writes nothing. (Beside `judgeloop up`, whose database is
known, the labels go into the database instead: tests/test_label_import_export.py.)"""

import threading
import time

import pytest

from judgeloop.sme_labels import labels
from judgeloop.tracing import feedbackqa, production
from judgeloop.sme_labels.label_files import importing
from judgeloop.settings import load_settings
from judgeloop.stack.store import connect
from tests.conftest import feedbackqa_root
from tests.test_concurrent_label_imports import server, valid_per_pair  # noqa: F401  (fixture)

REVIEWERS = [f"rater-{i}" for i in range(1, 7)]


@pytest.mark.slow
def test_labels_go_through_a_server_several_at_a_time_each_once(home, server, tmp_path, monkeypatch):  # noqa: F811
    url, backend = server
    monkeypatch.delenv("JUDGELOOP_BACKEND_STORE_URI")  # only the server's URL is known here
    settings = load_settings()
    assert settings.resolved_backend_store_uri is None
    experiment_id = connect(settings)
    items = feedbackqa.load_items(feedbackqa_root(), "WHO", limit=10)
    trace_ids = list(production.seed_traces(experiment_id, items).values())
    path = tmp_path / "labels.csv"
    rows = [f"{t},{1 + (i + j) % 4},comment {i}-{j},{r}" for i, t in enumerate(trace_ids) for j, r in enumerate(REVIEWERS)]
    path.write_text("trace_id,value,comment,reviewer\n" + "\n".join(rows) + "\n")
    monkeypatch.setattr(importing, "BATCH_SIZE", 25)

    real, lock, state = labels.log_label, threading.Lock(), {"now": 0, "most": 0}

    def counted(*args, **kwargs):
        with lock:
            state["now"] += 1
            state["most"] = max(state["most"], state["now"])
        try:
            time.sleep(0.05)  # a slower server: requests overlap whenever the import sends them together
            return real(*args, **kwargs)
        finally:
            with lock:
                state["now"] -= 1

    monkeypatch.setattr(labels, "log_label", counted)
    progress = []
    report = importing.import_labels(settings, experiment_id, path, progress=progress.append)
    assert report.written == len(rows) == 60
    assert state["most"] > 1, "labels were sent one at a time"
    assert len([line for line in progress if line.startswith("written ")]) == 3  # after 25, 50, and the end

    counts = valid_per_pair(backend, settings.judge_name)
    assert len(counts) == 60 and max(counts.values()) == 1
    again = importing.import_labels(settings, experiment_id, path)
    assert again.written == 0 and again.edited == 0 and again.unchanged == 60
