"""Stored judge scores, the capped held-out sample, bootstrap intervals and the interval gate."""

import random
from types import SimpleNamespace

import pytest
from mlflow import MlflowClient

from judgeloop.judging import agreement, gate, intervals, judges, sampling, scores
from judgeloop.stand_in_models.fake_llm import CALLS
from judgeloop.settings import load_settings


@pytest.fixture
def store(template_store):
    return template_store


def read(trace_ids) -> dict:
    client = MlflowClient()
    return {tid: client.get_trace(tid) for tid in trace_ids}


# --- scores are data ---------------------------------------------------------------------------

def test_a_second_measurement_pays_only_for_new_traces(store):
    settings, experiment_id, trace_ids = store
    judge = judges.build_judge(settings, settings.judge_model)
    version = judges.register(judge, experiment_id)

    first = scores.measure(settings, judge, version, read(trace_ids[:4]))
    assert CALLS["judge"] == 4 and first.paid == 4 and first.reused == 0 and len(first.values) == 4

    second = scores.measure(settings, judge, version, read(trace_ids))
    assert CALLS["judge"] == 6, "only the two traces never scored by this version are paid for"
    assert second.paid == 2 and second.reused == 4
    assert {t: second.values[t] for t in trace_ids[:4]} == first.values

    # Stored once per (trace, version): the reused scores were not written again.
    stored = [
        a for t in read(trace_ids).values() for a in t.info.assessments
        if (a.metadata or {}).get(scores.VERSION_KEY) == str(version)
    ]
    assert len(stored) == 6 and all(a.source.source_type == "LLM_JUDGE" for a in stored)

    # Another version of the judge owns none of these scores: it pays for every trace.
    other = scores.measure(settings, judge, version + 1, read(trace_ids[:2]), store=False)
    assert other.paid == 2 and other.reused == 0


def test_the_evaluations_scores_are_reused_by_the_version_that_made_them(store):
    """tagged_traces already paid for the base judge's score on every trace it tags."""
    from judgeloop.tracing import traces

    settings, experiment_id, trace_ids = store
    version = judges.ensure_base_judge(settings, experiment_id, settings.judge_model).version
    judge = judges.load(experiment_id, settings.judge_name, version)
    report = traces.evaluate_and_tag(experiment_id, judge, judge_version=version)
    assert sorted(report.tagged_trace_ids) == sorted(trace_ids) and CALLS["judge"] == len(trace_ids)

    measured = scores.measure(settings, judge, version, read(trace_ids))
    assert measured.paid == 0 and measured.reused == len(trace_ids), "scored again what evaluate had scored"
    assert CALLS["judge"] == len(trace_ids)
    by_trace = {
        tid: next(a.value for a in t.info.assessments if a.source.source_type == "LLM_JUDGE")
        for tid, t in read(trace_ids).items()
    }
    assert measured.values == {tid: scores.as_score(settings, v)[0] for tid, v in by_trace.items()}
    # Marked, not copied: one judge feedback per trace, the evaluation's own.
    assert all(sum(a.source.source_type == "LLM_JUDGE" for a in t.info.assessments) == 1 for t in read(trace_ids).values())


def test_provider_errors_and_unparseable_answers_are_not_scores(store):
    settings, experiment_id, trace_ids = store
    judge = judges.build_judge(settings, "fake:/garbage")
    version = judges.register(judge, experiment_id)
    measured = scores.measure(settings, judge, version, read(trace_ids[:3]))
    assert measured.values == {} and measured.unscored == 3
    # Nothing was stored: the next measurement tries again.
    assert scores.measure(settings, judge, version, read(trace_ids[:3])).paid == 3


@pytest.mark.parametrize(
    "answer,expected",
    [(3, 3), ("3", 3), (3.0, 3), (9, None), ("nine", None), (None, None), (2.5, None)],
)
def test_only_answers_on_the_scale_are_scores(home, answer, expected):
    value, reason = scores.as_score(load_settings(), answer)
    assert value == expected and (reason is None) is (expected is not None)


# --- the held-out sample -----------------------------------------------------------------------

def _heldout(n: int, seed: int = 0) -> dict:
    rng = random.Random(seed)
    # Skewed like real ratings: value 4 common, value 1 rare.
    return {f"tr-{i:05d}": [rng.choices([1, 2, 3, 4], weights=[2, 8, 30, 60])[0]] for i in range(n)}


