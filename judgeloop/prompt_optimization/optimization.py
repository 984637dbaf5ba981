"""Improves the agent's system prompt with GEPA, scored by the promoted (aligned) judge.

The new prompt is always registered (a record of what was tried) and promoted to the
production alias only when, on held-out dataset records, the judge scores it higher than
the production prompt by more than ``prompt_promotion_margin``.
"""

import difflib
import logging
from contextlib import contextmanager
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from judgeloop import workspace
from judgeloop.judging import alignment, judges, scores, split
from judgeloop.model_calls import providers
from judgeloop.prompt_optimization import gepa_budget, prompts
from judgeloop.sme_labels import labels
from judgeloop.tracing import datasets
from judgeloop.model_calls.calls import count_litellm_calls
from judgeloop.mlflow_internals.prompt_override import prompt_template
from judgeloop.settings import FeedbackType, Settings

log = logging.getLogger(__name__)

JUDGE_TAG = "judgeloop.judge_version"
DATASET_TAG = "judgeloop.dataset_id"
# On the production version: "<judge version>:<dataset id>" of a GEPA run that returned its
# template unchanged (no version is registered then), so the same run is not repeated.
KEPT_TAG = "judgeloop.kept_by_gepa_with"
OPTIMIZATION_EXPERIMENT_TAG = "judgeloop.optimization_experiment_id"
OPTIMIZATION_TRACES_TAG = "judgeloop.optimization_traces"


def optimization_experiment_name(settings: Settings) -> str:
    """GEPA's evaluation traffic (hundreds of agent and judge traces) is logged here, not in
    the production experiment the experts and engineers read."""
    return f"{settings.experiment_name}-prompt-optimization"


class MissingExpectationsError(ValueError):
    """Records without expectations; GEPA needs inputs AND expectations on every record."""


@dataclass
class OptimizationResult:
    skipped_reason: str | None = None
    judge_version: int | None = None
    dataset_id: str | None = None
    production_version: int | None = None
    new_version: int | None = None
    promoted: bool = False
    decision: str = ""
    initial_score: float | None = None
    final_score: float | None = None
    heldout_production_score: float | None = None
    heldout_new_score: float | None = None
    train_records: int = 0
    heldout_records: int = 0
    skipped_records: int = 0
    metric_calls_budget: int = 0
    metric_calls_spent: int = 0
    train_records_available: int = 0  # training records before fitting them to the budget
    gepa_rounds: int = 0  # rounds GEPA ran (each: reflect, propose, score on a minibatch)
    gepa_rounds_accepted: int = 0  # rounds whose proposal beat its parent
    budget_warning: str = ""
    llm_calls: dict = field(default_factory=dict)
    new_template: str = ""
    diff: str = ""
    optimization_experiment_id: str | None = None
    optimization_traces_url: str | None = None


def rescale(settings: Settings, value) -> float:
    """A judge value on 0-1: GEPA treats 1.0 as perfect, so a 1-4 scale must not reach it early."""
    if value is None:
        return 0.0
    if settings.feedback_type == FeedbackType.PASS_FAIL:
        return 1.0 if labels.normalize(settings, value) else 0.0
    if settings.feedback_type == FeedbackType.CATEGORICAL:
        return settings.categories.index(value) / (len(settings.categories) - 1)
    return (float(value) - settings.scale_min) / (settings.scale_max - settings.scale_min)


def _value(score):
    """A scorer's raw result (a Feedback from a judge) as its plain value; errors score None."""
    if score is None or getattr(score, "error", None):
        return None
    return getattr(score, "value", score)


def check_expectations(records: list[dict], skip: bool) -> tuple[list[dict], list[dict]]:
    """(usable, skipped); raises naming every record without expectations unless ``skip``."""
    missing = [r for r in records if not r.get("expectations")]
    if missing and not skip:
        named = "\n".join(
            f"- record {r.get('record_id')}: question {str(r['inputs'].get('question', r['inputs']))[:80]!r}"
            for r in missing[:20]
        )
        raise MissingExpectationsError(
            f"{len(missing)} of {len(records)} dataset records have no expectations (GEPA needs inputs AND "
            f"expectations). Add them (e.g. expected_response) via JUDGELOOP_EXPECTATIONS_PATH, or set "
            f"JUDGELOOP_SKIP_RECORDS_WITHOUT_EXPECTATIONS=true to skip them:\n{named}"
        )
    return [r for r in records if r.get("expectations")], missing


