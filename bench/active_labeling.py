"""Does the active review order teach the judge more per expert label than random order?

Replays expert labels from a labelled pool through the real alignment path (MemAlign's
``align`` on the base judge, as ``aligned_judge`` and ``evaluate-judge`` call it; the judge
scored with ``scores.call_judge``), in two orders of the alignment-side traces:

- random: a seeded shuffle;
- active: the queue's order (``queue_priority`` + ``queue_order.alignment_order``), re-ranked
  every ``--rerank-every`` labels as the queue is after each re-alignment, from what the loop
  stores for free: the base judge's score on every trace and the labels so far.

For each seed the pool is split into held-out and alignment sides (the held-out fraction of the
settings, a seeded hash of the trace id); every held-out trace is measured (quadratic-weighted
kappa against the experts' consensus label) after aligning on the first B labels of each order.
Budgets count alignment labels: held-out labels are the same for both orders.

Prints kappa per budget for both orders (mean over seeds with a 95% t-interval), the labels
active needs to reach random's kappa at 100, PASS/FAIL for "<= 50 active labels reach random@100"
and "never below random at any budget (within noise: the paired difference's interval reaches 0)",
a third PASS/FAIL saying whether labels teach the judge at all on the pool (without that, the
first two compare noise), and one JSON line.

Pool: the FeedbackQA sample shipped in the package (WHO and CDC, 329 answers, two real expert
ratings each), or ``--pool FILE.jsonl`` with one record per expert rating:
``{"question": ..., "answer": ..., "value": ..., "reviewer": ...}`` (several records with the
same question and answer are several experts on one answer).

Models: the configured ones (JUDGELOOP_JUDGE_MODEL, _REFLECTION_MODEL, _EMBEDDING_MODEL), else
the offline stand-ins. A real provider pays ~(held-out traces) judge calls per budget, order and seed.

    .venv/bin/python bench/active_labeling.py                 # budgets 10,20,30,50,100,150, 5 seeds
    .venv/bin/python bench/active_labeling.py --full          # budgets 10,20,...,200
    .venv/bin/python bench/active_labeling.py --pool my_labels.jsonl --seeds 3
"""

import argparse
import json
import math
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

DEFAULT_BUDGETS = (10, 20, 30, 50, 100, 150)
FULL_BUDGETS = tuple(range(10, 201, 10))
# Two-sided 95% Student t quantiles by degrees of freedom (seeds - 1).
T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262}


class PoolError(ValueError):
    """A pool record cannot be used; the message names the line and the field."""


def interval(values: list[float]) -> tuple[float, float, float]:
    mean = statistics.fmean(values)
    if len(values) < 2:
        return mean, mean, mean
    half = T95.get(len(values) - 1, 1.96) * statistics.stdev(values) / math.sqrt(len(values))
    return mean, mean - half, mean + half


