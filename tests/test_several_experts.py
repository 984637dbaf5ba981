"""Several experts per trace: one consensus label per trace is what MemAlign learns from and what
the judge is measured against; the human ceiling covers every pair of experts."""

import shutil
from fractions import Fraction

import pytest

from judgeloop.judging import alignment, judges, split
from judgeloop.sme_labels import experts
from judgeloop.stand_in_models.fake_llm import CALLS
from judgeloop.sme_labels.labels import HumanLabel, log_label
from judgeloop.settings import load_settings
from judgeloop.stack.store import connect


def label(trace, reviewer, value, updated_ms=0):
    return HumanLabel(f"a-{trace}-{reviewer}", trace, "answer_quality", value, None, reviewer, updated_ms)


@pytest.mark.parametrize(
    "values,expected",
    [
        ([1, 1, 2], 1),
        ([4, 3, 4], 4),
        ([1, 2, 3], 2),  # all differ: the middle one (MemAlign would keep the newest)
        ([3, 1], 1),  # an even number: the lower middle value
        ([2, 4, 4, 1], 2),
        ([3.0, 3, 2.0], 3),  # floats as the MLflow UI stores them
    ],
)
def test_consensus_is_the_lower_median(values, expected):
    settings = load_settings()
    group = [label("t", f"rater-{i}", v, updated_ms=i) for i, v in enumerate(values)]
    assert int(experts.consensus(settings, group).value) == expected


def test_pass_fail_consensus_is_the_majority_and_a_tie_fails(monkeypatch):
    monkeypatch.setenv("JUDGELOOP_FEEDBACK_TYPE", "pass_fail")
    settings = load_settings()
    assert experts.consensus(settings, [label("t", "a", True), label("t", "b", False), label("t", "c", True)]).value is True
    assert experts.consensus(settings, [label("t", "a", True), label("t", "b", False)]).value is False


# Three experts on three traces (1-4 scale). Scale positions (value - 1):
#   t1: r1=0 r2=0 r3=1    t2: r1=3 r2=3 r3=3    t3: r1=1 r2=1 r3=0
# Quadratic-weighted kappa = 1 - observed/expected mean squared difference:
#   r1|r2: identical ratings                     -> 1
#   r1|r3: observed (1+0+1)/3 = 2/3; expected: every a against every b,
#          a=0: 1+9+0, a=3: 4+0+9, a=1: 0+4+1 -> 28/9;   1 - (2/3)/(28/9) = 11/14
#   r2|r3: same ratings as r1|r3                  -> 11/14
# Pooled over the 9 (trace, pair) combinations, each trace weighing one: observed 4/9, expected
# 28/9 (both sides use 0, 1 and 3 three times each) -> 1 - 4/28 = 6/7. The first two experts alone would say 1.
HELDOUT = {"t1": (1, 1, 2), "t2": (4, 4, 4), "t3": (2, 2, 1)}


def test_human_ceiling_pools_every_pair_of_experts():
    settings = load_settings()
    grouped = {t: [label(t, f"rater-{i + 1}", v) for i, v in enumerate(vs)] for t, vs in HELDOUT.items()}
    ceiling = experts.ceiling(settings, grouped)
    assert ceiling.reviewer_pairs == 3 and ceiling.traces == 3
    assert ceiling.kappa == pytest.approx(float(Fraction(6, 7)))
    assert ceiling.pair_count == 9  # 3 pairs x 3 traces
    assert ceiling.estimates["exact"].value == pytest.approx(5 / 9)  # r1|r2 3 of 3, r1|r3 1 of 3, r2|r3 1 of 3


def test_a_trace_weighs_one_whatever_its_number_of_experts():
    """Two experts disagreeing completely on t1 and three agreeing on t2: 1 of 2 traces agree, not 3 of 4 pairs."""
    settings = load_settings()
    grouped = {
        "t1": [label("t1", "rater-1", 1), label("t1", "rater-2", 4)],
        "t2": [label("t2", f"rater-{i}", 3) for i in (1, 2, 3)],
    }
    assert experts.ceiling(settings, grouped).estimates["exact"].value == pytest.approx(0.5)


@pytest.fixture
def store(home, template, monkeypatch):
    state, experiment_id, trace_ids = template
    shutil.copytree(state, home)
    # Exactly three of the six traces held out, whatever ids the store gave them.
    scores = sorted(split.heldout_score(t) for t in trace_ids)
    monkeypatch.setenv("JUDGELOOP_HELDOUT_FRACTION", str((scores[2] + scores[3]) / 2))
    monkeypatch.setenv("JUDGELOOP_MIN_ALIGNMENT_LABELS", "3")
    settings = load_settings()
    assert connect(settings) == experiment_id
    judges.ensure_base_judge(settings, experiment_id, settings.judge_model)
    return settings, experiment_id, trace_ids


