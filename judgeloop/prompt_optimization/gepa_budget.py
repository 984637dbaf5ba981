"""Fits GEPA's data to its metric-call budget, and counts the rounds it actually ran.

GEPA (as ``optimize_prompts`` runs it) evaluates the seed prompt on every training record
first, then, per round, scores a parent and a child prompt on a reflection minibatch and,
when the child wins, every record again. With more records than the budget, the first
evaluation spends it all and no round ever runs. So records are sampled (stably: the same
records for the same dataset, whatever the process) down to what leaves room for
``TARGET_ROUNDS`` rounds, each counted at its worst case (child accepted).
"""

import hashlib
import logging

log = logging.getLogger(__name__)

MINIBATCH = 3  # GEPA's default reflection minibatch size
TARGET_ROUNDS = 3
MIN_RECORDS = 2


def cost(records: int, rounds: int) -> int:
    """Metric calls of the first evaluation plus ``rounds`` rounds that all find a better prompt."""
    return records + rounds * (2 * MINIBATCH + records)


def records_for_budget(budget: int, available: int) -> int:
    """How many records to give GEPA: the most that leave ``TARGET_ROUNDS`` rounds (else fewer
    rounds, down to one); 0 when the budget cannot buy a single round on ``MIN_RECORDS``."""
    for rounds in range(TARGET_ROUNDS, 0, -1):
        fitting = [n for n in range(MIN_RECORDS, available + 1) if cost(n, rounds) <= budget]
        if fitting:
            return max(fitting)
    return 0


def stable_sample(records: list[dict], size: int) -> list[dict]:
    """``size`` records chosen by a hash of their inputs: reproducible across processes and runs."""

    def key(record):
        return hashlib.sha256(str(record["inputs"]).encode()).hexdigest()

    return sorted(records, key=key)[:size]


class RoundCounter:
    """A GEPA callback counting rounds (iterations) and the ones that produced a better prompt."""

    def __init__(self):
        self.rounds = 0
        self.accepted = 0

    def on_iteration_end(self, event) -> None:
        self.rounds += 1
        self.accepted += bool(event.get("proposal_accepted"))
