"""``judgeloop evaluate-judge``: k-fold base vs aligned agreement on labelled data, with intervals."""

import json
import tempfile
from pathlib import Path


def register(commands) -> None:
    parser = commands.add_parser(
        "evaluate-judge",
        help="k-fold MemAlign alignment on labelled data: base vs aligned agreement with intervals and the SME ceiling.",
    )
    parser.add_argument("--k", type=int, default=5, help="folds (default 5)")
    parser.add_argument(
        "--feedbackqa", metavar="DOMAIN",
        help="evaluate on a FeedbackQA domain (JUDGELOOP_FEEDBACKQA_PATH layout) in a throwaway store, "
        "instead of the labels in the configured store (import a labels file there with `judgeloop labels import`)",
    )
    parser.add_argument("--items", type=int, default=None, help="with --feedbackqa: use the first N answers")
    parser.add_argument("--out", type=Path, default=None, help="folder for the table (JSON, CSV) and the chart (SVG)")
    parser.set_defaults(handler=run)


def run(args) -> int:
    from judgeloop.judging import charts, fidelity
    from judgeloop.settings import load_settings
    from judgeloop.stack.store import connect

    settings = load_settings()
    if args.feedbackqa:
        workdir = Path(tempfile.mkdtemp(prefix="judgeloop-evaluate-"))
        settings = settings.model_copy(update={"home": workdir, "tracking_uri": f"sqlite:///{workdir / 'mlflow.db'}"})
        experiment_id = connect(settings)
        _load_feedbackqa(settings, experiment_id, args.feedbackqa, args.items)
    else:
        experiment_id = connect(settings)
    result = fidelity.evaluate(settings, experiment_id, k=args.k, progress=lambda m: print(m, flush=True))
    print()
    print(fidelity.render(result))
    out = args.out or settings.resolved_home / "evaluations"
    out.mkdir(parents=True, exist_ok=True)
    rows = result.table()
    (out / "judge-fidelity.json").write_text(json.dumps({"folds": result.folds, "traces": result.traces, "rows": rows}, indent=2))
    (out / "judge-fidelity.csv").write_text(
        "\n".join([",".join(rows[0])] + [",".join(f'"{v}"' for v in row.values()) for row in rows]) + "\n"
    )
    series = [("base judge", result.comparison.before), ("aligned (k-fold)", result.comparison.after)]
    if result.ceiling:
        series.append(("SME vs SME", result.ceiling.estimates))
    chart = charts.write(
        charts.agreement_svg(f"{settings.judge_name}: base vs aligned on {result.traces} traces (95% intervals)", series),
        out / "judge-fidelity.svg",
    )
    print(f"\ntable: {out / 'judge-fidelity.csv'}\nchart: {chart}")
    return 0


def _load_feedbackqa(settings, experiment_id: str, domain: str, limit: int | None) -> None:
    from judgeloop.sme_labels import labels
    from judgeloop.tracing import feedbackqa, production

    items = feedbackqa.load_items(settings.feedbackqa_path, domain, limit=limit)
    trace_ids = production.seed_traces(experiment_id, items)
    for item in items:
        for rating in item.ratings:
            labels.log_label(
                trace_ids[item.key], settings.judge_name, feedbackqa.to_scale(rating.rating, settings), rating.reviewer, rating.reason
            )
    print(f"{len(items)} FeedbackQA {domain} answers with {sum(len(i.ratings) for i in items)} expert ratings loaded", flush=True)
