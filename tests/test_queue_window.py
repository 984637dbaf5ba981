"""The review queue shows a short pending window in the active order, re-ranked after a
re-alignment promotes a new judge; its held-out items are never reordered by priority."""

from mlflow.genai import review_queues

from judgeloop.judging import judges, split
from judgeloop.settings import load_settings
from judgeloop.sme_labels import labeling, labels, queue_order, queue_ranking
from judgeloop.stack.store import connect
from judgeloop.tracing import demo, feedbackqa, traces
from tests.support import materialize, metadata

WINDOW = 15


def demo_foundation(instance, monkeypatch, items: int):
    """``items`` FeedbackQA traces seeded and the foundation materialized: (settings, experiment id,
    trace id by item key, the run's result)."""
    monkeypatch.setenv("JUDGELOOP_DEMO_ITEMS", str(items))
    settings = load_settings()
    experiment_id = connect(settings)
    by_key = demo.seed(settings, experiment_id)
    return settings, experiment_id, by_key, materialize(instance)


def pending_ids(queue_id: str) -> list[str]:
    return [item.item_id for item in labeling.queue_items(queue_id, status="pending")]


def test_the_pending_window_reranks_after_a_realignment_and_keeps_the_heldout_order(home, instance, monkeypatch):
    monkeypatch.setenv("JUDGELOOP_QUEUE_WINDOW", str(WINDOW))
    monkeypatch.setenv("JUDGELOOP_GATE_MARGIN", "2.0")  # the aligned judge is promoted
    # The window starts in another order (insertion), so a re-ranked window must differ from it.
    monkeypatch.setenv("JUDGELOOP_QUEUE_ORDER", "insertion")
    # 100 traces: the active order's top then leaves out some of the insertion window's items
    # whatever the random trace ids are (all of them ranking on top has odds around 1e-4).
    settings, experiment_id, by_key, foundation = demo_foundation(instance, monkeypatch, 100)
    assert foundation.success
    tagged = traces.tagged_trace_ids(experiment_id)
    queue = labeling.find_queue(settings, experiment_id)
    before = pending_ids(queue.queue_id)
    assert set(before) == set(tagged[:WINDOW])

    # Experts label six alignment and up to three held-out items of the window in the review form
    # (label + item completed; no judgeloop code runs); held-out traces outside the window make up
    # the three a re-alignment needs (labelled in MLflow's Traces tab).
    rating = {by_key[item.key]: item.ratings[0].rating for item in demo.items(settings)}
    heldout = [t for t in before if split.is_heldout(t, settings.heldout_fraction)][:3]
    aligning = [t for t in before if not split.is_heldout(t, settings.heldout_fraction)][:6]
    outside = [t for t in tagged if t not in before and split.is_heldout(t, settings.heldout_fraction)][: 3 - len(heldout)]
    assert len(aligning) == 6
    for trace_id in heldout + aligning + outside:
        labels.log_label(trace_id, settings.judge_name, feedbackqa.to_scale(rating[trace_id], settings), "alice", "form")
        if trace_id not in outside:
            review_queues.set_review_queue_item_status(queue.queue_id, item_id=trace_id, status="complete", completed_by="alice")
    labelled = heldout + aligning + outside
    stale = [t for t in before if t not in labelled]
    # One more is labelled outside the form (MLflow's Traces tab): its item stays "pending" until judgeloop looks.
    elsewhere = stale.pop()
    labels.log_label(elsewhere, settings.judge_name, feedbackqa.to_scale(rating[elsewhere], settings), "bob", "traces tab")

    monkeypatch.setenv("JUDGELOOP_QUEUE_ORDER", "active")
    run = materialize(instance, ["aligned_judge"])
    assert run.success
    aligned = metadata(run, "aligned_judge")
    assert aligned["promoted"] is True and judges.promoted_version(experiment_id) == aligned["judge_version"]
    settings = load_settings()
    new_order = queue_ranking.rank(settings, experiment_id, tagged).order
    after = pending_ids(queue.queue_id)
    # The window is the new order's top, topped up to its size; stale items the new order puts lower left.
    assert set(after) == set(new_order[:WINDOW]) and len(after) == WINDOW
    reranked_out = [t for t in stale if t not in after]
    assert reranked_out and aligned["queue_items_reranked_out"] == len(reranked_out)
    statuses = {item.item_id: str(getattr(item.status, "value", item.status)) for item in labeling.queue_items(queue.queue_id)}
    assert statuses[elsewhere] == "complete"  # labelled, so done: not re-ranked out of the queue
    # Held-out items come in the held-out stream's own order (seeded, never by priority).
    heldout_stream = queue_order.heldout_order([t for t in tagged if split.is_heldout(t, settings.heldout_fraction)])
    unlabelled_stream = [t for t in heldout_stream if t not in labelled]
    queued_heldout = [t for t in new_order[:WINDOW] if split.is_heldout(t, settings.heldout_fraction)]
    assert queued_heldout == unlabelled_stream[: len(queued_heldout)]


def test_insertion_order_and_window_zero_queue_every_trace(home, instance, monkeypatch):
    monkeypatch.setenv("JUDGELOOP_QUEUE_ORDER", "insertion")
    monkeypatch.setenv("JUDGELOOP_QUEUE_WINDOW", "0")
    settings, experiment_id, _, result = demo_foundation(instance, monkeypatch, 12)
    assert result.success
    session = metadata(result, "labeling_session")
    assert session["queue_order"].startswith("insertion") and session["queue_window"] == 0
    queue = labeling.find_queue(settings, experiment_id)
    queued = [i.item_id for i in labeling.queue_items(queue.queue_id)]
    assert sorted(queued) == sorted(traces.tagged_trace_ids(experiment_id)) and session["items_added"] == 12


def test_released_labels_land_on_traces_outside_the_window_and_the_window_is_topped_up(home, instance, monkeypatch):
    monkeypatch.setenv("JUDGELOOP_QUEUE_WINDOW", "5")
    settings, experiment_id, _, foundation = demo_foundation(instance, monkeypatch, 12)
    assert foundation.success
    session = metadata(foundation, "labeling_session")  # the demo's defaults: active order
    assert session["queue_order"].startswith("active:") and "one trace per normalized question" in session["queue_order"]
    assert session["queue_window"] == 5 and session["items_added"] == 5 == session["items_pending"]
    queue = labeling.find_queue(settings, experiment_id)
    window = pending_ids(queue.queue_id)
    assert len(window) == 5

    release = demo.release_labels(settings, experiment_id, 12)  # the demo's raters, in item order
    used, _ = labels.current_labels(settings, experiment_id)
    labelled = {label.trace_id for label in used}
    assert release.written == 12 and len(used) == 12
    assert labelled - set(window), "every released label fell inside the window: nothing shows labels land outside it"
    after = pending_ids(queue.queue_id)
    assert len(after) == 5 and not set(after) & labelled  # topped up with unlabelled traces only
    kept = [t for t in window if t not in labelled]
    order = queue_ranking.rank(settings, experiment_id, traces.tagged_trace_ids(experiment_id)).order
    assert set(after) == set(kept) | set([t for t in order if t not in kept][: 5 - len(kept)])  # the next in the order
