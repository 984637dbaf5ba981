"""Agents the tests plug in through JUDGELOOP_AGENT (module:function)."""

import mlflow


@mlflow.trace
def echo_agent(question: str) -> str:
    return f"About {question}: the answer to {question} is in the guidance."


@mlflow.trace
def flaky_agent(question: str) -> str:
    if "explode" in question:
        raise RuntimeError(f"the agent cannot answer {question!r}")
    return f"About {question}: the answer to {question} is in the guidance."


@mlflow.trace
def stuck_agent(question: str) -> str:
    """An agent that never answers in time: a run calling it can only end by its run-time limit."""
    import time

    time.sleep(3600)
    return question
