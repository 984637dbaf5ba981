"""Where a label would teach the judge most: a priority per unlabelled alignment trace.

Computed from what the loop already stores, with no model call: each trace's question and
answer, the labels so far, and the judges' stored scores (the base judge scored every tagged
trace; the judge in use scored the traces it was measured on). Four terms, each in [0, 1],
summed (``PRIORITY_RULE``):

- novelty: 1 - the word overlap (Jaccard of question + answer words) with the most similar
  labelled trace. MemAlign retrieves examples by similarity: far from every labelled trace,
  the judge has nothing to go on and a label there changes most;
- neighbour disagreement: how far apart the values of the ``NEIGHBOURS`` most similar labelled
  traces are (range over the scale's span), as MemAlign's retrieved examples would disagree;
- judge gap: how far the judge's stored score (the judge in use's, else the base judge's) is
  from those neighbours' similarity-weighted value: where the experts probably rate
  differently from the judge;
- judges' disagreement: base vs judge in use where both stored a score.

Word overlap instead of embeddings keeps it free and deterministic at thousands of traces
(one pass over an inverted index of the labelled traces' words).
"""

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

NEIGHBOURS = 5
MIN_SIMILARITY = 0.05
PRIORITY_RULE = (
    "novelty (1 - word overlap with the nearest labelled trace) + neighbour disagreement (value range of the "
    f"{NEIGHBOURS} nearest labelled traces) + judge gap (judge in use's stored score vs those neighbours' weighted "
    "value) + base vs judge-in-use score difference; each 0..1"
)

_WORD = re.compile(r"[a-z0-9]+")
_STOP = frozenset(
    "the a an and or of to in on for is are was were be been it its this that with as at by from "
    "what how why when who which do does can i you your my we our they their there if not no".split()
)


def words(text) -> frozenset[str]:
    return frozenset(w for w in _WORD.findall(str(text or "").lower()) if w not in _STOP and len(w) > 2)


@dataclass(frozen=True)
class Candidate:
    trace_id: str
    words: frozenset
    judge_score: float | None = None  # position on the scale (0 = worst), judge in use
    base_score: float | None = None  # position on the scale, base judge


@dataclass(frozen=True)
class Labelled:
    trace_id: str
    words: frozenset
    value: float  # position on the scale


@dataclass
class Signals:
    novelty: dict[str, float] = field(default_factory=dict)
    neighbour_disagreement: dict[str, float] = field(default_factory=dict)
    judge_gap: dict[str, float] = field(default_factory=dict)
    judges_disagree: dict[str, float] = field(default_factory=dict)

    def priority(self) -> dict[str, float]:
        return {
            t: self.novelty[t] + self.neighbour_disagreement[t] + self.judge_gap[t] + self.judges_disagree[t]
            for t in self.novelty
        }


def signals(candidates: list[Candidate], labelled: list[Labelled], span: float) -> Signals:
    """The four terms for every candidate; ``span``: the scale's width in positions (3 on 1-4)."""
    span = span or 1.0
    index: dict[str, list[int]] = {}
    for i, example in enumerate(labelled):
        for word in example.words:
            index.setdefault(word, []).append(i)
    result = Signals()
    for candidate in candidates:
        shared: dict[int, int] = {}
        for word in candidate.words:
            for i in index.get(word, ()):
                shared[i] = shared.get(i, 0) + 1
        similar = sorted(
            ((n / len(candidate.words | labelled[i].words), i) for i, n in shared.items()), reverse=True
        )[:NEIGHBOURS]
        similar = [(s, i) for s, i in similar if s >= MIN_SIMILARITY]
        t = candidate.trace_id
        result.novelty[t] = 1.0 - (similar[0][0] if similar else 0.0)
        if similar:
            values = [labelled[i].value for _, i in similar]
            weights = [s**3 for s, _ in similar]  # the closest dominate, as in retrieval
            expected = sum(v * w for v, w in zip(values, weights)) / sum(weights)
            result.neighbour_disagreement[t] = (max(values) - min(values)) / span
            score = candidate.judge_score if candidate.judge_score is not None else candidate.base_score
            result.judge_gap[t] = abs(score - expected) / span if score is not None else 0.0
        else:
            result.neighbour_disagreement[t] = 0.0
            result.judge_gap[t] = 0.0
        both = candidate.judge_score is not None and candidate.base_score is not None
        result.judges_disagree[t] = abs(candidate.judge_score - candidate.base_score) / span if both else 0.0
    return result


def priorities(candidates: list[Candidate], labelled: list[Labelled], span: float) -> dict[str, float]:
    return signals(candidates, labelled, span).priority()


def position_on_scale(scale: list, value) -> float | None:
    """0-based position of ``value`` on the judge's scale (None when it is not on it)."""
    positions: Mapping[str, int] = {str(v): i for i, v in enumerate(scale)}
    if value is None:
        return None
    key = str(value)
    if key not in positions and isinstance(value, float) and value.is_integer():
        key = str(int(value))
    return float(positions[key]) if key in positions else None
