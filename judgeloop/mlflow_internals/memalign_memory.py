"""What judgeloop reads and sets inside MemAlign's judge object (private members, MLflow 3.17.2).

MemAlign has no public API to rebuild a registry-loaded judge's memory from chosen traces or
to read its distilled guidelines, so this module is the one place that touches its private
members. ``tests/test_mlflow_schema.py`` checks them against the pinned MLflow.
"""


def hydrate_memory(judge, traces_by_id: dict) -> None:
    """Build a registry-loaded MemAlign judge's episodic memory from cleaned traces.

    Its own lazy rebuild would fetch raw traces (with overridden labels) and, when first
    used from several threads, score some calls with an empty memory. A registered judge
    lists a trace id once per EXAMPLE it remembers, and each trace expands into all of its
    examples: ids are therefore expanded once each, in first-seen order, or a trace with k
    examples would come back k*k times.
    """
    from mlflow.genai.judges.optimizers.dspy_utils import create_dspy_signature, trace_to_dspy_example
    from mlflow.genai.judges.optimizers.memalign.optimizer import MemoryAugmentedJudge, _build_embedder

    if not isinstance(judge, MemoryAugmentedJudge) or judge._embedder is not None:
        return
    judge._base_signature = create_dspy_signature(judge._base_judge)
    judge._embedder = _build_embedder(judge._embedding_model, judge._embedding_dim)
    kept_ids = [tid for tid in dict.fromkeys(judge._episodic_trace_ids) if tid in traces_by_id]
    judge._episodic_memory = [
        example for tid in kept_ids for example in trace_to_dspy_example(traces_by_id[tid], judge._base_judge)
    ]
    judge._episodic_trace_ids = [example._trace_id for example in judge._episodic_memory]
    if judge._episodic_memory:
        judge._build_episodic_memory()


def remembered_trace_ids(judge) -> list[str]:
    return list(dict.fromkeys(getattr(judge, "_episodic_trace_ids", None) or []))


def guidelines_of(judge) -> list[str]:
    return [g.guideline_text for g in getattr(judge, "_semantic_memory", None) or []]


def withdraw(judge, changed_trace_ids: set[str]):
    """(a copy of ``judge`` that forgot what it learned from ``changed_trace_ids``, the texts of
    the guidelines withdrawn).

    MemAlign keeps a guideline while any one of its source traces remains, and a judge whose
    memory was rebuilt from the current labels looks unchanged to its own refresh check. So a
    corrected label would keep the lesson drawn from its old value. The copy drops every
    guideline with a changed source trace, and the changed traces' examples, so ``align()``
    on it treats those traces as new and distills guidelines from their current labels
    (``align`` rebuilds the search index). ``judge`` itself, the judge in use, is untouched.
    """
    import copy

    if not changed_trace_ids or not hasattr(judge, "_semantic_memory"):
        return judge, []
    stale = [g for g in judge._semantic_memory if set(g.source_trace_ids or ()) & changed_trace_ids]
    forgetting = copy.copy(judge)
    forgetting._semantic_memory = [g for g in judge._semantic_memory if g not in stale]
    forgetting._episodic_memory = [
        ex for ex in judge._episodic_memory if getattr(ex, "_trace_id", None) not in changed_trace_ids
    ]
    forgetting._episodic_trace_ids = [tid for tid in judge._episodic_trace_ids if tid not in changed_trace_ids]
    return forgetting, [g.guideline_text for g in stale]


def guideline_sources(judge) -> dict[str, list[str]]:
    """{guideline text: the trace ids it was distilled from}."""
    return {g.guideline_text: list(g.source_trace_ids or []) for g in getattr(judge, "_semantic_memory", None) or []}
