"""How well a judge agrees with the SMEs: exact agreement, Cohen's kappa, mean absolute error.

Ordinal scales (likert, categorical in configured order) use quadratic-weighted Cohen's
kappa; pass/fail uses plain kappa. Mean absolute error is reported for numeric scales.
"""

from dataclasses import dataclass

from judgeloop.settings import FeedbackType, Settings


@dataclass(frozen=True)
class Agreement:
    n: int
    exact: float
    kappa: float
    mae: float | None
    labels: list
    confusion: list[list[int]]  # rows: SME value, columns: judge value, in ``labels`` order


def scale_values(settings: Settings) -> list:
    if settings.feedback_type == FeedbackType.LIKERT:
        return list(range(settings.scale_min, settings.scale_max + 1))
    if settings.feedback_type == FeedbackType.PASS_FAIL:
        return [False, True]
    return list(settings.categories)


def _ordinal(values: list, scale: list) -> list[int]:
    index = {str(v): i for i, v in enumerate(scale)}
    return [index[str(v)] for v in values]


def measure(settings: Settings, human: list, judged: list) -> Agreement:
    """Agreement of ``judged`` with ``human`` (paired lists of values on the judge's scale)."""
    if len(human) != len(judged):
        raise ValueError(f"paired values differ in length: {len(human)} human vs {len(judged)} judged")
    scale = scale_values(settings)
    if not human:
        return Agreement(0, 0.0, 0.0, None, scale, [[0] * len(scale) for _ in scale])
    h, j = _ordinal(human, scale), _ordinal(judged, scale)
    confusion = _confusion(h, j, len(scale))
    quadratic = settings.feedback_type != FeedbackType.PASS_FAIL
    mae = sum(abs(a - b) for a, b in zip(h, j)) / len(h) if settings.feedback_type == FeedbackType.LIKERT else None
    return Agreement(
        n=len(h),
        exact=sum(1 for a, b in zip(h, j) if a == b) / len(h),
        kappa=_kappa(confusion, quadratic),
        mae=mae,
        labels=scale,
        confusion=confusion,
    )


def _confusion(h: list[int], j: list[int], size: int) -> list[list[int]]:
    counts = [[0] * size for _ in range(size)]
    for a, b in zip(h, j):
        counts[a][b] += 1
    return counts


def _kappa(confusion: list[list[int]], quadratic: bool) -> float:
    """Cohen's kappa from the confusion matrix, quadratic-weighted or plain: scikit-learn's
    ``cohen_kappa_score`` (tests compare the two), without importing scikit-learn (and SciPy)
    into every run process for a dozen lines of arithmetic.

    Kappa is undefined when both sides use a single value; that counts as chance agreement (0).
    """
    size = len(confusion)
    rows = [sum(row) for row in confusion]  # SME
    cols = [sum(confusion[a][b] for a in range(size)) for b in range(size)]  # judge
    total = sum(rows)

    def weight(a: int, b: int) -> float:
        return float((a - b) ** 2) if quadratic else float(a != b)

    observed = sum(weight(a, b) * confusion[a][b] for a in range(size) for b in range(size))
    expected = sum(weight(a, b) * rows[a] * cols[b] / total for a in range(size) for b in range(size))
    if expected == 0:  # a sum of non-negative terms: exactly zero or not
        return 0.0
    return 1.0 - observed / expected
