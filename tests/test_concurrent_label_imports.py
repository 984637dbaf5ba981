"""Two `judgeloop labels import` processes at once, with different values for the same (trace,
reviewer) pairs, through one local `mlflow server`: afterwards one valid label per pair, and the
sensor's count is the number of pairs."""

import re
import subprocess

import pytest
import sqlalchemy as sa

from judgeloop.sme_labels import duplicate_labels, labels, waiting
from judgeloop.tracing import feedbackqa, production
from judgeloop.settings import load_settings
from judgeloop.stack.store import connect
from tests.conftest import feedbackqa_root
from tests.e2e_support import JUDGELOOP, clean_env
from tests.local_mlflow_server import mlflow_server

REVIEWERS = [f"rater-{i}" for i in range(1, 11)]
SUMMARY = re.compile(r"written (\d+), edited (\d+), unchanged (\d+), rejected (\d+)")


@pytest.fixture
def server(home, tmp_path, monkeypatch):
    """A local `mlflow server` on a sqlite store in the state folder; this process uses it too."""
    with mlflow_server(home, tmp_path / "logs") as (url, backend):
        monkeypatch.setenv("JUDGELOOP_TRACKING_URI", url)
        monkeypatch.setenv("JUDGELOOP_BACKEND_STORE_URI", backend)
        yield url, backend


def write_file(path, trace_ids, value_of) -> None:
    lines = ["trace_id,value,comment,reviewer"]
    lines += [f"{t},{value_of(i, j)},,{r}" for i, t in enumerate(trace_ids) for j, r in enumerate(REVIEWERS)]
    path.write_text("\n".join(lines) + "\n")


def valid_per_pair(backend: str, judge_name: str) -> dict:
    engine = sa.create_engine(backend)
    with engine.connect() as conn:
        rows = conn.execute(sa.text(
            "SELECT trace_id, source_id, COUNT(*) FROM assessments WHERE source_type = 'HUMAN' AND name = :name "
            "AND valid GROUP BY trace_id, source_id"
        ), {"name": judge_name}).all()
    engine.dispose()
    return {(t, r): n for t, r, n in rows}


@pytest.mark.slow
def test_two_concurrent_imports_leave_one_valid_label_per_pair(home, server, tmp_path):
    url, backend = server
    settings = load_settings()
    experiment_id = connect(settings)
    items = feedbackqa.load_items(feedbackqa_root(), "WHO", limit=10)
    trace_ids = list(production.seed_traces(experiment_id, items).values())
    assert len(trace_ids) == 10
    write_file(tmp_path / "a.csv", trace_ids, lambda i, j: 1 + (i + j) % 4)
    write_file(tmp_path / "b.csv", trace_ids, lambda i, j: 1 + (i + j + 2) % 4)  # a different value for every pair

    env = clean_env(home, JUDGELOOP_TRACKING_URI=url, JUDGELOOP_BACKEND_STORE_URI=backend)
    imports = [
        subprocess.Popen([str(JUDGELOOP), "labels", "import", str(tmp_path / name)], env=env, cwd=tmp_path,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for name in ("a.csv", "b.csv")
    ]
    outputs = [p.communicate(timeout=600) for p in imports]
    for process, (out, err) in zip(imports, outputs):
        assert process.returncode == 0, err
    changes = [SUMMARY.search(out) for out, _ in outputs]
    assert all(changes), outputs
    written = sum(int(m.group(1)) + int(m.group(2)) for m in changes)
    # Both imports changed pairs the other one wrote too: the race really happened (100 pairs, 100 rows each).
    assert written > 100, outputs

    counts = valid_per_pair(backend, settings.judge_name)
    assert len(counts) == 100
    assert max(counts.values()) == 1, {k: n for k, n in counts.items() if n > 1}
    current, _ = labels.current_labels(settings, experiment_id)
    assert len(current) == 100
    # The sensor (and `judgeloop status`) count current labels only.
    assert waiting.waiting_labels(settings, experiment_id, labels.Cursor()).count == 100
    assert duplicate_labels.repair(settings, experiment_id) == 0
