"""`judgeloop evaluate-judge` on the offline models: k-fold base vs aligned agreement, table and chart."""

import json

from judgeloop import cli


def test_evaluate_judge_on_feedbackqa(home, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("JUDGELOOP_BOOTSTRAP_RESAMPLES", "300")
    out = tmp_path / "out"
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.setattr("tempfile.mkdtemp", lambda prefix="": str(work))
    assert cli.main(["evaluate-judge", "--feedbackqa", "WHO", "--items", "12", "--k", "2", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "fold 2/2" in printed and "sme_ceiling" in printed
    report = json.loads((out / "judge-fidelity.json").read_text())
    assert report["folds"] == 2 and report["traces"] == 12
    kappa = next(row for row in report["rows"] if row["metric"] == "kappa")
    assert "[" in kappa["base"] and "[" in kappa["aligned"], "intervals are shown"
    assert (out / "judge-fidelity.svg").read_text().startswith("<svg")
    assert (out / "judge-fidelity.csv").read_text().startswith("metric,base,aligned,difference,sme_ceiling")

    # The one ceiling: the experts' agreement as experts.ceiling computes it on the traces the judges were scored on.
    from judgeloop.sme_labels import experts, labels
    from judgeloop.settings import load_settings
    from judgeloop.stack.store import connect

    settings = load_settings().model_copy(update={"home": work, "tracking_uri": f"sqlite:///{work / 'mlflow.db'}"})
    used, _ = labels.current_labels(settings, connect(settings))
    ceiling = experts.ceiling(settings, labels.by_trace(used), resamples=300)
    assert ceiling.reviewer_pairs >= 1 and ceiling.traces == 12
    assert kappa["sme_ceiling"].startswith(f"{ceiling.kappa:.3f} [")