def test_heldout_sample_is_capped_stable_and_stratified(home):
    settings = load_settings()
    heldout = _heldout(1000)
    chosen = sampling.sample(settings, heldout, 200)
    assert len(chosen) == 200
    assert sampling.sample(settings, dict(reversed(list(heldout.items()))), 200) == chosen, "order of arrival does not matter"

    def shares(ids):
        return {v: sum(heldout[t][0] == v for t in ids) / len(ids) for v in (1, 2, 3, 4)}

    population, picked = shares(list(heldout)), shares(chosen)
    for value in (1, 2, 3, 4):
        assert picked[value] == pytest.approx(population[value], abs=0.01), (value, picked, population)

    # More labels arrive: the sample keeps almost all of its traces, so stored scores stay useful.
    grown = {**heldout, **{f"tr-new-{i}": v for i, v in _heldout(50, seed=1).items()}}
    again = sampling.sample(settings, grown, 200)
    assert len(again) == 200 and len(set(again) & set(chosen)) >= 185


def test_a_rare_value_keeps_a_trace_and_a_small_split_is_kept_whole(home):
    settings = load_settings()
    heldout = {f"tr-{i}": [4] for i in range(300)} | {"tr-rare": [1]}
    assert "tr-rare" in sampling.sample(settings, heldout, 20)
    assert sampling.sample(settings, {"b": [1], "a": [2]}, 200) == ["a", "b"]


# --- intervals ---------------------------------------------------------------------------------

def test_point_estimates_match_scikit_learn(home):
    settings = load_settings()
    rng = random.Random(3)
    human = [[rng.randint(1, 4)] for _ in range(40)]
    judged = [min(4, max(1, h[0] + rng.choice([-1, 0, 0, 1]))) for h in human]
    paired = intervals.paired_bootstrap(settings, human, judged, judged, resamples=200)
    expected = agreement.measure(settings, [h[0] for h in human], judged)
    assert paired.after["kappa"].value == pytest.approx(expected.kappa)
    assert paired.after["exact"].value == pytest.approx(expected.exact)
    assert paired.after["mae"].value == pytest.approx(expected.mae)
    kappa = paired.after["kappa"]
    assert kappa.low < kappa.value < kappa.high
    assert paired.difference["kappa"].low == paired.difference["kappa"].high == 0.0


def test_too_few_traces_give_no_interval(home):
    settings = load_settings()
    paired = intervals.paired_bootstrap(settings, [[1], [2], [3]], [1, 2, 3], [1, 2, 4], min_traces=10)
    assert not paired.has_intervals and paired.after["kappa"].value is not None
    assert "no interval" in paired.after["kappa"].text()


# --- the gate ----------------------------------------------------------------------------------

def _result(settings, human, before, after, unscored_after: int = 0):
    comparison = intervals.paired_bootstrap(settings, [[h] for h in human], before, after, resamples=2000, min_traces=10)
    ids = [f"t{i}" for i in range(len(human))]
    return SimpleNamespace(
        new_version=2, previous_version=1, skipped_reason=None, comparison=comparison,
        before=None, after=None,
        before_scores=scores.Scores(values=dict(zip(ids, before))),
        after_scores=scores.Scores(
            values=dict(zip(ids[unscored_after:], after[unscored_after:])),
            invalid_answers={t: "answer 'x' is not a number" for t in ids[:unscored_after]},
        ),
    )


def test_a_judge_worse_by_construction_is_blocked(home):
    settings = load_settings()
    rng = random.Random(0)
    human = [rng.randint(1, 4) for _ in range(40)]
    worse = [1] * 40  # "always rate 1"
    decision = gate.decide(_result(settings, human, list(human), worse), margin=0.05, min_scored=3)
    assert not decision.passed and decision.case == gate.WORSE
    assert "worse with confidence" in decision.reason


def test_a_judge_measured_worse_within_the_noise_is_still_blocked(home):
    """The rule that let v2 replace v1 at held-out kappa 0.234 -> 0.191: worse, but not 'with confidence'."""
    settings = load_settings()
    rng = random.Random(1)
    human = [rng.randint(1, 4) for _ in range(40)]
    before = [min(4, max(1, h + rng.choice([-1, 0, 0, 1]))) for h in human]
    after = list(before)
    for i in rng.sample(range(40), 2):
        after[i] = min(4, max(1, human[i] + (1 if human[i] < 3 else -1)))
    result = _result(settings, human, before, after)
    diff = result.comparison.difference["kappa"]
    assert diff.value < 0 and diff.low < 0 <= diff.high, "worse, but not with confidence"
    decision = gate.decide(result, margin=0.0, min_scored=3)
    assert not decision.passed and decision.case == gate.MEASURED_WORSE, decision.reason
    assert "stays in use" in decision.reason and "on 40 held-out traces" in decision.reason
    # Within a tolerance the user chose, it passes and says so.
    tolerant = gate.decide(result, margin=-diff.value + 0.001, min_scored=3)
    assert tolerant.passed and tolerant.case == gate.NOT_WORSE


