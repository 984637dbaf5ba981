"""LLM calls per re-alignment after k new SME labels (k = 5, 50, 500 by default).

Builds a fresh sqlite MLflow store from FeedbackQA (real questions, answers and expert ratings),
aligns the judge once on a starting set of labels, then for each k releases k more expert
labels and re-aligns, counting the model calls each re-alignment made: MemAlign's reflection
completions and embeddings (counted at litellm), and judge calls on the held-out split.

Runs offline against judgeloop's deterministic fake provider by default; pass real model URIs
(--judge-model etc.) to count calls against a real provider (that costs money).

    .venv/bin/python bench/realign_calls.py [--ks 5,50,500] [--start 40] [--domain UK]
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ks", default="5,50,500")
    parser.add_argument("--start", type=int, default=40, help="labels the judge is first aligned on")
    parser.add_argument("--domain", default="UK", help="FeedbackQA domain (UK has 1080 ratings)")
    parser.add_argument("--feedbackqa", default=str(REPO.parent / "shared" / "data" / "feedbackqa"))
    parser.add_argument("--judge-model", default="fake:/judge")
    parser.add_argument("--reflection-model", default="fake:/reflection")
    parser.add_argument("--embedding-model", default="fake:/embedding")
    args = parser.parse_args()
    ks = [int(k) for k in args.ks.split(",")]

    workdir = Path(tempfile.mkdtemp(prefix="judgeloop-bench-realign-"))
    needed = args.start + sum(ks)
    os.environ.update(
        {
            "JUDGELOOP_HOME": str(workdir),
            "JUDGELOOP_FEEDBACKQA_PATH": args.feedbackqa,
            "JUDGELOOP_DEMO_DOMAIN": args.domain,
            "JUDGELOOP_DEMO_ITEMS": str(needed // 2 + 10),
            "JUDGELOOP_JUDGE_MODEL": args.judge_model,
            "JUDGELOOP_REFLECTION_MODEL": args.reflection_model,
            "JUDGELOOP_EMBEDDING_MODEL": args.embedding_model,
            "MLFLOW_ENABLE_ASYNC_TRACE_LOGGING": "false",
        }
    )
    import logging

    logging.disable(logging.WARNING)
    from judgeloop import alignment, demo, judges
    from judgeloop.settings import load_settings
    from judgeloop.store import connect

    settings = load_settings()
    experiment_id = connect(settings)
    started = time.perf_counter()
    demo.seed(settings, experiment_id)
    judges.ensure_base_judge(settings, experiment_id, settings.judge_model)
    demo.release_labels(settings, experiment_id, args.start)
    first = alignment.align(settings, experiment_id)
    judges.promote(experiment_id, first.new_version)
    print(f"store: {workdir} ({needed} labels needed, setup {time.perf_counter() - started:.1f} s)")
    print(f"initial alignment on {args.start} labels: {first.llm_calls}")

    from judgeloop.fake_llm import CALLS

    rows = []
    for k in ks:
        release = demo.release_labels(settings, experiment_id, k)
        distilled_before = CALLS["guideline_examples"]
        t0 = time.perf_counter()
        result = alignment.align(settings, experiment_id)
        seconds = time.perf_counter() - t0
        if result.new_version:
            judges.promote(experiment_id, result.new_version)
        calls = result.llm_calls
        rows.append(
            {
                "k_new_labels": release.written,
                "labels_total": result.alignment_labels + result.heldout_labels,
                "alignment_traces": result.alignment_traces,
                "align_reflection": calls.get("align_reflection_calls", 0),
                "align_embedding": calls.get("align_embedding_calls", 0),
                "measure_judge": calls.get("measure_judge_calls", 0),
                "measure_embedding": calls.get("measure_embedding_calls", 0),
                "examples_distilled": CALLS["guideline_examples"] - distilled_before,
                "seconds": round(seconds, 2),
            }
        )
    header = list(rows[0])
    print("\n" + " | ".join(f"{h:>17}" for h in header))
    for row in rows:
        print(" | ".join(f"{row[h]:>17}" for h in header))
    print(
        "\nexamples_distilled (fake provider only): expert examples MemAlign sent to the reflection model.\n"
        "align_*: MemAlign's calls; they should grow with the new labels only (traces whose labels are\n"
        "unchanged are skipped). measure_*: scoring old and new judge on the held-out split (2 judge calls\n"
        "per held-out trace, plus memory-retrieval embeddings), which grows with all labels."
    )
    print(json.dumps({"benchmark": "realign_calls", "domain": args.domain, "start": args.start, "rows": rows}))


if __name__ == "__main__":
    main()
