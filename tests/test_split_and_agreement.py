import json
import math
import os
import subprocess
import sys

import pytest

from judgeloop.judging import agreement, alignment, gate, scores, split
from judgeloop.sme_labels import experts
from judgeloop.sme_labels.labels import HumanLabel
from judgeloop.settings import load_settings


def test_split_is_stable_as_labels_accumulate():
    ids = [f"tr-{i:04d}" for i in range(300)]
    align_small, held_small = split.split(ids[:100], 1 / 3)
    align_big, held_big = split.split(ids, 1 / 3)
    assert set(held_small) <= set(held_big) and set(align_small) <= set(align_big)
    assert not set(held_big) & set(align_big)
    assert 0.25 < len(held_big) / 300 < 0.42


# Pinned once: a trace must land on the same side in every process and on every machine,
# or labels from the held-out side leak into alignment as processes restart.
PINNED_HELDOUT = ["tr-0001", "tr-0003", "tr-0005", "tr-0008"]
SPLIT_IN_A_FRESH_PROCESS = (
    "import json; from judgeloop.judging import split; "
    "print(json.dumps([split.split([f'tr-{i:04d}' for i in range(12)], 1 / 3)[1], round(split.heldout_score('tr-0000'), 6)]))"
)


def test_split_is_pinned_to_known_values_across_processes():
    assert split.split([f"tr-{i:04d}" for i in range(12)], 1 / 3)[1] == PINNED_HELDOUT
    assert split.heldout_score("tr-0000") == pytest.approx(0.653748, abs=1e-6)
    for seed in ("1", "2"):  # Python's str hash differs per PYTHONHASHSEED; the split may not
        env = {**os.environ, "PYTHONHASHSEED": seed}
        out = subprocess.run([sys.executable, "-c", SPLIT_IN_A_FRESH_PROCESS], env=env, capture_output=True, text=True, check=True)
        assert json.loads(out.stdout) == [PINNED_HELDOUT, 0.653748]


def _result(before: float, after: float) -> alignment.AlignmentResult:
    def measured(kappa):
        return agreement.Agreement(n=10, exact=0.5, kappa=kappa, mae=None, labels=[], confusion=[])

    return alignment.AlignmentResult(
        judge_name="answer_quality", previous_version=1, new_version=2, skipped_reason=None,
        alignment_traces=10, heldout_traces=5, alignment_labels=10, heldout_labels=5, newest_label_ms=0,
        guidelines=[], before=measured(before), after=measured(after), human_ceiling=None, rejected=[],
    )


@pytest.mark.parametrize(
    "before,after,margin,passes",
    [
        (0.5, 0.25, 0.25, True),  # a fall of exactly the tolerance is allowed
        (0.5, 0.2421875, 0.25, False),  # a hair more is not
        (0.5, 0.5, 0.0, True),
        (0.5, 0.4921875, 0.0, False),  # tolerance 0 (the default): any fall blocks
        (0.5, 0.75, 0.05, True),
    ],
)
def test_gate_margin_at_its_boundary(before, after, margin, passes):
    decision = gate.decide(_result(before, after), margin)
    assert decision.passed is passes, decision.reason
    assert ("measured worse" in decision.reason) is (not passes)


def test_default_gate_margin_is_the_documented_one():
    from judgeloop.settings import Settings

    assert Settings.model_fields["gate_margin"].default == 0.0


def test_likert_metrics_against_hand_computed_values(monkeypatch):
    monkeypatch.delenv("JUDGELOOP_FEEDBACK_TYPE", raising=False)
    settings = load_settings(scale_min=1, scale_max=4)
    human = [1, 2, 3, 4]
    judged = [1, 2, 4, 4]
    result = agreement.measure(settings, human, judged)
    assert result.exact == 0.75
    assert result.mae == 0.25
    # Quadratic-weighted kappa by hand, weights (i-j)^2/9: observed sum w*O = (1/9)/4 = 1/36;
    # expected sum w_ij r_i c_j with r = [.25]*4, c = [.25,.25,0,.5] is .25*(.25*14+.25*6+.5*14)/9 = 1/3.
    assert result.kappa == pytest.approx(1 - (1 / 36) / (1 / 3), abs=1e-9)
    assert result.confusion == [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 0, 1], [0, 0, 0, 1]]


