"""``judgeloop judges``: the judges this deployment aligns, read and checked from the judges file."""

import json
import sys

from judgeloop.settings import settings_without_judges_file


def register(commands) -> None:
    parser = commands.add_parser(
        "judges", help="List the judges (JUDGELOOP_JUDGES_FILE, or the single judge's settings); check the file."
    )
    parser.add_argument("--json", action="store_true", help="Print them as JSON.")
    parser.set_defaults(handler=run)


def run(args) -> int:
    from judgeloop.judging import judge_specs

    settings = settings_without_judges_file()
    try:
        specs = judge_specs.load(settings)
    except judge_specs.JudgesFileError as exc:
        print(f"judgeloop: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps([spec.model_dump(mode="json") for spec in specs], indent=2))
        return 0
    source = settings.judges_file or "the single-judge settings (JUDGELOOP_JUDGE_*)"
    print(f"{len(specs)} judge(s) from {source}:")
    for spec in specs:
        scale = {
            "likert": f"{spec.scale_min}-{spec.scale_max}", "pass_fail": "pass/fail",
        }.get(spec.feedback_type.value, ", ".join(spec.categories))
        extras = [f"{name} {value}" for name, value in (
            ("model", spec.model), ("threshold", spec.label_threshold), ("gate margin", spec.gate_margin),
        ) if value is not None]
        extras.append(f"weight {spec.weight:g}")
        print(f"  {spec.name}: {spec.feedback_type.value} ({scale}); {'; '.join(extras)}")
    if len(specs) > 1:
        print("The graph aligns one judge per deployment: with this file the loop refuses to start; keep one "
              "judge in it, or run one deployment (experiment) per judge.")
        return 2
    return 0
