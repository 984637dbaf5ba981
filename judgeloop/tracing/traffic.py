"""Which traces are production traffic: only those may become evaluation data, reach the
experts' review queue, or teach the judge.

Prompt optimization runs the agent hundreds of times (GEPA's candidates, the held-out
comparison). Those runs are traced into the same experiment, and a trace looks like any other:
without a mark, a later ``tagged_traces`` (e.g. after a restart relaunches the foundation job)
would score them, ``eval_dataset`` would merge them and the review queue would offer them to the
experts. So every agent call made while optimizing runs under a root span whose trace carries
``judgeloop.source = optimizer``, and every consumer skips traces carrying it.

Labels: a label counts when its trace is production traffic, whether or not that trace is in
the review queue or the dataset (an expert who rates a production trace from MLflow's Traces
tab judged real traffic). A label on optimizer traffic never counts: it is rejected with a
reason, like a label outside the scale.
"""

import functools
from typing import Callable

SOURCE_TAG = "judgeloop.source"
OPTIMIZER = "optimizer"


def is_production(trace) -> bool:
    return (trace.info.tags or {}).get(SOURCE_TAG) != OPTIMIZER


def marked_as_optimizer(predict_fn: Callable) -> Callable:
    """``predict_fn`` running under a root span whose trace is marked as optimizer traffic."""
    import mlflow

    @functools.wraps(predict_fn)
    def run(**inputs):
        with mlflow.start_span(name="prompt_optimization_call", span_type="CHAIN") as span:
            span.set_inputs(inputs)
            mlflow.update_current_trace(tags={SOURCE_TAG: OPTIMIZER})
            output = predict_fn(**inputs)
            span.set_outputs(output)
            return output

    return run


def optimizer_trace_ids(experiment_id: str, among: set[str] | None = None) -> set[str]:
    """Ids of the experiment's traces marked as optimizer traffic (metadata only, no spans)."""
    if among is not None and not among:
        return set()
    from mlflow import MlflowClient

    client, found, token = MlflowClient(), set(), None
    while True:
        page = client.search_traces(
            locations=[experiment_id], filter_string=f"tag.`{SOURCE_TAG}` = '{OPTIMIZER}'",
            max_results=500, page_token=token, include_spans=False,
        )
        found.update(t.info.trace_id for t in page)
        token = page.token
        if not token:
            return found if among is None else found & among
