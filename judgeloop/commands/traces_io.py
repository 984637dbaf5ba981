"""``judgeloop traces import``: production traffic from a CSV/JSONL file, for apps without tracing."""

import sys

from judgeloop.settings import load_settings


def register(commands) -> None:
    parser = commands.add_parser("traces", help="Bring your own traffic in as traces (CSV or JSONL).")
    actions = parser.add_subparsers(dest="action", required=True)
    imp = actions.add_parser(
        "import",
        help="Log one production trace per row (question, answer, optional key and expectations).",
        description=(
            "Columns (CSV header) or keys (JSONL): question, answer, and optionally key (your own id for the "
            "exchange: the trace's client request id; default: derived from question and answer) and "
            "expectations (a reference answer as text, or a JSON object such as {\"expected_response\": ...}). "
            "Every row is checked first; one bad row means nothing is written. Re-importing is safe: a row "
            "whose key is already in the experiment is not logged again."
        ),
    )
    imp.add_argument("file", help="traffic file, .csv or .jsonl")
    imp.add_argument("--format", choices=["csv", "jsonl"], help="file format (default: from the extension)")
    imp.add_argument("--dry-run", action="store_true", help="check the file and count what would be logged; write nothing")
    imp.set_defaults(handler=import_command)


def import_command(args) -> int:
    from judgeloop.tracing import trace_files
    from judgeloop.stack.store import connect

    settings = load_settings()
    experiment_id = connect(settings)
    try:
        report = trace_files.import_traces(
            settings, experiment_id, args.file, args.format, dry_run=args.dry_run,
            progress=lambda message: print(f"{args.file}: {message}", file=sys.stderr, flush=True),
        )
    except trace_files.TraceFileError as exc:
        print(f"judgeloop traces import: {exc}", file=sys.stderr)
        return 2
    for bad in report.bad:
        print(f"{args.file}: {bad}", file=sys.stderr)
    if report.bad:
        print(f"{args.file}: {report.rows} row(s); nothing written: {len(report.bad)} bad row(s) listed above.")
        return 1
    if args.dry_run:
        print(f"{args.file}: {report.rows} row(s); dry run, nothing written: would log {report.to_log}, "
              f"{report.already_present} already present")
        return 0
    print(f"{args.file}: {report.rows} row(s); {report.summary()}")
    return 0