def waiting_for_expectations(total: int, train: list[dict], heldout: list[dict]) -> str | None:
    """Why optimization waits instead of running (too few records with expectations), or None.

    Most teams start without reference answers. That is no failure of the loop: the judge is
    still aligned and promoted, and the prompt is optimized once expectations arrive.
    """
    if len(train) >= 2 and len(heldout) >= 2:
        return None
    have = len(train) + len(heldout)
    what = (
        f"none of the {total} dataset records has expectations" if have == 0
        else f"only {have} of {total} dataset records have expectations ({len(train)} for training, "
        f"{len(heldout)} held out; GEPA needs 2 of each)"
    )
    return (
        f"not optimized, waiting for expectations: {what}. Add reference answers (e.g. "
        '{"expected_response": ...}) with JUDGELOOP_EXPECTATIONS_PATH (JSONL lines {"question": ..., '
        '"expectations": {...}}) or an expectations column in `judgeloop traces import`; the next '
        "re-alignment, or materializing optimized_prompt, then optimizes the prompt."
    )


def dataset_waits_for_expectations(settings: Settings, dataset) -> str | None:
    """``waiting_for_expectations`` for the dataset as it stands (what the label sensor asks)."""
    every = datasets.load_records(dataset)
    records = [r for r in every if r.get("expectations")]
    train = [r for r in records if not split.is_heldout(str(r["inputs"]), settings.heldout_fraction)]
    heldout = [r for r in records if split.is_heldout(str(r["inputs"]), settings.heldout_fraction)]
    return waiting_for_expectations(len(every), train, heldout)


def load_promoted_judge(settings: Settings, experiment_id: str):
    """The promoted judge with its memory built from valid labels only, ready for threads."""
    version = judges.require_promoted(experiment_id)
    used, _ = labels.current_labels(settings, experiment_id)
    return version, alignment.load_judge(settings, experiment_id, version, used)


def record_scores(settings: Settings, judge, predict_fn, template: str, records: list[dict]) -> list[float | None]:
    """0-1 judge score of the agent run with ``template`` on each record; None where the agent or
    the judge failed (a provider error is not a score of 0)."""

    def one(record):
        question = record["inputs"].get("question")
        try:
            output = predict_fn(**record["inputs"])
            feedback = judge(inputs=record["inputs"], outputs=output)
        except Exception as exc:
            log.warning("scoring failed on %r: %s", question, exc)
            return None
        value, reason = scores.as_score(settings, None if feedback.error else feedback.value)
        if reason:
            log.warning("no score on %r: %s", question, feedback.error or reason)
            return None
        return rescale(settings, value)

    with prompt_template(prompts.name(settings), template), ThreadPoolExecutor(max_workers=4) as pool:
        return list(pool.map(one, records))


def paired_means(first: list, second: list) -> tuple[float, float, int]:
    """Mean of each list over the records both scored, and how many those are."""
    both = [(a, b) for a, b in zip(first, second) if a is not None and b is not None]
    if not both:
        return 0.0, 0.0, 0
    return sum(a for a, _ in both) / len(both), sum(b for _, b in both) / len(both), len(both)


