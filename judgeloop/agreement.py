"""How well a judge agrees with the SMEs, with scikit-learn's metrics.

Ordinal scales (likert, categorical in configured order) use quadratic-weighted Cohen's
kappa; pass/fail uses plain kappa. Mean absolute error is reported for numeric scales.
"""

import math
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
    from sklearn.metrics import accuracy_score, cohen_kappa_score, confusion_matrix, mean_absolute_error

    if len(human) != len(judged):
        raise ValueError(f"paired values differ in length: {len(human)} human vs {len(judged)} judged")
    scale = scale_values(settings)
    if not human:
        return Agreement(0, 0.0, 0.0, None, scale, [[0] * len(scale) for _ in scale])
    h, j = _ordinal(human, scale), _ordinal(judged, scale)
    positions = list(range(len(scale)))
    weights = None if settings.feedback_type == FeedbackType.PASS_FAIL else "quadratic"
    # Kappa is undefined when both sides use a single value; count that as chance agreement.
    kappa = cohen_kappa_score(h, j, labels=positions, weights=weights, replace_undefined_by=0.0)
    kappa = 0.0 if math.isnan(kappa) else float(kappa)
    mae = float(mean_absolute_error(h, j)) if settings.feedback_type == FeedbackType.LIKERT else None
    return Agreement(
        n=len(h),
        exact=float(accuracy_score(h, j)),
        kappa=kappa,
        mae=mae,
        labels=scale,
        confusion=confusion_matrix(h, j, labels=positions).tolist(),
    )
