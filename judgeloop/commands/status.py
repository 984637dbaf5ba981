"""``judgeloop status``: judge versions, labels waiting, the label sensor's last tick, the production prompt."""

import json
import os
import sys
from pathlib import Path

from judgeloop.settings import Settings, is_databricks, load_settings

SENSOR_NAME = "sme_labels_sensor"


def register(commands) -> None:
    parser = commands.add_parser("status", help="Judge versions and agreement, labels waiting, last sensor tick, production prompt.")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument(
        "--chart", metavar="FILE", help="write an SVG of every promoted version's agreement on the current held-out labels"
    )
    parser.set_defaults(handler=run)


def run(args) -> int:
    settings = load_settings()
    report = collect(settings)
    if args.chart:
        path = write_chart(report, Path(args.chart))
        print(f"chart: {path}", file=sys.stderr)
    if args.json:
        print(json.dumps(report, indent=2, sort_keys=True, default=str))
    else:
        print(render(report))
    return 0


# ---------------------------------------------------------------------------------------
# Collecting


def collect(settings: Settings) -> dict:
    experiment_id = _open_experiment(settings)
    report = {
        "tracking_uri": settings.resolved_tracking_uri,
        "experiment": {"name": settings.experiment_name, "id": experiment_id},
        "judge": {"name": settings.judge_name, "promoted_version": None, "base_version": None, "versions": []},
        "labels": {
            "usable": 0, "rejected": 0, "waiting": 0, "threshold": settings.label_threshold, "traces": 0,
            "reviewers": [], "newest_label_ms": None, "aligned_up_to_ms": None,
        },
        "sensor": sensor_status(settings),
        "prompt": {"name": _prompt_name(settings), "alias": settings.production_alias, "production_version": None},
    }
    if experiment_id is None:
        return report
    from judgeloop.sme_labels import labels

    current = labels.current_labels(settings, experiment_id)  # read once, used by every section
    report["judge"] = judge_status(settings, experiment_id)
    report["labels"] = label_status(settings, experiment_id, report["judge"], report["sensor"].get("cursor"), current)
    report["review"] = review_status(settings, experiment_id, current)
    lineages = report["judge"].pop("lineages")
    report["reference"] = reference_status(settings, experiment_id, report["judge"], lineages, current[0])
    report["prompt"]["production_version"] = _production_prompt_version(settings)
    return report


def _open_experiment(settings: Settings) -> str | None:
    """The experiment id, or None when there is no store or experiment yet (never creates either)."""
    import mlflow

    uri = settings.resolved_tracking_uri
    if uri.startswith("sqlite:///") and not Path(uri[len("sqlite:///"):]).exists():
        return None
    # Only the environment switches, not store.prepare_environment: status calls no model, and
    # registering fake:/ providers would import litellm for nothing.
    from judgeloop.stack.store import configure_libraries
    from judgeloop.workspace import for_settings

    configure_libraries(settings)
    for_settings(settings).check_ready()  # a missing credential is named, not a stack trace
    mlflow.set_tracking_uri(uri)
    experiment = mlflow.get_experiment_by_name(settings.experiment_name)
    if experiment is None or experiment.lifecycle_stage != "active":
        return None
    mlflow.set_experiment(experiment_id=experiment.experiment_id)
    return experiment.experiment_id


def _decision(entry: dict, number: int, promoted: int | None, ever_promoted: bool) -> tuple[str, str]:
    """(state, why) of a version: in use, promoted earlier, blocked, or base."""
    gate = entry.get("gate") or {}
    if number == promoted:
        state = "in use"
    elif gate and not gate.get("passed"):
        state = "blocked"
    elif ever_promoted or entry.get("kind") == "base":
        state = "promoted earlier"
    else:
        state = "not decided"
    if entry.get("kind") == "base":
        return state, "base judge, as configured"
    return state, gate.get("reason") or "no gate decision recorded"


