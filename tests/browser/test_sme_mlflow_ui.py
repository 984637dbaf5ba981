"""Scenario 2, the SME in the MLflow UI: label N traces in the review queue; the judge re-aligns by itself.

The SME only uses the link Dagster published (labeling_session's ``labeling_url``) and the
MLflow UI. After the N-th Submit nothing else is done: sme_labels_sensor notices the labels,
reports sme_labels and starts realign_judge, whose aligned_judge materialization must count
them. The labels are then read back from MLflow as HUMAN feedback with the SME's comments.
"""

import json
import re
import time
import uuid

import pytest

from tests.browser import ui
from tests.browser.support import LABEL_THRESHOLD, LEFT_FOR_A_PERSON, SENSOR, wait_until

pytestmark = pytest.mark.browser

RATINGS = [4, 1, 3, 2, 4]  # on the judge's 1-4 scale
REALIGN_TIMEOUT = 240  # sensor interval (5 s) + realign run (MemAlign, measurement, GEPA) with fake models


def test_sme_labels_in_review_queue_and_judge_realigns(stack, page):
    from mlflow import MlflowClient
    from playwright.sync_api import expect

    # Precondition: enough expert labels for MemAlign to align and measure, and a sensor with
    # nothing waiting, so the browser's labels are exactly the next batch.
    stack.ensure_labels_released()
    stack.wait_sensor_idle()
    labeling = stack.latest_metadata("labeling_session")["metadata"]
    url = labeling["labeling_url"]
    assert f"selectedQueueId={labeling['queue_id']}" in url, url
    before = stack.latest_metadata("aligned_judge")
    labels_before = before["metadata"]["labels_total"] if before else 0
    known_runs = {r["runId"] for r in stack.runs(50)}

    # The demo's raters left the last traces to a person and printed where they wait: a link to
    # this review queue that opens the first item needing review.
    invitation = re.search(r"(\d+) demo trace\(s\) were left for you: .* at (\S+startReview=true)", stack.release_output)
    assert invitation, f"no review invitation after the demo's release:\n{stack.release_output}"
    assert int(invitation.group(1)) == LEFT_FOR_A_PERSON >= LABEL_THRESHOLD
    link = invitation.group(2)
    assert link.startswith(url), (link, url)  # the queue labeling_session published, selected

    # The SME opens the printed link and finds the judge's review queue (or its first item).
    page.goto(link)
    ui.close_assistant(page)
    page.locator(f"{ui.START_REVIEW}, {ui.CATEGORICAL}").first.wait_for()
    labelling_started = time.monotonic()
    if page.locator(ui.START_REVIEW).is_visible():
        expect(page.get_by_text(labeling["queue_name"]).first).to_be_visible()
        page.locator(ui.START_REVIEW).click()
    client = MlflowClient(stack.mlflow_url)
    labelled_by_raters = {label.trace_id for label in _human_labels(client, labeling["experiment_id"])}
    assert labelled_by_raters, "the demo's raters labelled nothing"
    session = uuid.uuid4().hex[:8]
    given = {}
    last_submit = None
    for index in range(LABEL_THRESHOLD):
        scale = page.locator(ui.CATEGORICAL)  # the 1-4 scale is a dropdown
        expect(scale).to_be_visible()
        wait_until(lambda: ui.selected_item(page), 15, interval=0.2, message="focused review names its trace")
        trace_id = ui.selected_item(page)
        assert trace_id not in given, f"MLflow showed {trace_id} again after it was labelled"
        assert trace_id not in labelled_by_raters, f"{trace_id} was labelled by the demo's raters, not left for a person"
        # The page shows that trace's question (its request is {"question": ...}).
        question = json.loads(client.get_trace(trace_id).data.request)["question"]
        snippet = max(re.findall(r"[A-Za-z0-9 ]+", question[:60]), key=len).strip()
        expect(page.get_by_text(snippet, exact=False).first).to_be_visible()
        done_before = ui.reviewed_count(page)
        rating = RATINGS[index]
        comment = f"browser SME {session} #{index + 1}: rated {rating} after reading the answer"
        ui.choose(page, scale, str(rating))
        page.locator(ui.RATIONALE).fill(comment)
        submit = page.locator(ui.SUBMIT)
        expect(submit).to_be_enabled()
        submit.click()
        last_submit = time.time()
        # Submit stores the label, completes the item and moves on to the next unreviewed one.
        expect(page.get_by_text(re.compile(rf"^{done_before + 1} of \d+ reviewed"))).to_be_visible()
        if index < LABEL_THRESHOLD - 1:
            wait_until(lambda: ui.selected_item(page) not in (None, trace_id), 15, interval=0.2,
                       message="MLflow moved to the next unreviewed item")
        given[trace_id] = (rating, comment)
    stack.timings["sme_labelling_in_browser"] = round(time.monotonic() - labelling_started, 1)

    # No other action: the sensor picks the labels up and re-aligns the judge.
    def realigned():
        for run in stack.runs(5):
            if run["runId"] not in known_runs and run["status"] == "FAILURE":
                raise AssertionError(f"run {run['runId']} ({run['jobName']}) failed:\n{stack.run_failures(run['runId'])}")
        for materialization in stack.materializations("aligned_judge", limit=5):
            if materialization["runId"] in known_runs or materialization["timestamp"] / 1000 < last_submit:
                continue
            if materialization["metadata"]["labels_total"] >= labels_before + LABEL_THRESHOLD:
                return materialization
        return None

    started = time.monotonic()
    new = wait_until(
        realigned, REALIGN_TIMEOUT, interval=2,
        message=f"an aligned_judge materialization counting the {LABEL_THRESHOLD} browser labels",
        details=lambda: f"sensor: {stack.sensor_state()}\nruns: {stack.runs(5)}\n{stack.logs_tail()}",
    )
    stack.timings["sensor_realign_after_last_submit"] = round(time.monotonic() - started, 1)
    assert new["metadata"]["labels_total"] == labels_before + LABEL_THRESHOLD, new["metadata"]
    run = stack.run(new["runId"])
    tags = {t["key"]: t["value"] for t in run["tags"]}
    assert run["jobName"] == "realign_judge", run
    assert tags.get("dagster/sensor_name") == SENSOR, tags
    assert tags.get("judgeloop/new_labels") == str(LABEL_THRESHOLD), tags
    stack.wait_for_run(new["runId"])  # downstream (optimized_prompt) finishes too

    # In MLflow: HUMAN feedback named like the judge, the comment as rationale.
    for trace_id, (rating, comment) in given.items():
        trace = client.get_trace(trace_id)
        human = [
            a for a in trace.info.assessments
            if a.source.source_type == "HUMAN" and a.rationale == comment
        ]
        assert len(human) == 1, [(a.name, a.source, a.rationale) for a in trace.info.assessments]
        [label] = human
        assert label.name == "answer_quality"
        # The dropdown stores the chosen step as text; it counts as that rating.
        assert label.feedback is not None and label.value == str(rating)
        assert label.valid is not False


def _human_labels(client, experiment_id: str) -> list:
    """Every HUMAN assessment in the demo's experiment, read through the MLflow server."""
    found, token = [], None
    while True:
        page = client.search_traces(experiment_ids=[experiment_id], max_results=200, include_spans=False, page_token=token)
        for trace in page:
            found.extend(a for a in trace.info.assessments or [] if a.source.source_type == "HUMAN")
        token = page.token
        if not token:
            return found
