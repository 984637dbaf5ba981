"""The demo's simulated raters leave the last traces "needs review" for a person, and say where."""

from judgeloop import workspace
from judgeloop.sme_labels import labels, waiting
from judgeloop.tracing import demo
from judgeloop.settings import load_settings
from judgeloop.stack.store import connect
from tests.support import materialize

FOUNDATION = ["base_judge", "tagged_traces", "eval_dataset", "labeling_session"]


def test_the_demo_leaves_part_of_the_queue_for_a_person(home, instance, monkeypatch):
    monkeypatch.setenv("JUDGELOOP_DEMO_ITEMS", "12")
    settings = load_settings()
    experiment_id = connect(settings)
    demo.seed(settings, experiment_id)
    assert materialize(instance, FOUNDATION).success

    left = demo.left_for_a_person(settings, experiment_id, 4)
    release = demo.release_labels(settings, experiment_id, 1000, left_for_review=4)
    assert release.written > 0 and release.remaining == 0
    assert demo.pending_labels(settings, experiment_id, 4) == []
    used, _ = labels.current_labels(settings, experiment_id)
    assert not {label.trace_id for label in used} & set(left), "the simulated raters labelled a trace left for a person"

    queue = workspace.for_settings(settings).review_queue(experiment_id, settings.resolved_mlflow_ui_url)
    assert queue.pending == len(left) == 4
    invitation = demo.review_invitation(settings, experiment_id, 4)
    assert f"{queue.url}&startReview=true" in invitation and "4 demo trace(s) were left for you" in invitation

    # A new user's labels there are what waits for the next re-alignment.
    after_release = labels.changed_since(settings, experiment_id).cursor
    for trace_id in left[:2]:
        labels.log_label(trace_id, settings.judge_name, 2, "new-user", "my own rating")
    assert waiting.waiting_labels(settings, experiment_id, after_release).count == 2
