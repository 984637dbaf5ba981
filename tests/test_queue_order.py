"""The review queue's order: held-out traces at random whatever the priorities, alignment traces
by priority with one trace per question per round, the two streams mixed by the held-out fraction."""

import random

import pytest

from judgeloop.judging import split
from judgeloop.settings import Settings
from judgeloop.sme_labels import queue_order

FRACTION = 0.34


def trace_ids(n: int) -> list[str]:
    return [f"tr-{i:04d}" for i in range(n)]


def heldout_subsequence(order: list[str]) -> list[str]:
    return [t for t in order if split.is_heldout(t, FRACTION)]


def test_heldout_stream_order_is_the_same_whatever_the_priorities():
    ids = trace_ids(400)
    questions = {t: f"question {i % 37}" for i, t in enumerate(ids)}
    reference = queue_order.queue_order(ids, FRACTION, {}, questions)
    reference_positions = [i for i, t in enumerate(reference) if split.is_heldout(t, FRACTION)]
    rng = random.Random(7)
    for _ in range(200):
        priorities = {t: rng.random() * rng.choice([1, 10, 1000]) for t in ids if rng.random() < 0.9}
        order = queue_order.queue_order(ids, FRACTION, priorities, questions)
        assert sorted(order) == sorted(ids)
        assert heldout_subsequence(order) == heldout_subsequence(reference)
        # ...and at the same places in the queue.
        assert [i for i, t in enumerate(order) if split.is_heldout(t, FRACTION)] == reference_positions


def test_heldout_stream_is_shuffled_not_in_insertion_order_and_seeded():
    ids = trace_ids(300)
    held = heldout_subsequence(queue_order.queue_order(ids, FRACTION))
    assert held != sorted(held)
    assert held == heldout_subsequence(queue_order.queue_order(list(reversed(ids)), FRACTION))  # input order does not matter
    assert held != heldout_subsequence(queue_order.queue_order(ids, FRACTION, seed=1))


def test_alignment_stream_follows_priority():
    ids = [t for t in trace_ids(200) if not split.is_heldout(t, FRACTION)]
    priority = {t: float(i) for i, t in enumerate(ids)}  # later ids first
    order = queue_order.queue_order(ids, FRACTION, priority, {t: t for t in ids})
    assert order == list(reversed(ids))


def test_one_questions_variants_are_not_all_picked_before_other_questions():
    ids = [t for t in trace_ids(200) if not split.is_heldout(t, FRACTION)][:30]
    # Ten answers to one question hold the ten highest priorities; twenty other questions follow.
    popular, others = ids[:10], ids[10:]
    questions = {t: "How does COVID-19 spread?" if t in popular else f"Other question {t}?" for t in ids}
    questions[popular[1]] = "how does  covid-19 spread"  # the same after normalization
    priority = {t: 100.0 - i for i, t in enumerate(ids)}
    order = queue_order.queue_order(ids, FRACTION, priority, questions)
    assert order[0] == popular[0]
    # Round one: one trace per question (21 questions), best first; the popular question's
    # second-best comes only in round two.
    assert set(order[:21]) == {popular[0], *others}
    assert order[1:21] == others
    assert order[21:] == popular[1:]


def test_mix_follows_the_heldout_fraction_in_every_prefix():
    ids = trace_ids(1000)
    rng = random.Random(3)
    order = queue_order.queue_order(ids, FRACTION, {t: rng.random() for t in ids})
    heldout_total = len(heldout_subsequence(ids))
    taken = 0
    for n, trace_id in enumerate(order, start=1):
        taken += split.is_heldout(trace_id, FRACTION)
        if taken < heldout_total and n - taken < len(ids) - heldout_total:  # both streams still last
            assert int(FRACTION * n) - 1 <= taken <= FRACTION * n + 1e-9, n
    assert abs(len(heldout_subsequence(order[:100])) - 34) <= 1


def test_insertion_order_keeps_the_given_order():
    ids = trace_ids(50)
    assert queue_order.queue_order(ids + ids[:3], FRACTION, {t: i for i, t in enumerate(ids)}, rule="insertion") == ids
    with pytest.raises(ValueError, match="not one of"):
        queue_order.queue_order(ids, FRACTION, rule="clever")


def test_setting_defaults_to_active_and_reads_the_environment(monkeypatch):
    assert Settings().queue_order == "active"
    monkeypatch.setenv("JUDGELOOP_QUEUE_ORDER", "insertion")
    monkeypatch.setenv("JUDGELOOP_QUEUE_WINDOW", "5")
    settings = Settings()
    assert (settings.queue_order, settings.queue_window) == ("insertion", 5)
    monkeypatch.setenv("JUDGELOOP_QUEUE_ORDER", "clever")
    with pytest.raises(ValueError, match="queue_order"):
        Settings()
