"""Kappa, exact agreement and MAE with 95% paired bootstrap intervals.

A held-out split of a few dozen traces gives agreement numbers whose noise is larger than
any sensible gate margin, so every number comes with an interval. Resampling is by trace
(a trace with two SME labels moves as one unit) and *paired*: each resample draws the same
traces for the old and the new judge, so the interval of their difference only carries the
noise of the traces on which they disagree, not the noise of the whole sample.

The metrics are computed here with numpy from weighted confusion matrices (one matrix per
resample), because calling scikit-learn 2,000 times per judge takes seconds; the point
estimates equal scikit-learn's (``agreement.measure``), which a test checks.
"""

from dataclasses import dataclass

import numpy as np

from judgeloop.judging.agreement import scale_values
from judgeloop.settings import FeedbackType, Settings

METRICS = ("kappa", "exact", "mae")
LEVEL = 0.95


@dataclass(frozen=True)
class Estimate:
    """A point estimate with its interval (None when there were too few traces for one)."""

    value: float | None
    low: float | None = None
    high: float | None = None

    @property
    def has_interval(self) -> bool:
        return self.low is not None and self.high is not None

    def text(self, digits: int = 3) -> str:
        if self.value is None:
            return "n/a"
        if not self.has_interval:
            return f"{self.value:.{digits}f} (no interval)"
        return f"{self.value:.{digits}f} [{self.low:.{digits}f}, {self.high:.{digits}f}]"

    def as_dict(self) -> dict:
        return {"value": self.value, "low": self.low, "high": self.high}


@dataclass(frozen=True)
class Paired:
    """Two judges measured on the same traces: each metric for both, and their difference (after - before)."""

    traces: int
    pairs: int
    before: dict[str, Estimate]
    after: dict[str, Estimate]
    difference: dict[str, Estimate]
    resamples: int

    @property
    def has_intervals(self) -> bool:
        return self.difference["kappa"].has_interval


def _indices(values: list, scale: list) -> np.ndarray:
    index = {str(v): i for i, v in enumerate(scale)}
    return np.array([index[str(v)] for v in values], dtype=int)


def _kappa_weights(settings: Settings, k: int) -> np.ndarray:
    i, j = np.meshgrid(np.arange(k), np.arange(k), indexing="ij")
    if settings.feedback_type == FeedbackType.PASS_FAIL:
        return (i != j).astype(float)
    return ((i - j) ** 2).astype(float)  # quadratic, as agreement.measure asks scikit-learn for


def _metrics(settings: Settings, confusion: np.ndarray, abs_error: np.ndarray) -> dict[str, np.ndarray]:
    """Metrics for a stack of weighted confusion matrices (shape (B, K, K)) and summed |errors| (B,)."""
    k = confusion.shape[-1]
    total = confusion.sum(axis=(1, 2))
    safe_total = np.where(total > 0, total, 1.0)
    observed = confusion / safe_total[:, None, None]
    expected = observed.sum(axis=2)[:, :, None] * observed.sum(axis=1)[:, None, :]
    weights = _kappa_weights(settings, k)
    disagreement = (weights * observed).sum(axis=(1, 2))
    chance = (weights * expected).sum(axis=(1, 2))
    # Undefined kappa (both sides used one value) counts as chance agreement, like scikit-learn's
    # replace_undefined_by=0.0 in agreement.measure.
    kappa = np.where(chance > 0, 1.0 - disagreement / np.where(chance > 0, chance, 1.0), 0.0)
    exact = np.trace(observed, axis1=1, axis2=2)
    result = {"kappa": kappa, "exact": exact}
    if settings.feedback_type == FeedbackType.LIKERT:
        result["mae"] = abs_error / safe_total
    return result


def _weighted(settings: Settings, weights: np.ndarray, human: np.ndarray, judged: np.ndarray, k: int) -> dict:
    """Metrics for each row of pair ``weights`` (shape (B, P))."""
    cells = human * k + judged
    onehot = np.zeros((len(cells), k * k))
    onehot[np.arange(len(cells)), cells] = 1.0
    confusion = (weights @ onehot).reshape(-1, k, k)
    abs_error = weights @ np.abs(human - judged).astype(float)
    return _metrics(settings, confusion, abs_error)


def _percentiles(samples: np.ndarray) -> tuple[float, float]:
    tail = (1 - LEVEL) / 2 * 100
    low, high = np.percentile(samples, [tail, 100 - tail])
    return float(low), float(high)


