""""Labels changed": decide whether a re-alignment is worth launching now (no network).

``judgeloop labels notify`` asks this, then launches the realign job through Dagster's
GraphQL client (``judgeloop_assets.dagster_client``) when the answer is yes.
"""

from dataclasses import dataclass, field

from judgeloop.sme_labels import labels as labels_core
from judgeloop.settings import Settings

TRIGGER_TAG = "judgeloop/trigger"
PUSHED_RUN_KEY_TAG = "dagster/run_key"


@dataclass(frozen=True)
class AlignedState:
    promoted_version: int | None
    promoted_newest_label_ms: int  # newest label the promoted judge was aligned on (0: none)
    tried_version: int | None  # newest version aligned after the promoted one (its gate failed)
    tried_newest_label_ms: int


def aligned_state(settings: Settings, experiment_id: str) -> AlignedState:
    from judgeloop.judging import judges

    promoted = judges.promoted_version(experiment_id)
    if promoted is None:
        return AlignedState(None, 0, None, 0)
    promoted_ms = int(judges.lineage(experiment_id, promoted).get("newest_label_ms") or 0)
    tried_version, tried_ms = None, 0
    latest = judges.latest_version(experiment_id, settings.judge_name) or promoted
    # Versions above the promoted one were aligned from it and not promoted: the labels they
    # were aligned on were already tried, retrying them gives the same answer.
    for version in range(latest, promoted, -1):
        entry = judges.lineage(experiment_id, version)
        if entry.get("kind") == "aligned" and entry.get("previous_version") == promoted:
            ms = int(entry.get("newest_label_ms") or 0)
            if ms > tried_ms:
                tried_version, tried_ms = version, ms
    return AlignedState(promoted, promoted_ms, tried_version, tried_ms)


@dataclass(frozen=True)
class NotifyDecision:
    launch: bool
    reason: str
    usable_labels: int = 0
    new_labels: int = 0
    newest_label_ms: int = 0
    aligned_up_to_ms: int = 0
    promoted_version: int | None = None
    tags: dict = field(default_factory=dict)


def decide_notify(settings: Settings, experiment_id: str, force: bool = False) -> NotifyDecision:
    """Whether ``labels notify`` should launch a re-alignment now, and why (no network)."""
    from judgeloop.judging import split

    state = aligned_state(settings, experiment_id)
    current, _ = labels_core.current_labels(settings, experiment_id)
    newest = max((label.updated_ms for label in current), default=0)
    base = dict(usable_labels=len(current), newest_label_ms=newest, promoted_version=state.promoted_version)
    if state.promoted_version is None:
        return NotifyDecision(False, "no judge is promoted yet: materialize base_judge first (judgeloop up launches it)", **base)
    fresh = [label for label in current if label.updated_ms > state.promoted_newest_label_ms]
    base.update(new_labels=len(fresh), aligned_up_to_ms=state.promoted_newest_label_ms)
    if not fresh:
        return NotifyDecision(
            False, f"nothing new: judge v{state.promoted_version} is aligned on every usable label ({len(current)})", **base
        )
    aligned, heldout = split.split(sorted({label.trace_id for label in current}), settings.heldout_fraction)
    if len(aligned) < settings.min_alignment_labels or len(heldout) < settings.min_heldout_labels:
        return NotifyDecision(
            False,
            f"{len(fresh)} new label(s), but too few labelled traces to align: {len(aligned)} to align on "
            f"(need {settings.min_alignment_labels}) and {len(heldout)} held out (need {settings.min_heldout_labels})",
            **base,
        )
    if not force and state.tried_version is not None and newest <= state.tried_newest_label_ms:
        return NotifyDecision(
            False,
            f"nothing new since judge v{state.tried_version}, aligned on these labels and not promoted "
            f"(its gate failed); --force retries",
            **base,
        )
    up_to = max(label.key for label in fresh)
    tags = {
        TRIGGER_TAG: "notify", "judgeloop/new_labels": str(len(fresh)), "judgeloop/newest_label_ms": str(newest),
        # The run aligns on exactly the labels counted here, however many arrive before it starts.
        labels_core.LABELS_UP_TO_TAG: labels_core.encode_key(up_to),
        # A run key lets the label sensor settle this run like one it requested (sensors/pushed_runs.py).
        PUSHED_RUN_KEY_TAG: f"pushed-{newest}-{len(fresh)}",
    }
    return NotifyDecision(
        True,
        f"{len(fresh)} usable label(s) newer than what judge v{state.promoted_version} was aligned on",
        tags=tags,
        **base,
    )
