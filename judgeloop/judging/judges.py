"""The judge: built from settings, registered as versioned MLflow scorers, promoted explicitly.

Versions are MLflow's own (each ``register`` on the same name adds one). Which version is in
use is an explicit promotion recorded as an experiment tag, never "the latest version": a
re-aligned judge that failed its gate stays registered but unused.

MLflow's scorer registry (3.17) has no aliases or tags on a judge, and its Judges page lists
the newest version. So what a person needs is written as experiment tags, readable in the
MLflow UI: ``judgeloop.promoted_judge`` names the version in use and why, and each version
``N`` has ``judgeloop.judge.vN`` (what it was built from, its held-out agreement) and, for an
aligned judge, ``judgeloop.judge.vN.guidelines`` (what MemAlign distilled from the experts).
"""

import hashlib
import json
from dataclasses import dataclass
from typing import Any, Literal

from judgeloop.settings import FeedbackType, Settings

PROMOTED_TAG = "judgeloop.promoted_judge_version"
BASE_VERSION_TAG = "judgeloop.base_judge_version"
BASE_FINGERPRINT_TAG = "judgeloop.base_judge_fingerprint"
LINEAGE_TAG_PREFIX = "judgeloop.judge_lineage."
PROMOTED_SUMMARY_TAG = "judgeloop.promoted_judge"
VERSION_SUMMARY_TAG = "judgeloop.judge.v{version}"
GUIDELINES_TAG = "judgeloop.judge.v{version}.guidelines"
# MLflow caps experiment tag values (20000 characters): long guideline lists are cut well below.
TAG_VALUE_LIMIT = 4000


@dataclass(frozen=True)
class JudgeVersion:
    name: str
    version: int
    created: bool


def feedback_value_type(settings: Settings) -> Any:
    if settings.feedback_type == FeedbackType.LIKERT:
        return Literal[tuple(range(settings.scale_min, settings.scale_max + 1))]
    if settings.feedback_type == FeedbackType.PASS_FAIL:
        return bool
    if settings.feedback_type == FeedbackType.CATEGORICAL:
        return Literal[tuple(settings.categories)]
    raise ValueError(f"Unknown feedback type {settings.feedback_type!r}: use likert, pass_fail or categorical.")


def scale_description(settings: Settings) -> str:
    if settings.feedback_type == FeedbackType.LIKERT:
        return (
            f"Answer with an integer from {settings.scale_min} (worst) to {settings.scale_max} (best)."
        )
    if settings.feedback_type == FeedbackType.PASS_FAIL:
        return "Answer true if the response passes, false if it fails."
    return "Answer with exactly one of (worst to best): " + ", ".join(settings.categories) + "."


def full_instructions(settings: Settings) -> str:
    text = settings.judge_instructions.strip()
    if "{{ inputs }}" not in text and "{{ outputs }}" not in text:
        raise ValueError(
            "JUDGELOOP_JUDGE_INSTRUCTIONS must reference {{ inputs }} and/or {{ outputs }} "
            f"so the judge sees the trace; got: {text[:80]!r}"
        )
    return f"{text}\n\n{scale_description(settings)}"


def build_judge(settings: Settings, model: str):
    from mlflow.genai.judges import make_judge

    return make_judge(
        name=settings.judge_name,
        instructions=full_instructions(settings),
        model=model,
        feedback_value_type=feedback_value_type(settings),
    )


