"""Which judge version is in use, and what each version agrees and learned, readable in MLflow."""

import shutil

import mlflow

from judgeloop.judging import judges
from judgeloop.settings import load_settings
from judgeloop.stack.store import connect


def _tags(experiment_id: str) -> dict:
    return mlflow.get_experiment(experiment_id).tags


def test_promoted_version_and_each_versions_agreement_and_guidelines_are_tags(home, template):
    state, experiment_id, _ = template
    shutil.copytree(state, home)
    settings = load_settings()
    connect(settings)
    judges.ensure_base_judge(settings, experiment_id, settings.judge_model)  # v1, promoted
    tags = _tags(experiment_id)
    assert tags["judgeloop.promoted_judge"].startswith("v1 is in use: base judge (fake:/judge)")
    assert tags["judgeloop.judge.v1"] == "base judge (fake:/judge), as configured"

    v2 = judges.register(judges.build_judge(settings, settings.judge_model), experiment_id)
    guidelines = ["Rate answers about another disease 1.", "Quoting the WHO earns a 4."]
    judges.record_lineage(
        experiment_id, v2,
        {"kind": "aligned", "previous_version": 1, "label_count": 30, "heldout_label_count": 714,
         "heldout_traces": 238, "heldout_sample": 200, "measured_traces": 200,
         "kappa_before": 0.118, "kappa_after": 0.45, "guidelines": guidelines},
    )
    tags = _tags(experiment_id)
    summary = tags[f"judgeloop.judge.v{v2}"]
    assert "aligned from v1 on 30 expert label(s)" in summary
    # What the numbers stand on: the sample of the held-out split, never passed off as the whole.
    assert "held-out kappa 0.118 -> 0.450 on 200 of 238 held-out traces" in summary and "2 guideline(s)" in summary
    assert "714" not in summary
    assert tags[f"judgeloop.judge.v{v2}.guidelines"] == "- Rate answers about another disease 1.\n- Quoting the WHO earns a 4."
    # Registered but not promoted (e.g. the gate failed): the tag still names v1.
    assert tags["judgeloop.promoted_judge"].startswith("v1 is in use")
    assert judges.lineage(experiment_id, v2)["guideline_count"] == 2

    judges.promote(experiment_id, v2)
    promoted = _tags(experiment_id)["judgeloop.promoted_judge"]
    assert promoted.startswith(f"v{v2} is in use: aligned from v1") and f"judgeloop.judge.v{v2}" in promoted
    assert judges.promoted_version(experiment_id) == v2


def test_long_guideline_lists_are_cut_to_fit_a_tag(home, template):
    state, experiment_id, _ = template
    shutil.copytree(state, home)
    connect(load_settings())
    judges.record_lineage(experiment_id, 7, {"kind": "aligned", "guidelines": ["x" * 300] * 100})
    text = _tags(experiment_id)["judgeloop.judge.v7.guidelines"]
    assert len(text) <= judges.TAG_VALUE_LIMIT and text.endswith("(cut; see the judge)")


def test_version_numbers_match_mlflows_public_listing(home, template):
    """Contract with the pinned MLflow: the store-level read that ``judgeloop status`` uses (no
    judge objects rebuilt) lists the same versions as ``list_scorer_versions``."""
    from mlflow.genai.scorers.registry import list_scorer_versions

    state, experiment_id, _ = template
    shutil.copytree(state, home)
    settings = load_settings()
    connect(settings)
    assert judges.version_numbers(settings, experiment_id) == []
    judges.ensure_base_judge(settings, experiment_id, settings.judge_model)
    judges.register(judges.build_judge(settings, settings.judge_model), experiment_id)
    public = sorted(v for _, v in list_scorer_versions(name=settings.judge_name, experiment_id=experiment_id))
    assert judges.version_numbers(settings, experiment_id) == public == [1, 2]
