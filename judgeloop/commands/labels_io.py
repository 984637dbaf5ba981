"""``judgeloop labels``: import and export SME labels as CSV/JSONL, and tell Dagster they changed."""

import sys

from judgeloop.settings import load_settings


def register(commands) -> None:
    parser = commands.add_parser("labels", help="Import/export SME labels (CSV or JSONL); notify Dagster of new labels.")
    actions = parser.add_subparsers(dest="action", required=True)

    imp = actions.add_parser(
        "import",
        help="Write labels from a file as HUMAN feedback named like the judge (all rows checked first).",
        description=(
            "Columns (CSV header) or keys (JSONL): trace_id, value, comment, reviewer, and optionally trace_key "
            "(the trace's own key: used when the trace id is not in this store). Every row is checked "
            "before anything is written; one bad row means nothing is written unless --allow-partial. "
            "Re-importing is safe: unchanged rows are skipped, changed ones override the reviewer's label."
        ),
    )
    imp.add_argument("file", help="labels file, .csv or .jsonl ('-' = stdin, with --format)")
    imp.add_argument("--allow-partial", action="store_true", help="write the good rows even when some are bad")
    imp.add_argument("--format", choices=["csv", "jsonl"], help="file format (default: from the extension)")
    imp.add_argument("--dry-run", action="store_true", help="check the file and show what would change; write nothing")
    imp.set_defaults(handler=import_command)

    exp = actions.add_parser("export", help="Write the current valid labels as CSV or JSONL (re-importable).")
    exp.add_argument("file", nargs="?", default="-", help="output file ('-' or nothing = stdout)")
    exp.add_argument("--format", choices=["csv", "jsonl"], help="default: from the extension, else csv")
    exp.set_defaults(handler=export_command)

    notify = actions.add_parser(
        "notify",
        help="Labels changed: ask the running Dagster to re-align now (only if there are new usable labels).",
    )
    notify.add_argument(
        "--dagster-url", help="Dagster webserver (default: $JUDGELOOP_DAGSTER_URL or http://127.0.0.1:3000)"
    )
    notify.add_argument("--force", action="store_true", help="launch even if these labels already failed a gate")
    notify.add_argument("--dry-run", action="store_true", help="print the decision; contact nobody")
    notify.set_defaults(handler=notify_command)


def _connect():
    from judgeloop.stack.store import connect

    settings = load_settings()
    return settings, connect(settings, calls_models=False)


def import_command(args) -> int:
    from judgeloop.sme_labels.label_files import importing
    from judgeloop.sme_labels.label_files.formats import LabelFileError

    settings, experiment_id = _connect()
    try:
        report = importing.import_labels(
            settings, experiment_id, args.file, args.format, allow_partial=args.allow_partial, dry_run=args.dry_run,
            progress=lambda message: print(f"{args.file}: {message}", file=sys.stderr, flush=True),
        )
    except LabelFileError as exc:
        print(f"judgeloop labels import: {exc}", file=sys.stderr)
        return 2
    except importing.ImportInterrupted as exc:
        print(f"judgeloop labels import: {exc}", file=sys.stderr)
        return 130 if isinstance(exc.__cause__, KeyboardInterrupt) else 1
    for bad in report.bad:
        print(f"{args.file}: {bad}", file=sys.stderr)
    name = f"{args.file}: {report.rows} row(s)"
    if args.dry_run:
        counts = {kind: report.count(kind) for kind in (importing.WRITE, importing.EDIT, importing.UNCHANGED)}
        print(
            f"{name}; dry run, nothing written: would write {counts['write']}, edit {counts['edit']}, "
            f"leave {counts['unchanged']} unchanged; rejected {report.rejected}"
        )
    elif report.bad and not report.applied:
        good = len(report.actions) - report.unchanged
        print(
            f"{name}; nothing written: {report.rejected} bad row(s) listed above. Fix them, or pass "
            f"--allow-partial to write the {good} good row(s) that would change something."
        )
        print(report.summary())
    else:
        print(f"{name}; {report.summary()}")
    if report.applied and not args.dry_run:
        _push(settings, experiment_id)
    return 1 if report.bad else 0


def _push(settings, experiment_id: str) -> None:
    """A whole batch written: re-align now instead of at the label sensor's next poll."""
    from judgeloop_assets.label_push import push_after_writing

    push_after_writing(settings, experiment_id, say=lambda message: print(message, file=sys.stderr))


def export_command(args) -> int:
    from judgeloop.sme_labels.label_files.exporting import export_labels
    from judgeloop.sme_labels.label_files.formats import LabelFileError, detect_format

    fmt = args.format
    if fmt is None:
        try:
            fmt = "csv" if args.file == "-" else detect_format(args.file)
        except LabelFileError:
            fmt = "csv"
    settings, experiment_id = _connect()
    count = export_labels(
        settings, experiment_id, args.file, fmt, warn=lambda message: print(f"warning: {message}", file=sys.stderr)
    )
    where = "stdout" if args.file == "-" else args.file
    print(f"exported {count} current label(s) as {fmt} to {where}", file=sys.stderr)
    return 0


def notify_command(args) -> int:
    from judgeloop.sme_labels.notify import decide_notify

    settings, experiment_id = _connect()
    decision = decide_notify(settings, experiment_id, force=args.force)
    if not decision.launch:
        print(decision.reason)
        return 0
    from judgeloop_assets.dagster_client import DagsterClient, DagsterError
    from judgeloop.run_names import REALIGN_JOB

    url = (args.dagster_url or settings.resolved_dagster_url).rstrip("/")
    if args.dry_run:
        print(f"would launch {REALIGN_JOB} at {url} with tags {decision.tags}: {decision.reason}")
        return 0
    try:
        dagster = DagsterClient(url)
        running = dagster.active_runs(REALIGN_JOB)
        if running:
            print(
                f"{REALIGN_JOB} run {running[0]} is already queued or running; not launching another "
                f"({decision.reason}; notify again when it has finished)"
            )
            return 0
        run_id = dagster.launch(REALIGN_JOB, decision.tags)
    except DagsterError as exc:
        print(f"judgeloop labels notify: {exc}", file=sys.stderr)
        return 1
    print(f"launched {REALIGN_JOB} run {run_id}: {decision.reason}")
    print(f"{url}/runs/{run_id}")
    return 0
