"""The ``judgeloop`` command: run the loop locally, manage SME labels, show status."""

import argparse
import sys


def build_parser() -> argparse.ArgumentParser:
    from judgeloop.commands import demo, evaluate_judge, judges_file, labels_io, status, traces_io, up

    parser = argparse.ArgumentParser(prog="judgeloop", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    up.register(commands)
    demo.register(commands)
    labels_io.register(commands)
    traces_io.register(commands)
    status.register(commands)
    evaluate_judge.register(commands)
    judges_file.register(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    from judgeloop.stack import quick_exit

    quick_exit.install()
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        from judgeloop.stack import tracking_auth
        from judgeloop.stack.running_stack import StateFileError
        from judgeloop.judging.judge_specs import JudgesFileError
        from judgeloop.workspace import WorkspaceNotReadyError

        if isinstance(exc, (WorkspaceNotReadyError, StateFileError, JudgesFileError)):  # its message names what to fix
            print(f"judgeloop: {exc}", file=sys.stderr)
            return 2

        status = tracking_auth.refusal_status(exc)
        if status is None:
            raise
        from judgeloop.settings import load_settings

        settings = load_settings()
        print(f"judgeloop: {tracking_auth.explain(status, settings.resolved_tracking_uri, settings.resolved_home)}",
              file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