def test_pass_fail_uses_unweighted_kappa(monkeypatch):
    settings = load_settings(feedback_type="pass_fail")
    result = agreement.measure(settings, [True, True, False, False], [True, False, False, False])
    # po = 0.75, pe = 0.5*0.25 + 0.5*0.75 = 0.5 -> kappa 0.5
    assert result.kappa == pytest.approx(0.5)
    assert result.mae is None


def test_human_ceiling_of_two_reviewers():
    settings = load_settings()

    def label(trace, reviewer, value):
        return HumanLabel(f"a-{trace}-{reviewer}", trace, "answer_quality", value, None, reviewer, 0)

    grouped = {
        "t1": [label("t1", "rater-1", 4), label("t1", "rater-2", 4)],
        "t2": [label("t2", "rater-2", 1), label("t2", "rater-1", 2)],
        "t3": [label("t3", "rater-1", 3)],
    }
    ceiling = experts.ceiling(settings, grouped)
    assert ceiling.traces == 2 and ceiling.estimates["exact"].value == 0.5

    # Labels read back through a tracking server (or given in the MLflow UI) are floats.
    as_floats = {t: [label(t, l.reviewer, float(l.value)) for l in ls] for t, ls in grouped.items()}
    assert experts.ceiling(settings, as_floats).estimates["exact"].value == 0.5


@pytest.mark.parametrize("feedback_type", ["likert", "pass_fail"])
def test_kappa_and_metrics_equal_scikit_learns(monkeypatch, feedback_type):
    """The metrics are computed without scikit-learn (a run process need not import it); on
    random ratings, including one-sided and constant ones, they equal scikit-learn's."""
    import random

    from sklearn.metrics import accuracy_score, cohen_kappa_score, confusion_matrix, mean_absolute_error

    monkeypatch.delenv("JUDGELOOP_FEEDBACK_TYPE", raising=False)
    settings = load_settings(feedback_type=feedback_type, scale_min=1, scale_max=5)
    scale = agreement.scale_values(settings)
    positions = list(range(len(scale)))
    weights = "quadratic" if feedback_type == "likert" else None
    rng = random.Random(7)
    for case in range(300):
        n = rng.randint(1, 12)
        spread = rng.choice([1, 2, len(scale)])  # few distinct values make kappa undefined often
        human = [rng.choice(scale[:spread]) for _ in range(n)]
        judged = [rng.choice(scale[-spread:]) for _ in range(n)]
        result = agreement.measure(settings, human, judged)
        h, j = agreement._ordinal(human, scale), agreement._ordinal(judged, scale)
        expected = cohen_kappa_score(h, j, labels=positions, weights=weights, replace_undefined_by=0.0)
        assert result.kappa == pytest.approx(0.0 if math.isnan(expected) else expected, abs=1e-12), (case, human, judged)
        assert result.exact == pytest.approx(accuracy_score(h, j), abs=1e-12)
        assert result.confusion == confusion_matrix(h, j, labels=positions).tolist()
        if feedback_type == "likert":
            assert result.mae == pytest.approx(mean_absolute_error(h, j), abs=1e-12)


def test_constant_ratings_do_not_produce_nan():
    result = agreement.measure(load_settings(), [3, 3, 3], [3, 3, 3])
    assert result.kappa == 0.0 and result.exact == 1.0


def test_a_judge_answer_off_the_scale_is_counted_as_invalid_never_scored():
    """A 1-4 judge answering 9 (or words) is reported, not a KeyError and not a score."""
    from types import SimpleNamespace

    from mlflow.entities import Feedback

    settings = load_settings()
    answers = {"t1": 9, "t2": 3, "t3": "3", "t4": "very good", "t5": 0, "t6": 2}
    experts_say = {t: HumanLabel(f"a-{t}", t, "answer_quality", 3, None, "rater-1", 0) for t in answers}

    def judge(trace):
        return Feedback(name="answer_quality", value=answers[trace.info.trace_id])

    traces = [SimpleNamespace(info=SimpleNamespace(trace_id=t)) for t in answers]
    scored = scores.call_judge(settings, judge, traces)
    assert len(scored.invalid_answers) == 3  # 9, "very good" and 0
    measured = alignment.agreement_of(settings, scored, {t: [label] for t, label in experts_say.items()})
    assert measured.n == 3  # 3, "3" and 2 are on the scale
    assert measured.exact == pytest.approx(2 / 3)