def judge_status(settings: Settings, experiment_id: str) -> dict:
    from judgeloop.judging import judges
    from judgeloop.commands.display import finite

    promoted = judges.promoted_version(experiment_id)
    numbers = judges.version_numbers(settings, experiment_id)
    try:
        base = judges.base_version(experiment_id)
    except LookupError:
        base = None
    lineages = judges.all_lineages(experiment_id)
    versions = []
    for number in numbers:
        entry = lineages.get(number, {})
        gate = entry.get("gate") or {}
        state, why = _decision(entry, number, promoted, bool(gate.get("passed")))
        interval = entry.get("kappa_after_interval") or [None, None]
        versions.append(
            {
                "version": number,
                "kind": entry.get("kind") or "unknown",
                "promoted": number == promoted,
                "base": number == base,
                "previous_version": entry.get("previous_version"),
                "label_count": entry.get("label_count"),
                "heldout_label_count": entry.get("heldout_label_count"),
                "newest_label_ms": entry.get("newest_label_ms"),
                "kappa_before": finite(entry.get("kappa_before")),
                "kappa_after": finite(entry.get("kappa_after")),
                "kappa_after_interval": {"low": interval[0], "high": interval[1]},
                # The numbers above stand on the held-out split of that day, not today's.
                "measured_traces": entry.get("measured_traces"),
                "heldout_traces": entry.get("heldout_traces"),
                "measured_on": judges.measured_on(entry) if entry.get("kind") == "aligned" else None,
                "gate_case": gate.get("case"),
                "state": state,
                "why": why,
                "model": entry.get("model"),
            }
        )
    return {"name": settings.judge_name, "promoted_version": promoted, "base_version": base, "versions": versions,
            "lineages": lineages}


def reference_status(settings: Settings, experiment_id: str, judge: dict, lineages: dict, used) -> dict | None:
    """Every promoted version on the current held-out labels, from stored scores (no judge call)."""
    from judgeloop.judging import reference

    if not used:
        return None
    measured = reference.measure(
        settings, experiment_id, used, lineages, judge["promoted_version"], judge["base_version"]
    )
    return measured.as_dict()


def review_status(settings: Settings, experiment_id: str, current=None) -> dict:
    """The review queue's progress, per reviewer, and how much reviewers agree with each other."""
    from judgeloop import workspace
    from judgeloop.sme_labels import labels, review_progress

    used, rejected = current if current is not None else labels.current_labels(settings, experiment_id)

    queue = workspace.for_settings(settings).review_queue(experiment_id, settings.resolved_mlflow_ui_url)
    result = review_progress.report(settings, used, rejected, queue.trace_ids if queue else None).as_dict()
    result["queue"] = None if queue is None else {
        "name": queue.name, "id": queue.queue_id, "url": queue.url, "complete": queue.complete, "pending": queue.pending,
    }
    return result


def label_status(settings: Settings, experiment_id: str, judge: dict, sensor_cursor: str | None = None, current_labels=None) -> dict:
    """Usable labels, and how many wait for a re-alignment: the sensor's own count (``judgeloop.sme_labels.waiting``),
    read from where its cursor stands (no cursor yet: every usable label waits, as on its first tick)."""
    from judgeloop.sme_labels import labels, waiting

    current, rejected = current_labels if current_labels is not None else labels.current_labels(settings, experiment_id)
    state = waiting.RealignState.decode(sensor_cursor)
    if state.consumed == labels.Cursor() and current_labels is not None:
        # No cursor yet: every usable label waits, exactly the labels already read (no second full read).
        count = len(current)
    else:
        # Labels stamped in the past that the sensor noticed (``waiting.noticed_backdated``) wait too.
        count = waiting.waiting_labels(settings, experiment_id, state.consumed).count + state.backdated
    return {
        "usable": len(current),
        "rejected": len(rejected),
        "waiting": count,
        "threshold": settings.label_threshold,
        "traces": len({label.trace_id for label in current}),
        "reviewers": sorted({str(label.reviewer) for label in current}),
        "newest_label_ms": max((label.updated_ms for label in current), default=None),
        "aligned_up_to_ms": state.consumed.updated_ms or None,
        "in_running_realignment": state.inflight.label_count if state.inflight else 0,
        "failed_realignments": state.failures,
    }


