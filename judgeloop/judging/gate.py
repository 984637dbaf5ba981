"""The agreement gate: may the re-aligned judge replace the promoted one?

The rule, in order:

1. **Unmeasured judge, no promotion.** If either judge has fewer than ``min_scored_heldout``
   scored held-out traces (provider errors and off-scale answers are not scores), the gate
   fails and says which judge and why. A judge that answers nothing usable is never promoted.
2. **Measured worse, blocked.** Both judges are compared on the held-out traces both scored.
   When the new judge's kappa there is lower than the old one's by more than ``gate_margin``
   (a tolerance, default 0), it is blocked, whether or not the difference is "significant".
   Blocking only differences that are worse with confidence let every re-alignment lose a
   little, and a chain of them walked agreement down while no single step was clearly worse.
3. Otherwise it passes. With enough common traces (``interval_min_traces``) the 95% paired
   bootstrap interval of the difference is reported and names the case: better with
   confidence (interval above 0), or not worse (the interval does not show a difference).

Every reason says how many held-out traces the measure stands on ("on 200 of 238 held-out
traces"), because the judges are measured on a capped sample of the held-out split.
"""

from dataclasses import dataclass

WORSE = "worse_with_confidence"
MEASURED_WORSE = "measured_worse"
BETTER = "better_with_confidence"
NOT_WORSE = "not_worse"
UNMEASURED = "unmeasured_judge"
NOTHING_TO_PROMOTE = "nothing_to_promote"
BLOCKING_CASES = (WORSE, MEASURED_WORSE, UNMEASURED)


@dataclass(frozen=True)
class Decision:
    passed: bool
    case: str
    reason: str

    def as_dict(self) -> dict:
        return {"passed": self.passed, "case": self.case, "reason": self.reason}


def _scored(result, side: str) -> tuple[int, str]:
    """(scored held-out traces, what went wrong on the others) for 'before' or 'after'."""
    scores = getattr(result, f"{side}_scores", None)
    if scores is None:  # measured without per-trace scores: count its pairs
        measured = getattr(result, side)
        return (measured.n if measured is not None else 0), ""
    problems = []
    if scores.provider_errors:
        problems.append(f"{len(scores.provider_errors)} provider errors")
    if scores.invalid_answers:
        example = next(iter(scores.invalid_answers.values()))
        problems.append(f"{len(scores.invalid_answers)} invalid answers, e.g. {example}")
    return len(scores.values), "; ".join(problems)


def traces_text(measured: int, heldout: int | None) -> str:
    """'on 200 of 238 held-out traces': what a number stands on, never the sample as the whole."""
    if heldout is None or heldout == measured:
        return f"on {measured} held-out traces" if heldout is None else f"on all {measured} held-out traces"
    return f"on {measured} of {heldout} held-out traces"


def decide(result, margin: float, min_scored: int = 1) -> Decision:
    """The gate's decision on an ``alignment.AlignmentResult`` (``margin``: the tolerance)."""
    if result.new_version is None:
        return Decision(True, NOTHING_TO_PROMOTE, result.skipped_reason or "nothing to promote")
    for side, version in (("before", result.previous_version), ("after", result.new_version)):
        scored, problems = _scored(result, side)
        if scored < min_scored:
            return Decision(
                False, UNMEASURED,
                f"judge v{version} was scored on only {scored} held-out traces"
                + (f" ({problems})" if problems else "")
                + f"; at least {min_scored} are needed to compare judges, so v{result.new_version} is not promoted",
            )
    comparison = getattr(result, "comparison", None)
    before, after, common = _point(result, comparison)
    old, new = f"v{result.previous_version}", f"v{result.new_version}"
    text = f"held-out kappa {before:.3f} ({old}) -> {after:.3f} ({new}) {traces_text(common, getattr(result, 'heldout_traces', None))} both judges scored"
    diff = comparison.difference["kappa"] if comparison is not None and comparison.has_intervals else None
    if diff is not None:
        text += f"; difference {diff.text()} (95% interval)"
    tolerance = f"tolerance {margin:.3f}"
    if after < before - margin:
        if diff is not None and diff.high < 0:
            return Decision(False, WORSE, f"{text}: {new} is worse with confidence than {old} ({tolerance}); {old} stays in use")
        return Decision(
            False, MEASURED_WORSE,
            f"{text}: {new} measured worse than {old}, in use, by more than the {tolerance}; {old} stays in use",
        )
    if diff is not None and diff.low > 0:
        return Decision(True, BETTER, f"{text}: {new} is better with confidence; promoted")
    return Decision(True, NOT_WORSE, f"{text}: {new} measured no worse than {old} ({tolerance}); promoted")


def _point(result, comparison) -> tuple[float, float, int]:
    """(old kappa, new kappa, traces) on the held-out traces both judges scored."""
    if comparison is not None and comparison.before["kappa"].value is not None:
        return comparison.before["kappa"].value, comparison.after["kappa"].value, comparison.traces
    return result.before.kappa, result.after.kappa, min(result.before.n, result.after.n)