def read_pool(path: Path | None, settings) -> list[dict]:
    """``[{key, question, answer, ratings: [(reviewer, value, comment)]}]`` from the pool."""
    from judgeloop.sme_labels import labels
    from judgeloop.tracing import feedbackqa

    if path is None:
        pool = []
        for domain in feedbackqa.bundled_domains():
            for item in feedbackqa.load_items(None, domain):
                ratings = [(r.reviewer, feedbackqa.to_scale(r.rating, settings), r.reason) for r in item.ratings]
                pool.append({"key": item.key, "question": item.question, "answer": item.passage, "ratings": ratings})
        return pool
    by_answer: dict[tuple[str, str], dict] = {}
    for line_number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise PoolError(f"{path} line {line_number}: not JSON ({exc.msg})") from exc
        for name in ("question", "answer", "value"):
            if record.get(name) in (None, ""):
                raise PoolError(f"{path} line {line_number}: field {name!r} is missing")
        reason = labels.check_value(settings, labels.normalize(settings, record["value"]))
        if reason:
            raise PoolError(f"{path} line {line_number}: field 'value': {reason}")
        entry = by_answer.setdefault(
            (record["question"], record["answer"]),
            {"key": f"pool-{len(by_answer)}", "question": record["question"], "answer": record["answer"], "ratings": []},
        )
        reviewer = str(record.get("reviewer") or f"expert-{len(entry['ratings']) + 1}")
        entry["ratings"].append((reviewer, labels.normalize(settings, record["value"]), record.get("comment")))
    if not by_answer:
        raise PoolError(f"{path}: no records")
    return list(by_answer.values())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pool", type=Path, default=None, help="labelled JSONL (default: the shipped FeedbackQA sample)")
    parser.add_argument("--budgets", default=None, help="comma-separated alignment-label budgets")
    parser.add_argument("--full", action="store_true", help=f"budgets {FULL_BUDGETS[0]}..{FULL_BUDGETS[-1]} step 10")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--rerank-every", type=int, default=5, help="labels between re-rankings (the sensor's label threshold)")
    parser.add_argument("--target-budget", type=int, default=100, help="random order's budget active must match")
    parser.add_argument("--goal", type=int, default=50, help="labels active may use to match it")
    args = parser.parse_args()
    budgets = sorted({int(b) for b in args.budgets.split(",")} if args.budgets else set(FULL_BUDGETS if args.full else DEFAULT_BUDGETS))
    if args.target_budget not in budgets:
        budgets = sorted({*budgets, args.target_budget})

    workdir = Path(tempfile.mkdtemp(prefix="judgeloop-bench-active-"))
    os.environ.update(
        {
            "JUDGELOOP_HOME": str(workdir),
            "JUDGELOOP_TRACKING_URI": f"sqlite:///{workdir / 'mlflow.db'}",
            "MLFLOW_ENABLE_ASYNC_TRACE_LOGGING": "false",
            "MLFLOW_MODEL_CATALOG_URI": "",
            "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        }
    )
    import logging

    logging.disable(logging.WARNING)
    from judgeloop.model_calls import providers
    from judgeloop.settings import load_settings

    settings = load_settings()
    if providers.nothing_configured(settings):
        os.environ.update(providers.stand_in_environment())
        settings = load_settings()
    from mlflow.genai.judges.optimizers import MemAlignOptimizer

    from judgeloop.judging import agreement, alignment, judges, scores, split
    from judgeloop.sme_labels import experts, labels, queue_order, queue_priority
    from judgeloop.stack.store import connect
    from judgeloop.tracing import feedbackqa, production, trace_fields
    from judgeloop.tracing.traces import read_many

    started = time.monotonic()
    uris = providers.require_models(settings, "judge", "reflection", "embeddings")
    print(f"models: {providers.models_label(settings)} ({uris['judge']}, {uris['reflection']}, {uris['embeddings']})", flush=True)
    pool = read_pool(args.pool, settings)
    experiment_id = connect(settings)
    items = [feedbackqa.Item(key=p["key"], question=p["question"], passage=p["answer"]) for p in pool]
    trace_ids = production.seed_traces(experiment_id, items)
    for entry in pool:
        for reviewer, value, comment in entry["ratings"]:
            labels.log_label(trace_ids[entry["key"]], settings.judge_name, value, reviewer, comment)
    used, rejected = labels.current_labels(settings, experiment_id)
    grouped = labels.by_trace(used)
    consensus = {t: labels.normalize(settings, l.value) for t, l in experts.consensus_by_trace(settings, grouped).items()}
    raw: dict = {}
    cleaned = alignment.cleaned_traces(settings, experiment_id, grouped, used, raw_out=raw)
    # Splits, shuffles and tie-breaks go by the pool's own keys, not by the store's random trace
    # ids, so a run on the same pool and seeds is repeatable.
    key_of = {trace_ids[entry["key"]]: entry["key"] for entry in pool}
    ids = sorted(cleaned, key=key_of.get)
    pool_name = str(args.pool) if args.pool else "shipped FeedbackQA sample (" + ", ".join(feedbackqa.bundled_domains()) + ")"
    print(f"pool: {pool_name}: {len(ids)} answers, {len(used)} expert labels ({len(rejected)} rejected)", flush=True)

    scale = agreement.scale_values(settings)
    span = float(len(scale) - 1)
    questions, words = {}, {}
    for trace_id, trace in read_many(experiment_id, ids).items():
        question, answer = trace_fields.question_and_answer(settings, trace)
        questions[trace_id] = str(question.get("question") if isinstance(question, dict) else question)
        words[trace_id] = queue_priority.words(f"{question} {answer}")
    base = judges.build_judge(settings, uris["judge"])
    print(f"base judge scoring {len(ids)} answers", flush=True)
    base_scores = scores.call_judge(settings, base, [cleaned[t] for t in ids]).values
    base_position = {t: queue_priority.position_on_scale(scale, v) for t, v in base_scores.items()}

    def kappa_on(judged: dict, heldout: list[str]) -> float:
        common = [t for t in heldout if t in judged]
        return agreement.measure(settings, [consensus[t] for t in common], [judged[t] for t in common]).kappa

    def active_order(align_ids: list[str], seed: int, length: int) -> list[str]:
        chosen: list[str] = []
        remaining = list(align_ids)
        while remaining and len(chosen) < length:
            labelled = [queue_priority.Labelled(t, words[t], queue_priority.position_on_scale(scale, consensus[t])) for t in chosen]
            candidates = [queue_priority.Candidate(t, words[t], base_score=base_position.get(t)) for t in remaining]
            priority = {key_of[t]: p for t, p in queue_priority.priorities(candidates, labelled, span).items()}
            by_key = {key_of[t]: t for t in remaining}
            ranked = queue_order.alignment_order(list(by_key), priority, {key_of[t]: questions[t] for t in remaining}, seed)
            batch = [by_key[k] for k in ranked[: args.rerank_every]]
            chosen.extend(batch)
            taken = set(batch)
            remaining = [t for t in remaining if t not in taken]
        return chosen

    results: dict[str, dict[int, list[float]]] = {"random": {b: [] for b in budgets}, "active": {b: [] for b in budgets}}
    base_kappas = []
    for seed in range(args.seeds):
        heldout = [t for t in ids if split.heldout_score(f"bench-seed-{seed}:{key_of[t]}") < settings.heldout_fraction]
        align_ids = [t for t in ids if t not in set(heldout)]
        usable_budgets = [b for b in budgets if b <= len(align_ids)]
        base_kappas.append(kappa_on(base_scores, heldout))
        shuffled = list(align_ids)
        random.Random(seed).shuffle(shuffled)
        orders = {"random": shuffled, "active": active_order(align_ids, seed, max(usable_budgets))}
        for name, order in orders.items():
            for budget in usable_budgets:
                t0 = time.monotonic()
                optimizer = MemAlignOptimizer(reflection_lm=uris["reflection"], embedding_model=uris["embeddings"])
                aligned = optimizer.align(base, [cleaned[t] for t in order[:budget]])
                judged = scores.call_judge(settings, aligned, [cleaned[t] for t in heldout]).values
                results[name][budget].append(kappa_on(judged, heldout))
                print(
                    f"seed {seed} {name:6} {budget:3} labels: held-out kappa {results[name][budget][-1]:.3f} "
                    f"on {len(heldout)} traces ({time.monotonic() - t0:.1f} s; {time.monotonic() - started:.0f} s so far)",
                    flush=True,
                )

    measured = [b for b in budgets if len(results["random"][b]) == args.seeds and len(results["active"][b]) == args.seeds]
    rows = []
    print()
    print(f"{'labels':>6}  {'random kappa [95%]':>24}  {'active kappa [95%]':>24}  {'active - random [95%]':>24}")
    for budget in measured:
        r, a = interval(results["random"][budget]), interval(results["active"][budget])
        d = interval([y - x for x, y in zip(results["random"][budget], results["active"][budget])])
        rows.append({"labels": budget, "random": r, "active": a, "difference": d})
        print(f"{budget:>6}  {r[0]:8.3f} [{r[1]:6.3f}, {r[2]:6.3f}]  {a[0]:8.3f} [{a[1]:6.3f}, {a[2]:6.3f}]  "
              f"{d[0]:+8.3f} [{d[1]:+6.3f}, {d[2]:+6.3f}]")
    base_mean = interval(base_kappas)
    print(f"base judge (no labels): {base_mean[0]:.3f} [{base_mean[1]:.3f}, {base_mean[2]:.3f}]")
    target = next((row["random"][0] for row in rows if row["labels"] == args.target_budget), None)
    needed = next((row["labels"] for row in rows if target is not None and row["active"][0] >= target), None)
    reach_pass = needed is not None and needed <= args.goal
    below = [row["labels"] for row in rows if row["difference"][2] < 0]
    never_below_pass = not below
    print(f"labels active needs to reach random@{args.target_budget} (kappa {target:.3f}): "
          f"{needed if needed is not None else 'not reached within ' + str(measured[-1])}")
    print(f"{'PASS' if reach_pass else 'FAIL'}: <= {args.goal} active labels reach random@{args.target_budget}")
    print(f"{'PASS' if never_below_pass else 'FAIL'}: active never below random at any budget (within noise)"
          + (f"; below at {below}" if below else ""))
    # Whether the comparison means anything: labels must teach the judge at all on this pool
    # (random order's kappa at the target above its kappa at the first budget, beyond noise).
    first = rows[0]["labels"]
    rise = interval([y - x for x, y in zip(results["random"][first], results["random"][args.target_budget])])
    learns = rise[1] > 0
    print(f"{'PASS' if learns else 'FAIL'}: the judge learns from the labels (random@{args.target_budget} - random@{first}: "
          f"{rise[0]:+.3f} [{rise[1]:+.3f}, {rise[2]:+.3f}]; base judge {base_mean[0]:.3f})"
          + ("" if learns else ": with no learning curve the two lines above compare noise, not orders"))
    seconds = round(time.monotonic() - started, 1)
    print(json.dumps({
        "benchmark": "active_labeling", "pool": pool_name, "answers": len(ids), "labels": len(used), "seeds": args.seeds,
        "rerank_every": args.rerank_every, "models": uris, "heldout_fraction": settings.heldout_fraction,
        "base_kappa": round(base_mean[0], 4),
        "rows": [{"labels": row["labels"], **{k: [round(v, 4) for v in row[k]] for k in ("random", "active", "difference")}} for row in rows],
        "random_at_target": round(target, 4) if target is not None else None, "target_budget": args.target_budget,
        "active_labels_needed": needed, "reach_pass": reach_pass, "never_below_pass": never_below_pass,
        "learns": learns, "random_rise": [round(v, 4) for v in rise],
        "seconds": seconds, "loadavg": open("/proc/loadavg").read().split()[:3],
    }))
    return 0 if reach_pass and never_below_pass else 1


if __name__ == "__main__":
    sys.exit(main())
