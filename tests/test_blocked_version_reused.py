"""A re-alignment after a blocked gate, on the same alignment labels, measures the version already
built from them again instead of registering a copy of it."""

import mlflow
from mlflow.entities import AssessmentSource

from judgeloop import alignment, judges, labels, split
from judgeloop.labels import log_label
from tests.test_several_experts import HELDOUT, store  # noqa: F401  (the fixture)


def test_same_alignment_labels_reuse_the_unpromoted_version(store):  # noqa: F811
    settings, experiment_id, trace_ids = store
    aligned_ids, heldout_ids = split.split(trace_ids, settings.heldout_fraction)
    for tid, values in [*zip(aligned_ids, [(3, 1), (2, 4), (1, 2)]), *zip(heldout_ids, HELDOUT.values())]:
        for i, value in enumerate(values):
            log_label(tid, settings.judge_name, value, f"rater-{i + 1}")
    first = alignment.align(settings, experiment_id)
    assert first.new_version == 2  # registered, and (as after a blocked gate) never promoted

    # Only held-out labels change before the next run: the alignment side is what v2 learned.
    t1 = heldout_ids[0]
    current, _ = labels.current_labels(settings, experiment_id)
    old = next(l for l in current if l.trace_id == t1 and l.reviewer == "rater-1")
    mlflow.override_feedback(
        trace_id=t1, assessment_id=old.assessment_id, value=4,
        source=AssessmentSource(source_type="HUMAN", source_id="rater-1"),
    )

    again = alignment.align(settings, experiment_id)
    assert again.new_version == 2
    assert judges.latest_version(experiment_id, settings.judge_name) == 2  # no copy registered
    # v2's held-out scores were stored by the first run: measuring it again pays nothing.
    assert again.after_scores.paid == 0 and again.after_scores.reused == len(heldout_ids)
    assert again.after.n == len(heldout_ids)

    # Forced, it aligns afresh and registers a new version.
    forced = alignment.align(settings, experiment_id, force=True)
    assert forced.new_version == 3
