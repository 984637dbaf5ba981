"""Judge calls per re-alignment after k new SME labels, as the store grows (40, 400, 4,000 labels).

For each store size N: the labels are topped up to N and the judge is aligned and promoted
(setup), then k more labels arrive and one re-alignment runs as the sensor's run would
(live agreement of the promoted judge, then alignment, measurement and the gate). Its judge
calls are counted at the fake provider, so they are the calls really made, not an estimate.

Goals: the judge calls of that re-alignment stay below a constant whatever N
(``heldout_max + k`` for the held-out measurement, ``live_agreement_window`` for live
agreement); no judge version is ever scored twice on the same trace (checked on every stored
score at the end).

Labels: FeedbackQA's expert ratings (all four domains, 2,820 ratings on 1,410 answers). Each
answer gets ``--labels-per-trace`` labels (default 4): its two real ratings and copies of them
under other reviewer names ("echo-" prefix), so the values stay real while the store holds
N labels on N/4 traces. Only the answers the largest size needs are logged.

    .venv/bin/python bench/realign_calls.py [--sizes 40,400,4000] [--k 5]
"""

import argparse
import json
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="40,400,4000")
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--labels-per-trace", type=int, default=4, help="2 real ratings, the rest echoes of them")
    parser.add_argument("--feedbackqa", default=str(REPO.parent / "shared" / "data" / "feedbackqa"))
    args = parser.parse_args()
    sizes = [int(n) for n in args.sizes.split(",")]

    workdir = Path(tempfile.mkdtemp(prefix="judgeloop-bench-realign-"))
    os.environ.update(
        {
            "JUDGELOOP_HOME": str(workdir),
            "JUDGELOOP_JUDGE_MODEL": "fake:/judge",
            "JUDGELOOP_REFLECTION_MODEL": "fake:/reflection",
            "JUDGELOOP_EMBEDDING_MODEL": "fake:/embedding",
            "JUDGELOOP_GATE_MARGIN": "2.0",  # every aligned judge is promoted: the costliest path for the next run
            # Trace ids are random, so 10 traces may split 8/2: the bench counts calls, it does not
            # need a held-out set large enough to trust (nor may the gate refuse a small one).
            "JUDGELOOP_MIN_HELDOUT_LABELS": "1",
            "JUDGELOOP_MIN_SCORED_HELDOUT": "1",
            "MLFLOW_ENABLE_ASYNC_TRACE_LOGGING": "false",
        }
    )
    import logging

    logging.disable(logging.WARNING)
    from judgeloop.judging import alignment, gate, judges, live_agreement, scores
    from judgeloop.sme_labels import labels
    from judgeloop.tracing import feedbackqa, production
    from judgeloop.stand_in_models.fake_llm import CALLS
    from judgeloop.settings import load_settings
    from judgeloop.stack.store import connect
    from judgeloop.tracing.traces import search_all

    settings = load_settings()
    experiment_id = connect(settings)
    started = time.perf_counter()
    items = [i for d in ("UK", "CDC", "Australia", "WHO") for i in feedbackqa.load_items(Path(args.feedbackqa), d)]
    # Only the answers the largest size needs are logged as traces (logging is the slow part).
    items = items[: -(-(max(sizes) + args.k) // args.labels_per_trace) + 1]
    trace_ids = production.seed_traces(experiment_id, items)
    judges.ensure_base_judge(settings, experiment_id, settings.judge_model)
    # Every label the bench may write, trace by trace: its real ratings, then echoes of them.
    echoes = max(0, args.labels_per_trace // 2 - 1)
    queue = [
        (trace_ids[i.key], r.reviewer if n == 0 else f"echo-{n}-{r.reviewer}", r)
        for i in items for n in range(echoes + 1) for r in i.ratings
    ]
    written = [0]

    def release(count: int) -> None:
        for trace_id, reviewer, rating in queue[written[0] : written[0] + count]:
            labels.log_label(trace_id, settings.judge_name, feedbackqa.to_scale(rating.rating, settings), reviewer, rating.reason)
        written[0] += count

    def realign():
        live = live_agreement.measure(settings, experiment_id)
        result = alignment.align(settings, experiment_id)
        decision = gate.decide(result, settings.gate_margin, settings.min_scored_heldout)
        if decision.passed and result.new_version:
            judges.promote(experiment_id, result.new_version)
        return live, result

    print(f"store: {workdir}; {len(trace_ids)} traces, setup {time.perf_counter() - started:.0f} s")
    rows = []
    for size in sizes:
        release(size - written[0])
        realign()  # setup: aligned and promoted on N labels
        release(args.k)
        judge_calls = CALLS["judge"]
        t0 = time.perf_counter()
        live, result = realign()
        rows.append(
            {
                "labels": result.alignment_labels + result.heldout_labels,
                "heldout_traces": result.heldout_traces,
                "heldout_sample": result.heldout_sample,
                "judge_calls": CALLS["judge"] - judge_calls,
                "promoted_judge_paid": result.before_scores.paid if result.before_scores else 0,
                "promoted_judge_reused": result.before_scores.reused if result.before_scores else 0,
                "aligned_judge_paid": result.after_scores.paid if result.after_scores else 0,
                "live_judge_paid": live.scored.paid,
                "seconds": round(time.perf_counter() - t0, 1),
            }
        )
        print(rows[-1], flush=True)

    # No judge version scored twice on one trace: every stored score, grouped by (trace, version).
    stored = Counter(
        (t.info.trace_id, (a.metadata or {}).get(scores.VERSION_KEY))
        for t in search_all(experiment_id)
        for a in t.info.assessments or []
        if a.source.source_type == "LLM_JUDGE" and (a.metadata or {}).get(scores.VERSION_KEY)
    )
    duplicates = sum(1 for n in stored.values() if n > 1)
    bound = settings.heldout_max + args.k + settings.live_agreement_window

    header = list(rows[0])
    print("\n" + " | ".join(f"{h:>21}" for h in header))
    for row in rows:
        print(" | ".join(f"{row[h]:>21}" for h in header))
    print(f"\nconstant: heldout_max {settings.heldout_max} + k {args.k} + live_agreement_window {settings.live_agreement_window} = {bound}")
    below = all(row["judge_calls"] <= bound for row in rows)
    print(f"{'PASS' if below else 'FAIL'}: judge calls per re-alignment {[r['judge_calls'] for r in rows]} <= {bound} at {sizes} labels")
    print(f"{'PASS' if duplicates == 0 else 'FAIL'}: {len(stored)} stored (trace, judge version) scores, {duplicates} scored twice")
    print(json.dumps({"benchmark": "realign_calls", "k": args.k, "bound": bound, "duplicates": duplicates, "rows": rows}))


if __name__ == "__main__":
    main()
