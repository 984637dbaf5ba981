"""What the expert sees in MLflow's review form: the judge's rubric, a scale that cannot be
left, answers as text, and queue items completed by labels that arrived by file.

A plain `mlflow server` over a store judgeloop prepared (demo traces, schema and queue as
labeling_session makes them): no Dagster, so these scenarios take seconds once the browser
is up.
"""

import os
import re
import time
from dataclasses import dataclass

import pytest

from tests.browser import ui
from tests.conftest import FAKE_MODELS, feedbackqa_root

pytestmark = pytest.mark.browser

HOST = "127.0.0.1"
ITEMS = 6
TIMEOUT_MS = 30_000  # the UI on a busy 2-core machine takes seconds per step


@dataclass
class ReviewStore:
    url: str
    experiment_id: str
    queue_id: str
    review_link: str
    passages: dict  # trace id -> the answer shown for it
    settings: object


@pytest.fixture(scope="module")
def review_store(tmp_path_factory):
    import mlflow

    from judgeloop.sme_labels import labeling
    from judgeloop.stack import servers
    from judgeloop.tracing import feedbackqa, production
    from judgeloop.settings import load_settings
    from judgeloop.stack.store import connect

    home = tmp_path_factory.mktemp("review-form") / "state"
    port = servers.free_port(HOST)
    url = f"http://{HOST}:{port}"
    stack = servers.Stack()
    with pytest.MonkeyPatch.context() as patch:
        for key in [k for k in os.environ if k.startswith("JUDGELOOP_")]:
            patch.delenv(key)
        patch.setenv("JUDGELOOP_HOME", str(home))
        patch.setenv("JUDGELOOP_FEEDBACKQA_PATH", str(feedbackqa_root()))
        for key, value in FAKE_MODELS.items():
            patch.setenv(key, value)
        settings = load_settings()
        experiment_id = connect(settings)
        items = feedbackqa.load_items(feedbackqa_root(), "WHO", limit=ITEMS)
        trace_ids = production.seed_traces(experiment_id, items)
        report = labeling.open_session(settings, experiment_id, list(trace_ids.values()), url)
        passages = {trace_ids[item.key]: item.passage for item in items}
        env = dict(os.environ, MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false")
        server = stack.start(
            "mlflow", servers.mlflow_command(HOST, port, settings.resolved_tracking_uri, home / "mlartifacts", False),
            env, home / "logs",
        )
        try:
            servers.wait_for_http(f"{url}/health", server, timeout=180)
            # From here on this process writes through the server, as a reviewer's tools would.
            patch.setenv("JUDGELOOP_TRACKING_URI", url)
            mlflow.set_tracking_uri(url)
            yield ReviewStore(url, experiment_id, report.queue_id, report.url, passages, load_settings())
        finally:
            stack.stop()


@pytest.fixture(autouse=True)
def _patient_expect():
    from playwright.sync_api import expect

    expect.set_options(timeout=TIMEOUT_MS)
    yield
    expect.set_options(timeout=5_000)


def _open_first_unreviewed(page, store: ReviewStore) -> str:
    from playwright.sync_api import expect

    page.goto(f"{store.review_link}&startReview=true")
    ui.close_assistant(page)
    expect(page.locator(ui.SUBMIT)).to_be_visible(timeout=60_000)  # first load of MLflow's bundle
    deadline = time.monotonic() + 15
    while ui.selected_item(page) is None and time.monotonic() < deadline:
        page.wait_for_timeout(200)
    return ui.selected_item(page)


def test_form_shows_rubric_enforces_the_scale_and_renders_the_answer(review_store, page):
    from playwright.sync_api import expect

    from judgeloop.sme_labels import labeling, labels

    trace_id = _open_first_unreviewed(page, review_store)
    assert trace_id in review_store.passages, trace_id

    # The judge's own criteria, not "rate as the judge should".
    rubric = labeling.rubric(review_store.settings)
    expect(page.get_by_text(rubric[:80], exact=False).first).to_be_visible()
    assert "as the judge" not in page.inner_text("body")

    # The answer reads as text: its lines are there, no literal "\n" anywhere on the form.
    passage = review_store.passages[trace_id]
    # A line of prose: a bare URL is rendered as a link whose text the UI may shorten.
    line = max((part.strip() for part in passage.split("\n") if "://" not in part), key=len)
    expect(page.get_by_text(line[:60], exact=False).first).to_be_visible()
    assert "\\n" not in page.inner_text("body")

    # A dropdown holding exactly the scale: there is no box to type a 5 into.
    expect(page.locator(ui.NUMERIC)).to_have_count(0)
    choose = page.locator(ui.CATEGORICAL)
    expect(choose).to_be_visible()
    assert ui.options(page, choose) == ["1", "2", "3", "4"]
    page.get_by_role("option", name="3", exact=True).click()
    page.locator(ui.RATIONALE).fill("on topic but misses the incubation period")
    page.locator(ui.SUBMIT).click()
    expect(page.get_by_text(re.compile(r"^1 of \d+ reviewed"))).to_be_visible()

    # The form stores the choice as text; judgeloop reads it as the rating 3.
    def stored():
        found, rejected = labels.current_labels(review_store.settings, review_store.experiment_id)
        return [label for label in found if label.trace_id == trace_id], rejected

    deadline = time.monotonic() + 15
    while not stored()[0] and time.monotonic() < deadline:
        time.sleep(0.5)
    [label], rejected = stored()
    assert labels.normalize(review_store.settings, label.value) == 3 and not rejected


def test_labels_imported_by_file_complete_their_queue_items(review_store, page, tmp_path):
    import json

    from playwright.sync_api import expect

    from judgeloop.sme_labels import labeling
    from judgeloop.sme_labels.label_files import importing

    def counts() -> tuple[int, int]:
        page.goto(review_store.review_link)
        ui.close_assistant(page)
        done = page.get_by_text(re.compile(r"^Completed \(\d+\)$"))
        expect(done.first).to_be_visible(timeout=60_000)
        waiting = page.get_by_text(re.compile(r"^Needs review \(\d+\)$")).first.inner_text()
        return int(re.search(r"\d+", done.first.inner_text()).group()), int(re.search(r"\d+", waiting).group())

    complete_before, pending_before = counts()
    pending = [item.item_id for item in labeling.queue_items(review_store.queue_id, status="pending")]
    assert len(pending) == pending_before >= 2
    path = tmp_path / "labels.jsonl"
    path.write_text("".join(
        json.dumps({"trace_id": trace_id, "value": value, "reviewer": "alice", "comment": "from the spreadsheet"}) + "\n"
        for trace_id, value in zip(pending[:2], (2, 4))
    ))
    report = importing.import_labels(review_store.settings, review_store.experiment_id, path)
    assert report.written == 2 and report.completed_items == 2

    # What the expert sees after the import, on a fresh load of the queue page.
    page.reload()
    ui.close_assistant(page)
    expect(page.get_by_text(f"Completed ({complete_before + 2})", exact=True)).to_be_visible()
    expect(page.get_by_text(f"Needs review ({pending_before - 2})", exact=True)).to_be_visible()
