"""Live agreement: the promoted judge against newly arrived SME labels, per batch and rolling."""

import shutil

import pytest
from sklearn.metrics import cohen_kappa_score

from judgeloop.judging import judges, live_agreement, scores
from judgeloop.sme_labels import labels
from judgeloop.stand_in_models.fake_llm import CALLS
from judgeloop.settings import load_settings
from judgeloop.stack.store import connect
from tests.support import materialize, metadata


@pytest.fixture
def store(home, template, monkeypatch):
    state, experiment_id, trace_ids = template
    shutil.copytree(state, home)
    monkeypatch.setenv("JUDGELOOP_LIVE_AGREEMENT_MIN_LABELS", "3")
    monkeypatch.setenv("JUDGELOOP_LIVE_AGREEMENT_THRESHOLD", "0.9")
    settings = load_settings()
    assert connect(settings) == experiment_id
    version = judges.ensure_base_judge(settings, experiment_id, settings.judge_model).version
    # The promoted judge's scores are known: stored as data, so measuring pays nothing.
    scores.save(settings, version, dict(zip(trace_ids, [1, 2, 3, 4, 4, 2])))
    return settings, experiment_id, trace_ids


def test_a_batch_with_known_values(store, instance):
    settings, experiment_id, t = store
    for trace_id, value in zip(t[:4], [1, 2, 3, 4]):
        labels.log_label(trace_id, settings.judge_name, value, "rater-a")
    labels.log_label(t[4], settings.judge_name, 1, "rater-b")  # judge said 4
    labels.log_label(t[5], settings.judge_name, 4, "rater-b")  # judge said 2

    live = live_agreement.measure(settings, experiment_id)
    human, judged = [1, 2, 3, 4, 1, 4], [1, 2, 3, 4, 4, 2]
    assert live.batch_agreement.n == 6 and live.rolling_agreement.n == 6
    assert live.batch_agreement.exact == pytest.approx(4 / 6)
    assert live.batch_agreement.mae == pytest.approx(5 / 6)
    assert live.batch_agreement.kappa == pytest.approx(cohen_kappa_score(human, judged, weights="quadratic"))
    assert CALLS["judge"] == 0, "stored scores were reused"
    assert [(p.trace_id, p.reviewer) for p in live.disagreements()] == [(t[4], "rater-b"), (t[5], "rater-b")]
    warning = live_agreement.warning(settings, live)
    assert warning and "rater-b" in warning and t[4] in warning and "rater-a" not in warning

    # The next batch is only what arrived since; the rolling window keeps everything.
    labels.log_label(t[0], settings.judge_name, 1, "rater-c")
    again = live_agreement.measure(settings, experiment_id)
    assert again.batch_agreement.n == 1 and again.batch_agreement.exact == 1.0
    assert again.rolling_agreement.n == 7

    # As an asset: numbers to plot, the disagreements named, a warning that does not block.
    labels.log_label(t[5], settings.judge_name, 4, "rater-c")
    result = materialize(instance, ["live_agreement"])
    assert result.success
    meta = metadata(result, "live_agreement")
    assert meta["live_labels_batch"] == 1 and meta["live_kappa_batch"] == 0.0 and meta["live_labels_rolling"] == 8
    assert meta["live_judge_calls"] == 0
    check = result.get_asset_check_evaluations()[0]
    assert not check.passed and check.severity.value == "WARN"
    assert "rater-b" in check.description and "rater-c" in check.description and t[5] in check.description