def optimize(settings: Settings, experiment_id: str, progress=log.info, force: bool = False) -> OptimizationResult:
    import mlflow
    from mlflow.genai.optimize.optimizers import GepaPromptOptimizer

    from judgeloop.stack import store

    # A plugged-in agent (JUDGELOOP_AGENT) brings its own model; the demo agent needs one.
    from judgeloop.tracing import agent, traces
    uris = providers.require_models(settings, "judge", "reflection", *([] if settings.agent else ["agent"]))
    from judgeloop.tracing.traffic import marked_as_optimizer

    # Every agent call made while optimizing is marked, so it never becomes evaluation data.
    predict_fn = marked_as_optimizer(traces.load_agent(settings.agent) if settings.agent else agent.answer)
    dataset = workspace.for_settings(settings).dataset(experiment_id)
    dataset_id = dataset.dataset_id
    all_records = datasets.load_records(dataset)
    with_expectations = [r for r in all_records if r.get("expectations")]
    if with_expectations:  # none at all is waiting (below), not a failure
        check_expectations(all_records, settings.skip_records_without_expectations)
    records, skipped = with_expectations, [r for r in all_records if not r.get("expectations")]
    train = [r for r in records if not split.is_heldout(str(r["inputs"]), settings.heldout_fraction)]
    heldout = [r for r in records if split.is_heldout(str(r["inputs"]), settings.heldout_fraction)]
    production = prompts.production(settings)
    if production is None:
        raise LookupError(f"Prompt {prompts.name(settings)!r} has no {settings.production_alias!r} alias: materialize agent_prompt first.")
    judge_version = judges.require_promoted(experiment_id)
    result = OptimizationResult(
        judge_version=judge_version, dataset_id=dataset_id, production_version=int(production.version),
        train_records=len(train), heldout_records=len(heldout), skipped_records=len(skipped),
        metric_calls_budget=settings.gepa_max_metric_calls,
    )
    waits = waiting_for_expectations(len(all_records), train, heldout)
    if waits:
        progress(waits)
        result.skipped_reason = waits
        return result
    done = None if force else already_optimized(settings, judge_version, dataset_id, production)
    if done:
        result.skipped_reason = done
        return result
    optimizer_experiment = store.ensure_experiment(settings, optimization_experiment_name(settings))
    store.set_experiment_tag(optimizer_experiment, "judgeloop.production_experiment_id", experiment_id)
    result.optimization_experiment_id = optimizer_experiment
    result.optimization_traces_url = f"{settings.resolved_mlflow_ui_url}/#/experiments/{optimizer_experiment}/traces"

    # GEPA validates on its training set: fit both to the budget, or it never gets past the
    # first evaluation.
    fitted = gepa_budget.records_for_budget(settings.gepa_max_metric_calls, len(train))
    result.train_records_available = len(train)
    if fitted == 0:
        needed = gepa_budget.cost(gepa_budget.MIN_RECORDS, 1)
        result.budget_warning = (
            f"a budget of {settings.gepa_max_metric_calls} metric calls cannot buy one GEPA round "
            f"(one needs at least {needed}); raise JUDGELOOP_GEPA_MAX_METRIC_CALLS"
        )
        log.warning(result.budget_warning)
        result.skipped_reason = f"not optimized: {result.budget_warning}"
        return result
    train = gepa_budget.stable_sample(train, fitted)
    _, judge = load_promoted_judge(settings, experiment_id)
    result.train_records = len(train)
    progress(
        f"GEPA on {len(train)} of {result.train_records_available} training records (budget "
        f"{settings.gepa_max_metric_calls} metric calls), judge v{judge_version}"
    )
    metric_calls = [0]
    rounds = gepa_budget.RoundCounter()

    def counted_predict(**inputs):
        # One agent run is one metric call (GEPA scores each with the judge).
        metric_calls[0] += 1
        return predict_fn(**inputs)

    unscored = [0]  # judge calls that gave no score (provider errors, unparseable answers)

    def aggregate(scores):
        value = _value(scores.get(settings.judge_name))
        if value is None:
            unscored[0] += 1
        return rescale(settings, value)

    newest_before = int(getattr(prompts.latest(prompts.name(settings)), "version", 0) or 0)
    with (
        store.logging_to(optimizer_experiment, then=experiment_id),
        count_litellm_calls() as calls,
        _no_copies_of_production(settings, production, newest_before),
    ):
        optimized = mlflow.genai.optimize_prompts(
            predict_fn=counted_predict,
            train_data=[{"inputs": r["inputs"], "expectations": r["expectations"]} for r in train],
            prompt_uris=[f"prompts:/{prompts.name(settings)}/{production.version}"],
            optimizer=GepaPromptOptimizer(
                reflection_model=uris["reflection"], max_metric_calls=settings.gepa_max_metric_calls,
                gepa_kwargs={"callbacks": [rounds]},
            ),
            scorers=[judge],
            aggregation=aggregate,
        )
        result.metric_calls_spent = metric_calls[0]
        result.gepa_rounds, result.gepa_rounds_accepted = rounds.rounds, rounds.accepted
        if rounds.rounds == 0:
            result.budget_warning = (
                f"GEPA ran no round within {settings.gepa_max_metric_calls} metric calls; raise "
                f"JUDGELOOP_GEPA_MAX_METRIC_CALLS"
            )
            log.warning(result.budget_warning)
        new = optimized.optimized_prompts[0]
        result.new_template = new.template
        result.initial_score, result.final_score = optimized.initial_eval_score, optimized.final_eval_score
        if new.template.strip() == production.template.strip():
            # optimize_prompts registers whatever GEPA returns; a copy of production is no new
            # version (_no_copies_of_production removes it when the block ends).
            result.llm_calls = {"completion_calls": calls["completion"], "embedding_calls": calls["embedding"]}
            failed = calls["completion_failed"] + calls["embedding_failed"] + unscored[0]
            if failed:
                # GEPA also returns the template unchanged when its calls fail (an outage): that is
                # no verdict on the prompt, so nothing is remembered and the next run optimizes again.
                result.decision = (
                    f"GEPA returned production prompt v{production.version} unchanged after {failed} failed or "
                    "unscored model call(s): not a result, production kept, the next run optimizes again"
                )
            else:
                prompts.tag_version(prompts.name(settings), production.version, {KEPT_TAG: f"{judge_version}:{dataset_id}"})
                result.decision = (
                    f"GEPA ran {rounds.rounds} round(s) and returned production prompt v{production.version} unchanged: "
                    "no version registered, production kept"
                )
            progress(result.decision)
            return result
        result.new_version = int(new.version)
        progress(f"registered prompt v{new.version}; scoring it and production v{production.version} on {len(heldout)} held-out records")
        production_scores = record_scores(settings, judge, predict_fn, production.template, heldout)
        new_scores = record_scores(settings, judge, predict_fn, new.template, heldout)
    # Compared on the records both prompts were scored on: failed calls are left out, not zeros.
    result.heldout_production_score, result.heldout_new_score, compared = paired_means(production_scores, new_scores)
    result.llm_calls = {"completion_calls": calls["completion"], "embedding_calls": calls["embedding"]}
    gain = result.heldout_new_score - result.heldout_production_score
    measured = compared >= min(settings.min_scored_heldout, len(heldout))
    result.promoted = measured and new.template.strip() != production.template.strip() and gain > settings.prompt_promotion_margin
    result.decision = (
        f"held-out score {result.heldout_production_score:.3f} (production v{production.version}) -> "
        f"{result.heldout_new_score:.3f} (v{new.version}), gain {gain:+.3f}, margin {settings.prompt_promotion_margin:.3f}, "
        + f"on {compared} of {len(heldout)} records both prompts were scored on: "
        + ("promoted" if result.promoted else "kept as a version, not promoted")
        + ("" if measured else f" (fewer than {settings.min_scored_heldout} scored records: not measured)")
    )
    result.diff = "\n".join(
        difflib.unified_diff(
            production.template.splitlines(), new.template.splitlines(),
            f"production v{production.version}", f"v{new.version}", lineterm="",
        )
    )
    prompts.tag_version(
        prompts.name(settings), new.version,
        {
            JUDGE_TAG: judge_version, DATASET_TAG: dataset_id, "judgeloop.parent_version": production.version,
            "judgeloop.source": "gepa",
            "judgeloop.heldout_score": f"{result.heldout_new_score:.4f}",
            "judgeloop.production_heldout_score": f"{result.heldout_production_score:.4f}",
            "judgeloop.promoted": str(result.promoted).lower(),
            OPTIMIZATION_EXPERIMENT_TAG: optimizer_experiment,
            OPTIMIZATION_TRACES_TAG: result.optimization_traces_url,
        },
    )
    if result.promoted:
        prompts.promote(settings, new.version)
    progress(result.decision)
    return result


