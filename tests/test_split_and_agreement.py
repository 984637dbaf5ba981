import pytest

from judgeloop import agreement, split
from judgeloop.labels import HumanLabel
from judgeloop.settings import load_settings


def test_split_is_stable_as_labels_accumulate():
    ids = [f"tr-{i:04d}" for i in range(300)]
    align_small, held_small = split.split(ids[:100], 1 / 3)
    align_big, held_big = split.split(ids, 1 / 3)
    assert set(held_small) <= set(held_big) and set(align_small) <= set(align_big)
    assert not set(held_big) & set(align_big)
    assert 0.25 < len(held_big) / 300 < 0.42
    assert split.is_heldout("tr-0001", 1 / 3) == split.is_heldout("tr-0001", 1 / 3)


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


def test_human_ceiling_pairs_two_reviewers():
    settings = load_settings()

    def label(trace, reviewer, value):
        return HumanLabel(f"a-{trace}-{reviewer}", trace, "answer_quality", value, None, reviewer, 0)

    grouped = {
        "t1": [label("t1", "rater-1", 4), label("t1", "rater-2", 4)],
        "t2": [label("t2", "rater-2", 1), label("t2", "rater-1", 2)],
        "t3": [label("t3", "rater-1", 3)],
    }
    ceiling = agreement.human_ceiling(settings, grouped)
    assert ceiling.n == 2 and ceiling.exact == 0.5

    # Labels read back through a tracking server (or given in the MLflow UI) are floats.
    as_floats = {t: [label(t, l.reviewer, float(l.value)) for l in ls] for t, ls in grouped.items()}
    assert agreement.human_ceiling(settings, as_floats).exact == 0.5


def test_constant_ratings_do_not_produce_nan():
    result = agreement.measure(load_settings(), [3, 3, 3], [3, 3, 3])
    assert result.kappa == 0.0 and result.exact == 1.0