def paired_bootstrap(
    settings: Settings,
    human: list[list],
    before: list,
    after: list,
    resamples: int = 2000,
    min_traces: int = 10,
    seed: int = 0,
) -> Paired:
    """Compare two judges on the same traces.

    ``human[t]`` holds the SME values on trace t, ``before[t]`` / ``after[t]`` each judge's value
    there (all on the judge's scale). With fewer than ``min_traces`` traces the point estimates
    are returned without intervals: an interval from a handful of traces would pretend a
    precision that is not there.
    """
    if not len(human) == len(before) == len(after):
        raise ValueError(f"paired lists differ in length: {len(human)} human, {len(before)} before, {len(after)} after")
    scale = scale_values(settings)
    k = len(scale)
    trace_of_pair = np.array([t for t, values in enumerate(human) for _ in values], dtype=int)
    flat_human = _indices([v for values in human for v in values], scale)
    judged_before = _indices([before[t] for t in trace_of_pair], scale)
    judged_after = _indices([after[t] for t in trace_of_pair], scale)
    n_traces, n_pairs = len(human), len(flat_human)
    names = [m for m in METRICS if m != "mae" or settings.feedback_type == FeedbackType.LIKERT]
    if n_pairs == 0:
        empty = {m: Estimate(None) for m in names}
        return Paired(0, 0, empty, empty, empty, 0)

    ones = np.ones((1, n_pairs))
    point_before = _weighted(settings, ones, flat_human, judged_before, k)
    point_after = _weighted(settings, ones, flat_human, judged_after, k)
    if n_traces < min_traces or resamples <= 0:
        b = {m: Estimate(float(point_before[m][0])) for m in names}
        a = {m: Estimate(float(point_after[m][0])) for m in names}
        d = {m: Estimate(a[m].value - b[m].value) for m in names}
        return Paired(n_traces, n_pairs, b, a, d, 0)

    rng = np.random.default_rng(seed)
    # How often each trace is drawn in each resample; a pair weighs what its trace weighs.
    counts = rng.multinomial(n_traces, np.full(n_traces, 1.0 / n_traces), size=resamples).astype(float)
    weights = counts[:, trace_of_pair]
    boot_before = _weighted(settings, weights, flat_human, judged_before, k)
    boot_after = _weighted(settings, weights, flat_human, judged_after, k)
    b, a, d = {}, {}, {}
    for m in names:
        b[m] = Estimate(float(point_before[m][0]), *_percentiles(boot_before[m]))
        a[m] = Estimate(float(point_after[m][0]), *_percentiles(boot_after[m]))
        d[m] = Estimate(float(point_after[m][0] - point_before[m][0]), *_percentiles(boot_after[m] - boot_before[m]))
    return Paired(n_traces, n_pairs, b, a, d, resamples)


def pooled_bootstrap(
    settings: Settings,
    pairs: list[tuple[int, object, object, float]],
    n_traces: int,
    resamples: int = 2000,
    min_traces: int = 10,
    seed: int = 0,
) -> dict[str, Estimate]:
    """Agreement of value pairs pooled over traces, with a bootstrap interval over traces.

    ``pairs`` holds (trace index, first value, second value, weight): several pairs may share
    a trace (every pair of experts on it) and move with it in each resample; their weights let
    a trace weigh one whatever its number of pairs.
    """
    scale = scale_values(settings)
    names = [m for m in METRICS if m != "mae" or settings.feedback_type == FeedbackType.LIKERT]
    if not pairs:
        return {m: Estimate(None) for m in names}
    trace_of_pair = np.array([p[0] for p in pairs], dtype=int)
    first = _indices([p[1] for p in pairs], scale)
    second = _indices([p[2] for p in pairs], scale)
    weight = np.array([p[3] for p in pairs], dtype=float)
    point = _weighted(settings, weight[None, :], first, second, len(scale))
    if n_traces < min_traces or resamples <= 0:
        return {m: Estimate(float(point[m][0])) for m in names}
    rng = np.random.default_rng(seed)
    counts = rng.multinomial(n_traces, np.full(n_traces, 1.0 / n_traces), size=resamples).astype(float)
    boot = _weighted(settings, counts[:, trace_of_pair] * weight[None, :], first, second, len(scale))
    return {m: Estimate(float(point[m][0]), *_percentiles(boot[m])) for m in names}


def single_bootstrap(
    settings: Settings, human: list[list], judged: list, resamples: int = 2000, min_traces: int = 10, seed: int = 0
) -> dict[str, Estimate]:
    """One judge (or one rater against another) with intervals: the paired machinery with itself."""
    return paired_bootstrap(settings, human, judged, judged, resamples, min_traces, seed).after