@contextmanager
def _no_copies_of_production(settings: Settings, production, newest_before: int):
    """Remove, when the block ends however it ends, every version registered since ``newest_before``
    that is a copy of production no judgeloop step claimed (no ``judgeloop.`` tags).

    ``optimize_prompts`` registers what GEPA returns before it returns, and GEPA hands production
    back unchanged when its calls fail: such a copy is no result, whether the call then returns
    (the unchanged case) or raises after registering (a failure while MLflow logs the run). The
    removal is checked by reading the versions back: a copy left behind fails the run.
    """
    try:
        yield
    finally:
        name = prompts.name(settings)

        def copies():
            return [
                v for v in prompts.versions_after(name, newest_before)
                if v.template.strip() == production.template.strip()
                and not any(key.startswith("judgeloop.") for key in (v.tags or {}))
            ]

        for version in copies():
            prompts.delete_version(name, version.version)
        left = copies()
        if left:
            raise RuntimeError(
                f"prompt {name!r}: version(s) {', '.join(str(v.version) for v in left)} copy production "
                f"v{production.version} and could not be deleted; delete them in the MLflow UI"
            )


def already_optimized(settings: Settings, judge_version: int, dataset_id: str, production) -> str | None:
    """Why optimizing with this judge and dataset would repeat a result, or None when it would not.

    A finished optimization is a result: one that produced a different prompt, or one where
    GEPA ran and kept production unchanged (``KEPT_TAG``). A run that failed before tagging left
    nothing, and a registered candidate identical to production (what GEPA returns when every
    call failed, e.g. during a provider outage) is not remembered, so the next run optimizes
    again. The label sensor asks the same question (``judgeloop.judging.unfinished``): whatever this
    skips, it never requests.
    """
    tags = prompts.version_tags(prompts.name(settings), production.version)
    if tags.get(JUDGE_TAG) == str(judge_version) and tags.get(DATASET_TAG) == dataset_id:
        return f"production prompt v{production.version} was already optimized with judge v{judge_version}"
    if tags.get(KEPT_TAG) == f"{judge_version}:{dataset_id}":
        return f"GEPA already kept production prompt v{production.version} unchanged with judge v{judge_version}"
    newest = prompts.latest(prompts.name(settings))
    tags = dict(newest.tags or {}) if newest is not None else {}
    if (
        tags.get(JUDGE_TAG) == str(judge_version)
        and tags.get(DATASET_TAG) == dataset_id
        and newest.template.strip() != production.template.strip()
    ):
        return f"a prompt was already optimized with judge v{judge_version} and not promoted (v{newest.version})"
    return None