def fingerprint(settings: Settings, model: str) -> str:
    payload = json.dumps(
        [settings.judge_name, full_instructions(settings), model, str(feedback_value_type(settings))]
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def latest_version(experiment_id: str, name: str) -> int | None:
    from mlflow.genai.scorers.registry import list_scorer_versions

    try:
        versions = list_scorer_versions(name=name, experiment_id=experiment_id)
    except Exception:  # MLflow raises when no scorer of that name exists yet
        return None
    return max((v for _, v in versions), default=None)


def register(judge, experiment_id: str) -> int:
    """Register ``judge`` as a new version under its name and return that version number."""
    judge.register(name=judge.name, experiment_id=experiment_id)
    version = latest_version(experiment_id, judge.name)
    if version is None:
        raise RuntimeError(f"Registering judge {judge.name!r} did not create a version")
    return version


def ensure_base_judge(settings: Settings, experiment_id: str, model: str) -> JudgeVersion:
    """Register the base judge if its definition changed since the last registration."""
    from judgeloop.stack.store import get_experiment_tag, set_experiment_tag

    wanted = fingerprint(settings, model)
    known_version = get_experiment_tag(experiment_id, BASE_VERSION_TAG)
    if known_version and get_experiment_tag(experiment_id, BASE_FINGERPRINT_TAG) == wanted:
        if get_experiment_tag(experiment_id, PROMOTED_TAG) is None:
            promote(experiment_id, int(known_version))
        return JudgeVersion(settings.judge_name, int(known_version), created=False)
    version = register(build_judge(settings, model), experiment_id)
    set_experiment_tag(experiment_id, BASE_VERSION_TAG, str(version))
    set_experiment_tag(experiment_id, BASE_FINGERPRINT_TAG, wanted)
    record_lineage(experiment_id, version, {"kind": "base", "model": model, "fingerprint": wanted})
    # A new base definition restarts alignment from it: memory learned for other instructions
    # would grade by criteria the user just replaced.
    promote(experiment_id, version)
    return JudgeVersion(settings.judge_name, version, created=True)


def load(experiment_id: str, name: str, version: int):
    from mlflow.genai.scorers.registry import get_scorer

    return get_scorer(name=name, experiment_id=experiment_id, version=version)


def promoted_version(experiment_id: str) -> int | None:
    from judgeloop.stack.store import get_experiment_tag

    value = get_experiment_tag(experiment_id, PROMOTED_TAG)
    return int(value) if value else None


def require_promoted(experiment_id: str) -> int:
    """The promoted judge's version; a LookupError saying what to do when there is none."""
    version = promoted_version(experiment_id)
    if version is None:
        raise LookupError(
            f"No judge is promoted in experiment {experiment_id}: materialize base_judge first."
        )
    return version


def load_promoted(settings: Settings, experiment_id: str):
    version = require_promoted(experiment_id)
    return version, load(experiment_id, settings.judge_name, version)


def promote(experiment_id: str, version: int) -> None:
    from judgeloop.stack.store import set_experiment_tag

    set_experiment_tag(experiment_id, PROMOTED_TAG, str(version))
    set_experiment_tag(
        experiment_id, PROMOTED_SUMMARY_TAG,
        f"v{version} is in use: {summarize(lineage(experiment_id, version))} (see {VERSION_SUMMARY_TAG.format(version=version)})",
    )


def record_lineage(experiment_id: str, version: int, lineage: dict) -> None:
    """What a judge version was built from and how well it agrees, as experiment tags: the
    machine-readable lineage, a one-line summary, and an aligned judge's guidelines."""
    from judgeloop.stack.store import set_experiment_tag

    lineage = dict(lineage)
    guidelines = lineage.pop("guidelines", None)
    if guidelines is not None:
        lineage["guideline_count"] = len(guidelines)
    set_experiment_tag(experiment_id, f"{LINEAGE_TAG_PREFIX}{version}", json.dumps(lineage, sort_keys=True))
    set_experiment_tag(experiment_id, VERSION_SUMMARY_TAG.format(version=version), summarize(lineage))
    if guidelines is not None:
        text = "\n".join(f"- {g}" for g in guidelines) or "(none distilled)"
        if len(text) > TAG_VALUE_LIMIT:
            text = text[: TAG_VALUE_LIMIT - 30] + "\n... (cut; see the judge)"
        set_experiment_tag(experiment_id, GUIDELINES_TAG.format(version=version), text)


def record_decision(experiment_id: str, version: int, decision: dict) -> None:
    """Add the gate's decision on ``version`` (passed, case, reason) to its lineage."""
    record_lineage(experiment_id, version, {**lineage(experiment_id, version), "gate": decision})


def measured_on(lineage: dict) -> str:
    """'on 200 of 238 held-out traces': what an aligned version's numbers stand on."""
    measured = lineage.get("measured_traces", lineage.get("heldout_sample"))
    heldout = lineage.get("heldout_traces")
    if measured is None:
        return f"on {lineage.get('heldout_label_count')} held-out label(s)"
    if heldout is None or heldout == measured:
        return f"on {measured} held-out traces"
    return f"on {measured} of {heldout} held-out traces"


def summarize(lineage: dict) -> str:
    """One line a person reads in MLflow: what the version is and its held-out agreement."""
    if lineage.get("kind") == "aligned":
        text = (
            f"aligned from v{lineage.get('previous_version')} on {lineage.get('label_count')} expert label(s); "
            f"held-out kappa {_kappa(lineage.get('kappa_before'))} -> {_kappa(lineage.get('kappa_after'))} "
            f"{measured_on(lineage)}"
        )
        if lineage.get("guideline_count") is not None:
            text += f"; {lineage['guideline_count']} guideline(s)"
        gate = lineage.get("gate")
        if gate:
            text += f"; gate {gate.get('case')}: {'passed' if gate.get('passed') else 'blocked'}"
        return text
    if lineage.get("kind") == "base":
        return f"base judge ({lineage.get('model')}), as configured"
    return "no lineage recorded"


def _kappa(value) -> str:
    return "unmeasured" if value is None else f"{float(value):.3f}"


def lineage(experiment_id: str, version: int) -> dict:
    from judgeloop.stack.store import get_experiment_tag

    raw = get_experiment_tag(experiment_id, f"{LINEAGE_TAG_PREFIX}{version}")
    return json.loads(raw) if raw else {}


def all_lineages(experiment_id: str) -> dict[int, dict]:
    """Every version's lineage, from one read of the experiment's tags."""
    import mlflow

    found = {}
    for key, raw in mlflow.get_experiment(experiment_id).tags.items():
        number = key[len(LINEAGE_TAG_PREFIX):]
        if key.startswith(LINEAGE_TAG_PREFIX) and number.isdigit():
            found[int(number)] = json.loads(raw)
    return found


def aligned_version_for(experiment_id: str, previous_version: int, label_fingerprint: str) -> int | None:
    """The newest version already aligned from ``previous_version`` on exactly these labels, if any."""
    import mlflow

    tags = mlflow.get_experiment(experiment_id).tags
    found = []
    for key, raw in tags.items():
        if not key.startswith(LINEAGE_TAG_PREFIX):
            continue
        lineage = json.loads(raw)
        if lineage.get("previous_version") == previous_version and lineage.get("label_fingerprint") == label_fingerprint:
            found.append(int(key[len(LINEAGE_TAG_PREFIX):]))
    return max(found, default=None)


def base_version(experiment_id: str) -> int:
    from judgeloop.stack.store import get_experiment_tag

    value = get_experiment_tag(experiment_id, BASE_VERSION_TAG)
    if not value:
        raise LookupError(f"No base judge registered in experiment {experiment_id}: materialize base_judge first.")
    return int(value)


def version_numbers(settings, experiment_id: str) -> list[int]:
    """The judge's registered version numbers.

    MLflow's public ``list_scorer_versions`` rebuilds every version as a judge object, which
    imports the MemAlign optimizer and dspy (about 10 s on a loaded 2-core machine) just to
    read numbers. On a local store or tracking server this reads the versions' records from
    the tracking store instead (MLflow's own store method; a contract test pins it to the public
    call's answer). Databricks' scorer registry is another API: it keeps the public call.
    """
    from mlflow.exceptions import MlflowException

    from judgeloop.settings import is_databricks

    try:
        if is_databricks(settings):
            from mlflow.genai.scorers.registry import list_scorer_versions

            return sorted({v for _, v in list_scorer_versions(name=settings.judge_name, experiment_id=experiment_id)})
        from judgeloop.mlflow_internals.scorer_versions import scorer_version_numbers

        return scorer_version_numbers(experiment_id, settings.judge_name)
    except MlflowException:  # MLflow raises when no scorer of that name exists yet
        return []
