"""``judgeloop demo``: FeedbackQA as production traffic, its expert ratings as SME labels."""

import sys

from judgeloop.settings import load_settings


def register(commands) -> None:
    parser = commands.add_parser("demo", help="Demo on real expert labels (FeedbackQA).")
    actions = parser.add_subparsers(dest="action", required=True)
    seed = actions.add_parser("seed", help="Log the demo's production traces and expectations (idempotent).")
    seed.set_defaults(handler=seed_command)
    release = actions.add_parser("release", help="Write the next batch of expert ratings as SME labels.")
    release.add_argument("--count", type=int, default=10)
    release.add_argument(
        "--leave", type=int, default=0, metavar="N",
        help="leave the last N demo traces to a person: never labelled by the demo's raters; once the "
        "rest is out, print the review queue link where they wait",
    )
    release.set_defaults(handler=release_command)


def _connect():
    from judgeloop.stack.store import connect

    settings = load_settings()
    return settings, connect(settings)


def seed_command(args) -> int:
    from judgeloop.tracing import demo

    settings, experiment_id = _connect()
    traces = demo.seed(settings, experiment_id)
    path = demo.write_expectations(settings)
    print(f"{len(traces)} demo traces in experiment {experiment_id}; expectations in {path}")
    print(f"set JUDGELOOP_EXPECTATIONS_PATH={path} for eval_dataset to attach them (judgeloop up --demo does)")
    return 0


def release_command(args) -> int:
    from judgeloop.tracing import demo

    settings, experiment_id = _connect()
    if args.count <= 0:
        print("--count must be positive", file=sys.stderr)
        return 2
    if args.leave < 0:
        print("--leave must not be negative", file=sys.stderr)
        return 2
    release = demo.release_labels(settings, experiment_id, args.count, left_for_review=args.leave)
    print(f"released {release.written} expert labels as '{settings.judge_name}' ({release.remaining} still held back)")
    if release.remaining == 0 and args.leave:
        print(demo.review_invitation(settings, experiment_id, args.leave))
    if release.written:
        from judgeloop.commands.labels_io import _push

        _push(settings, experiment_id)
    return 0
