"""Priority of an unlabelled alignment trace: novelty, disagreeing neighbours, the judge's gap to them,
base vs judge in use; computed from stored data only and cheap at thousands of traces."""

import random

from judgeloop.sme_labels.queue_priority import Candidate, Labelled, priorities, signals, words

SPAN = 3.0  # a 1-4 scale


def test_a_trace_far_from_every_label_is_novel_and_a_near_duplicate_is_not():
    labelled = [Labelled("l1", words("How does the flu spread between people at home"), 2.0)]
    far = Candidate("far", words("Which vaccines are approved for young children"))
    near = Candidate("near", words("How does the flu spread between people at home"))
    found = signals([far, near], labelled, SPAN)
    assert found.novelty["far"] == 1.0
    assert found.novelty["near"] == 0.0
    assert priorities([far, near], labelled, SPAN)["far"] > priorities([far, near], labelled, SPAN)["near"]


def test_disagreeing_neighbours_and_a_judge_far_from_them_raise_the_priority():
    text = "masks protect people from covid infection indoors"
    agree = [Labelled(f"a{i}", words(text + f" variant{i}"), 3.0) for i in range(3)]
    disagree = [Labelled(f"d{i}", words(text + f" variant{i}"), float(i)) for i in range(3)]
    candidate = Candidate("c", words(text), judge_score=3.0)
    calm, torn = signals([candidate], agree, SPAN), signals([candidate], disagree, SPAN)
    assert calm.neighbour_disagreement["c"] == 0.0 and torn.neighbour_disagreement["c"] == 2 / 3
    assert calm.judge_gap["c"] == 0.0
    wrong = signals([Candidate("c", words(text), judge_score=0.0)], agree, SPAN)
    assert wrong.judge_gap["c"] == 1.0
    base_only = signals([Candidate("c", words(text), base_score=0.0)], agree, SPAN)
    assert base_only.judge_gap["c"] == 1.0  # the base judge's score stands in for the judge in use


def test_base_and_judge_in_use_disagreeing_raises_the_priority():
    found = signals([Candidate("c", words("anything at all"), judge_score=3.0, base_score=0.0)], [], SPAN)
    assert found.judges_disagree["c"] == 1.0
    assert signals([Candidate("c", words("anything"), judge_score=3.0)], [], SPAN).judges_disagree["c"] == 0.0


def test_two_thousand_traces_against_two_hundred_labels():
    rng = random.Random(0)
    vocabulary = [f"word{i}" for i in range(3000)]

    def text():
        return frozenset(rng.sample(vocabulary, 25))

    candidates = [Candidate(f"c{i}", text(), judge_score=float(rng.randint(0, 3))) for i in range(2000)]
    labelled = [Labelled(f"l{i}", text(), float(rng.randint(0, 3))) for i in range(200)]
    found = priorities(candidates, labelled, SPAN)
    assert len(found) == 2000 and all(0.0 <= v <= 4.0 for v in found.values())