def test_a_chain_of_small_losses_cannot_walk_agreement_down(home):
    """Each step a little worse: with the tolerance at its default, none of them is promoted."""
    settings = load_settings()
    rng = random.Random(5)
    human = [rng.randint(1, 4) for _ in range(60)]
    judge = list(human)
    promoted = judge
    for step in range(5):
        candidate = list(promoted)
        for i in rng.sample(range(60), 3):
            candidate[i] = 1 if human[i] > 2 else 4
        decision = gate.decide(_result(settings, human, promoted, candidate), settings.gate_margin, 3)
        if decision.passed:
            promoted = candidate
    assert promoted == judge, "a worse judge replaced the one in use"


def test_a_judge_as_good_or_better_passes(home):
    settings = load_settings()
    rng = random.Random(2)
    human = [rng.randint(1, 4) for _ in range(40)]
    noisy = [min(4, max(1, h + rng.choice([-2, -1, 0, 1, 2]))) for h in human]
    same = gate.decide(_result(settings, human, noisy, list(noisy)), margin=0.0, min_scored=3)
    assert same.passed and same.case == gate.NOT_WORSE
    better = gate.decide(_result(settings, human, noisy, list(human)), margin=0.0, min_scored=3)
    assert better.passed and better.case == gate.BETTER


def test_an_unmeasured_judge_is_never_promoted(home):
    settings = load_settings()
    human = list(range(1, 5)) * 10
    result = _result(settings, human, list(human), list(human), unscored_after=38)
    decision = gate.decide(result, margin=0.05, min_scored=3)
    assert not decision.passed and decision.case == gate.UNMEASURED
    assert "judge v2 was scored on only 2 held-out traces" in decision.reason
    assert "38 invalid answers" in decision.reason


def test_too_few_common_traces_still_block_a_worse_judge(home):
    settings = load_settings()
    result = _result(settings, [1, 2, 3, 4, 4], [1, 2, 3, 4, 4], [1, 1, 1, 1, 1])
    decision = gate.decide(result, margin=0.05, min_scored=3)
    assert not decision.passed and decision.case == gate.MEASURED_WORSE
    assert "interval" not in decision.reason and "measured worse" in decision.reason


# --- the prompt comparison ---------------------------------------------------------------------

def test_prompt_comparison_leaves_failed_calls_out_instead_of_counting_zero(store):
    from judgeloop.prompt_optimization import optimization

    settings = store[0]
    records = [{"inputs": {"question": f"How do I wash my hands, case {i}?"}} for i in range(3)]

    def agent(question):
        return f"Wash your hands with soap: {question}"

    garbage = judges.build_judge(settings, "fake:/garbage")
    assert optimization.record_scores(settings, garbage, agent, "any", records) == [None, None, None]

    def off_scale(inputs, outputs):  # a judge answering 9 on the 1-4 scale
        return SimpleNamespace(error=None, value=9)

    assert optimization.record_scores(settings, off_scale, agent, "any", records) == [None, None, None]
    working = judges.build_judge(settings, settings.judge_model)
    assert all(s is not None for s in optimization.record_scores(settings, working, agent, "any", records))
    # Production failed on the first record (a 429), the candidate on the last: compared on the middle one.
    assert optimization.paired_means([None, 0.5, 1.0], [1.0, 0.5, None]) == (0.5, 0.5, 1)


# --- the sample stands for the held-out split ---------------------------------------------------

def test_the_samples_kappa_estimates_the_whole_heldout_kappa(home):
    """600 held-out traces, 3 experts each, a judge whose errors depend on the rating: the kappa
    on the 200-trace sample lies within the sample's own interval of the kappa on all 600."""
    from judgeloop.sme_labels import experts
    from judgeloop.sme_labels.labels import HumanLabel

    settings = load_settings()
    rng = random.Random(11)
    grouped, judged = {}, {}
    for i in range(600):
        true = rng.choices([1, 2, 3, 4], weights=[5, 15, 35, 45])[0]
        trace = f"tr-{i:05d}"
        grouped[trace] = [
            HumanLabel(f"a-{trace}-{r}", trace, "answer_quality", min(4, max(1, true + rng.choice([-1, 0, 0, 0, 1]))), None, f"rater-{r}", 0)
            for r in range(3)
        ]
        # Harsh on low ratings, close on high ones: a sample that over-weighted a value would be biased.
        judged[trace] = min(4, max(1, true + (rng.choice([0, 1, 2]) if true < 3 else rng.choice([-1, 0, 0, 0]))))
    consensus = experts.consensus_by_trace(settings, grouped)

    def kappa_on(ids, resamples=2000):
        return intervals.single_bootstrap(
            settings, [[consensus[t].value] for t in ids], [judged[t] for t in ids], resamples, 10
        )["kappa"]

    chosen = sampling.sample(settings, {t: [l.value for l in grouped[t]] for t in grouped}, 200)
    assert len(chosen) == 200
    whole, part = kappa_on(sorted(grouped), 0), kappa_on(chosen)
    assert part.low <= whole.value <= part.high, (whole, part)
    assert abs(part.value - whole.value) < 0.05, (whole, part)