def _production_prompt_version(settings: Settings) -> int | None:
    from judgeloop.prompt_optimization import prompts

    prompt = prompts.production(settings)
    return int(prompt.version) if prompt is not None else None


def dagster_home(settings: Settings) -> Path | None:
    """DAGSTER_HOME when set, else the folder `judgeloop up` uses, if it exists."""
    configured = os.environ.get("DAGSTER_HOME")
    if configured:
        path = Path(configured).expanduser()
        return path if path.is_dir() else None
    if is_databricks(settings):
        return None
    path = settings.dagster_home
    return path if path.is_dir() else None


def sensor_status(settings: Settings, name: str = SENSOR_NAME) -> dict:
    """The sensor's stored state and newest tick (read from the Dagster instance: outside the core)."""
    from judgeloop_assets.sensor_state import sensor_status as read

    return read(dagster_home(settings), settings, name)


# ---------------------------------------------------------------------------------------
# Rendering


def _kappa(value) -> str:
    return "unmeasured" if value is None else f"{value:.3f}"


def _estimate(data: dict | None) -> str:
    if not data or data.get("value") is None:
        return "unmeasured"
    if data.get("low") is None:
        return f"{data['value']:.3f} (no interval)"
    return f"{data['value']:.3f} [{data['low']:.3f}, {data['high']:.3f}]"


def _render_reference(reference: dict | None) -> list[str]:
    if not reference or not reference["versions"]:
        return []
    lines = [
        f"agreement on today's held-out labels (one reference for every promoted version: {reference['traces']} of "
        f"{reference['heldout_traces']} held-out traces, stored scores, 95% intervals):"
    ]
    for v in reference["versions"]:
        lines.append(
            f"    v{v['version']} ({v['kind']}{', in use' if v['in_use'] else ''}): kappa {_estimate(v['kappa'])} "
            f"on {v['traces']} of {reference['traces']}"
        )
    if reference["ceiling"]:
        ceiling = reference["ceiling"]
        lines.append(f"    experts vs experts: kappa {_estimate(ceiling['kappa'])} on {ceiling['traces']} trace(s) with 2+ experts")
    if reference["warning"]:
        lines.append(f"  WARNING: {reference['warning']}")
    return lines


def write_chart(report: dict, path: Path) -> Path:
    """The one chart to read first: each promoted version on today's held-out labels, the experts' band."""
    from judgeloop.judging import charts
    from judgeloop.judging.intervals import Estimate

    reference = report.get("reference") or {"versions": [], "ceiling": None, "traces": 0, "heldout_traces": 0}
    points = [
        (f"v{v['version']}{' (in use)' if v['in_use'] else ''}", Estimate(**v["kappa"]))
        for v in reference["versions"]
    ]
    ceiling = Estimate(**reference["ceiling"]["kappa"]) if reference["ceiling"] else None
    title = (
        f"{report['judge']['name']}: every promoted version on today's {reference['traces']} of "
        f"{reference['heldout_traces']} held-out traces"
    )
    note = reference.get("warning") or "per-version numbers on the held-out split of their day: judgeloop status"
    return charts.write(charts.history_svg(title, points, ceiling, note), path)


def _render_review(review: dict | None) -> list[str]:
    if review is None:
        return []
    queue = review["queue"]
    if queue is None:
        lines = ["review queue: not created yet (materialize labeling_session)"]
    else:
        lines = [f"review queue {queue['name']!r}: {queue['complete']} complete, {queue['pending']} pending; {queue['url']}"]
    if review["reviewers"]:
        lines.append("  reviewers: " + ", ".join(
            f"{r['reviewer']} {r['labelled']}/{r['queued']}" if r["queued"] else f"{r['reviewer']} {r['labelled']}"
            for r in review["reviewers"]
        ) + " labelled")
    if review["agreement"]:
        lines.append("  reviewer agreement: " + "; ".join(
            f"{' ~ '.join(p['reviewers'])} kappa {p['kappa']:.3f} (exact {p['exact']:.0%}) on {p['shared_traces']} shared trace(s)"
            for p in review["agreement"]
        ))
    elif review["reviewers"]:
        lines.append("  reviewer agreement: no trace labelled by two reviewers yet")
    return lines


