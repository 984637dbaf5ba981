"""The agreement gate: may the re-aligned judge replace the promoted one?

The rule, in order:

1. **Unmeasured judge, no promotion.** If either judge has fewer than ``min_scored_heldout``
   scored held-out traces (provider errors and off-scale answers are not scores), the gate
   fails and says which judge and why. A judge that answers nothing usable is never promoted.
2. **Worse with confidence, blocked.** With at least ``interval_min_traces`` traces scored by
   both judges, the 95% paired bootstrap interval of the kappa difference (new - old) decides:
   the gate blocks only when the whole interval lies below ``-gate_margin``. Otherwise it
   passes, and says whether the new judge is better with confidence (interval above 0) or not
   distinguishable from the old one within the noise.
3. **Too few traces for an interval: point rule.** Below ``interval_min_traces`` common traces
   no interval is claimed; the gate falls back to the point estimates and blocks when the new
   kappa is lower than the old one by more than ``gate_margin`` (the rule before intervals).
"""

from dataclasses import dataclass

WORSE = "worse_with_confidence"
BETTER = "better_with_confidence"
NO_CLEAR_DIFFERENCE = "no_clear_difference"
POINT_RULE_PASSED = "point_rule_passed"
POINT_RULE_BLOCKED = "point_rule_blocked"
UNMEASURED = "unmeasured_judge"
NOTHING_TO_PROMOTE = "nothing_to_promote"


@dataclass(frozen=True)
class Decision:
    passed: bool
    case: str
    reason: str


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


def decide(result, margin: float, min_scored: int = 1) -> Decision:
    """The gate's decision on an ``alignment.AlignmentResult``."""
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
    if comparison is not None and comparison.has_intervals:
        diff = comparison.difference["kappa"]
        before, after = comparison.before["kappa"], comparison.after["kappa"]
        text = (
            f"held-out kappa {before.text()} (v{result.previous_version}) -> {after.text()} (v{result.new_version}) "
            f"on {comparison.traces} traces both judges scored; difference {diff.text()}, margin {margin:.3f}"
        )
        if diff.high < -margin:
            return Decision(False, WORSE, f"{text}: the new judge is worse with confidence (kappa fell from {before.value:.3f} to {after.value:.3f})")
        if diff.low > 0:
            return Decision(True, BETTER, f"{text}: the new judge is better with confidence")
        return Decision(True, NO_CLEAR_DIFFERENCE, f"{text}: no difference beyond the noise, the new judge is not worse with confidence")
    before_kappa, after_kappa = _point(result, comparison)
    delta = after_kappa - before_kappa
    few = (
        f"only {comparison.traces} held-out traces scored by both judges, too few for an interval; "
        if comparison is not None else ""
    )
    if delta < -margin:
        return Decision(
            False, POINT_RULE_BLOCKED,
            f"{few}held-out kappa fell from {before_kappa:.3f} (v{result.previous_version}) to "
            f"{after_kappa:.3f} (v{result.new_version}), more than the margin {margin:.3f}",
        )
    return Decision(
        True, POINT_RULE_PASSED,
        f"{few}held-out kappa {before_kappa:.3f} -> {after_kappa:.3f} (change {delta:+.3f}, margin {margin:.3f})",
    )


def _point(result, comparison) -> tuple[float, float]:
    if comparison is not None and comparison.before["kappa"].value is not None:
        return comparison.before["kappa"].value, comparison.after["kappa"].value
    return result.before.kappa, result.after.kappa