def test_three_experts_become_one_consensus_label_per_trace_before_memalign(store):
    settings, experiment_id, trace_ids = store
    aligned_ids, heldout_ids = split.split(trace_ids, settings.heldout_fraction)
    assert len(aligned_ids) == len(heldout_ids) == 3
    # Alignment side: two experts who disagree, a 2-against-1 trace, three who all differ.
    alignment_side = dict(zip(aligned_ids, [(3, 1), (2, 4, 4), (1, 2, 3)]))
    expected_consensus = dict(zip(aligned_ids, [1, 4, 2]))
    for tid, values in [*alignment_side.items(), *zip(heldout_ids, HELDOUT.values())]:
        for i, value in enumerate(values):
            log_label(tid, settings.judge_name, value, f"rater-{i + 1}", f"rater-{i + 1} on {tid}: {value}")

    result = alignment.align(settings, experiment_id)

    assert result.new_version == 2
    assert result.label_rule == experts.CONSENSUS_RULE
    assert result.alignment_labels == 8 and result.alignment_traces == 3  # 8 labels in, 3 consensus labels learned
    assert result.heldout_labels == 9 and result.heldout_traces == 3
    # MemAlign distilled exactly the three consensus examples: nothing dropped behind our back.
    assert CALLS["guideline_examples"] == 3
    remembered = {ex._trace_id: int(ex.result) for ex in result.judge._episodic_memory}
    assert remembered == expected_consensus
    # Measured against one consensus label per held-out trace, not one pair per expert.
    assert result.after.n == result.before.n == 3
    assert result.human_ceiling.reviewer_pairs == 3
    assert result.human_ceiling.kappa == pytest.approx(6 / 7)
    assert result.human_ceiling.traces == result.comparison.traces == 3  # on the traces the judges were compared on


def test_held_out_edits_re_measure_the_judge_in_use(store):
    """Labels changed only on held-out traces: nothing to re-align, but the agreement shown is
    measured on the held-out labels as they are now, never repeated from the last alignment."""
    import mlflow
    from mlflow.entities import AssessmentSource

    from judgeloop.sme_labels import labels

    settings, experiment_id, trace_ids = store
    aligned_ids, heldout_ids = split.split(trace_ids, settings.heldout_fraction)
    for tid, values in [*zip(aligned_ids, [(3, 1), (2, 4, 4), (1, 2, 3)]), *zip(heldout_ids, HELDOUT.values())]:
        for i, value in enumerate(values):
            log_label(tid, settings.judge_name, value, f"rater-{i + 1}")
    first = alignment.align(settings, experiment_id)
    judges.promote(experiment_id, first.new_version)
    # Rows: the held-out consensus values 1..4 (t1=1, t2=4, t3=2).
    assert [sum(row) for row in first.after.confusion] == [1, 1, 0, 1]

    # Two experts revise t2 from 4 to 1 in the UI (an override, as the review app writes it).
    t2 = heldout_ids[1]
    current, _ = labels.current_labels(settings, experiment_id)
    for old in [l for l in current if l.trace_id == t2 and l.reviewer in ("rater-1", "rater-2")]:
        mlflow.override_feedback(
            trace_id=t2, assessment_id=old.assessment_id, value=1,
            source=AssessmentSource(source_type="HUMAN", source_id=old.reviewer),
        )

    again = alignment.align(settings, experiment_id)
    assert again.new_version is None and "already aligned" in again.skipped_reason
    assert [sum(row) for row in again.current.confusion] == [2, 1, 0, 0]  # t2's consensus is now 1
    # The re-measured judge is the one in use, and the ceiling is on the same (current) labels.
    assert again.human_ceiling.pair_count == 9


def test_same_alignment_labels_reuse_the_unpromoted_version(store):
    """A re-alignment after a blocked gate, on the same alignment labels, measures the version
    already built from them again instead of registering a copy of it."""
    settings, experiment_id, trace_ids = store
    aligned_ids, heldout_ids = split.split(trace_ids, settings.heldout_fraction)
    for tid, values in [*zip(aligned_ids, [(3, 1), (2, 4), (1, 2)]), *zip(heldout_ids, HELDOUT.values())]:
        for i, value in enumerate(values):
            log_label(tid, settings.judge_name, value, f"rater-{i + 1}")
    first = alignment.align(settings, experiment_id)
    assert first.new_version == 2  # registered, and (as after a blocked gate) never promoted

    # Only held-out labels change before the next run: the alignment side is what v2 learned.
    t1 = heldout_ids[0]
    import mlflow
    from mlflow.entities import AssessmentSource

    from judgeloop.sme_labels import labels

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
