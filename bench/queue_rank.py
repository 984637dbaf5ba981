"""Cost of ordering the review queue (``queue_ranking.rank``) and refreshing its pending window.

Every re-alignment re-ranks the queue and every label import tops the window up, so ranking
reads the tagged traces' questions and answers, the labels and the judges' stored scores from
MLflow and scores every unlabelled alignment trace. This logs N traces (FeedbackQA questions and
passages, repeated under new keys past the shipped sample's 329), stores a base-judge score on
each and L labels, then times ``rank`` and ``labeling.refresh_window`` (re-rank) on the default
sqlite store.

Goal: one ranking of 2,000 traces with 200 labels in under 10 s (what a re-alignment run adds).

    .venv/bin/python bench/queue_rank.py [--traces 2000] [--labels 200]
"""

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
GOAL_SECONDS = 10.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--traces", type=int, default=2000)
    parser.add_argument("--labels", type=int, default=200)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="judgeloop-bench-rank-"))
    os.environ.update({"JUDGELOOP_HOME": str(workdir), "MLFLOW_ENABLE_ASYNC_TRACE_LOGGING": "false"})
    import logging

    logging.disable(logging.WARNING)
    from judgeloop.judging import judges, scores
    from judgeloop.settings import load_settings
    from judgeloop.sme_labels import labeling, labels, queue_ranking
    from judgeloop.stack.store import connect
    from judgeloop.tracing import feedbackqa, production
    from judgeloop.tracing.traces import EVAL_COMPLETE, EVAL_TAG

    settings = load_settings()
    experiment_id = connect(settings, calls_models=False)
    sample = [item for domain in feedbackqa.bundled_domains() for item in feedbackqa.load_items(None, domain)]
    items = [
        feedbackqa.Item(key=f"rank-{i}", question=sample[i % len(sample)].question, passage=sample[i % len(sample)].passage)
        for i in range(args.traces)
    ]
    t0 = time.monotonic()
    trace_ids = production.seed_traces(experiment_id, items)
    ids = [trace_ids[item.key] for item in items]
    from mlflow import MlflowClient

    client = MlflowClient()
    for trace_id in ids:
        client.set_trace_tag(trace_id, EVAL_TAG, EVAL_COMPLETE)
    scores.save(settings, 1, {t: (i % 4) + 1 for i, t in enumerate(ids)})
    from judgeloop.stack.store import set_experiment_tag

    set_experiment_tag(experiment_id, judges.BASE_VERSION_TAG, "1")
    for i, trace_id in enumerate(ids[: args.labels]):
        labels.log_label(trace_id, settings.judge_name, (i % 4) + 1, "sme")
    setup = time.monotonic() - t0
    print(f"{args.traces} traces, {args.labels} labels, a stored base score on each: set up in {setup:.0f} s", flush=True)

    t0 = time.monotonic()
    ranking = queue_ranking.rank(settings, experiment_id, ids)
    rank_seconds = time.monotonic() - t0
    print(f"rank: {len(ranking.order)} unlabelled traces ordered, {len(ranking.priorities)} prioritized in {rank_seconds:.2f} s", flush=True)
    schema = labeling.ensure_schema(settings, experiment_id)
    queue = labeling.ensure_queue(settings, experiment_id, schema.schema_id)
    labeling.fill_window(settings, experiment_id, queue.queue_id, ids)
    t0 = time.monotonic()
    change = labeling.refresh_window(settings, experiment_id, rerank=True)
    refresh_seconds = time.monotonic() - t0
    print(f"refresh_window (re-rank, tagged traces read): {refresh_seconds:.2f} s, {len(change.added)} added, {len(change.removed)} removed")
    load = open("/proc/loadavg").read().split()[:3]
    passed = rank_seconds < GOAL_SECONDS
    print(f"{'PASS' if passed else 'FAIL'}: ranking {args.traces} traces with {args.labels} labels took {rank_seconds:.2f} s "
          f"(goal < {GOAL_SECONDS:.0f} s); load average {' '.join(load)}")
    print(json.dumps({"benchmark": "queue_rank", "traces": args.traces, "labels": args.labels, "rank_seconds": round(rank_seconds, 2),
                      "refresh_seconds": round(refresh_seconds, 2), "setup_seconds": round(setup, 1), "pass": passed, "loadavg": load}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