def render(report: dict) -> str:
    from judgeloop.timestamps import format_ms

    lines = []
    experiment = report["experiment"]
    if experiment["id"] is None:
        lines.append(f"experiment {experiment['name']!r}: not created yet ({report['tracking_uri']})")
    else:
        lines.append(f"experiment {experiment['name']!r} (id {experiment['id']}) at {report['tracking_uri']}")

    judge = report["judge"]
    promoted = judge["promoted_version"]
    lines.append(
        f"judge {judge['name']!r}: {len(judge['versions'])} version(s), promoted "
        + (f"v{promoted}" if promoted is not None else "none")
    )
    for v in judge["versions"]:
        mark = "*" if v["promoted"] else " "
        detail = v["kind"]
        if v["kind"] == "aligned":
            interval = v["kappa_after_interval"]
            detail += (
                f" from v{v['previous_version']} on {v['label_count']} label(s) up to {format_ms(v['newest_label_ms'])}: "
                f"{v['state']}; gate {v['gate_case'] or '-'}; held-out kappa {_kappa(v['kappa_before'])} -> "
                f"{_kappa(v['kappa_after'])}"
                + (f" [{interval['low']:.3f}, {interval['high']:.3f}]" if interval["low"] is not None else "")
                + f" {v['measured_on']} of that day"
            )
            lines.append(f"  {mark} v{v['version']}: {detail}")
            lines.append(f"      why: {v['why']}")
            continue
        if v["model"]:
            detail += f" ({v['model']})"
        detail += f": {v['state']}"
        lines.append(f"  {mark} v{v['version']}: {detail}")
    lines.extend(_render_reference(report.get("reference")))

    labels = report["labels"]
    waiting = f"{labels['waiting']} waiting for alignment"
    if labels["aligned_up_to_ms"]:
        waiting += f" (changed after {format_ms(labels['aligned_up_to_ms'])}, the newest label a re-alignment took)"
    if labels.get("in_running_realignment"):
        waiting += f", {labels['in_running_realignment']} in the re-alignment the sensor requested last"
    if labels.get("failed_realignments"):
        waiting += f", after {labels['failed_realignments']} failed re-alignment(s)"
    lines.append(
        f"labels: {labels['usable']} usable on {labels['traces']} trace(s), {labels['rejected']} rejected; "
        f"{waiting}; sensor threshold {labels['threshold']}"
    )

    lines.extend(_render_review(report.get("review")))

    sensor = report["sensor"]
    tick = sensor["last_tick"]
    if tick is None:
        why = sensor.get("error") or (f"no tick yet (state {sensor['state']})" if sensor["state"] else "never ticked")
        lines.append(f"sensor {sensor['name']}: last tick unknown ({why})")
    else:
        outcome = tick["status"]
        if tick["skip_reason"]:
            outcome += f": {tick['skip_reason']}"
        if tick["run_ids"]:
            outcome += f": run(s) {', '.join(tick['run_ids'])}"
        if tick["error"]:
            outcome += f": {tick['error'].splitlines()[0]}"
        lines.append(f"sensor {sensor['name']}: last tick {tick['time']} {outcome}")

    prompt = report["prompt"]
    version = prompt["production_version"]
    lines.append(
        f"production prompt {prompt['name']!r}@{prompt['alias']}: " + (f"v{version}" if version is not None else "none")
    )
    return "\n".join(lines)


def _prompt_name(settings: Settings) -> str:
    from judgeloop.prompt_optimization import prompts

    return prompts.name(settings)
