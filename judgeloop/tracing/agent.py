"""The demo support agent: retrieves a passage, answers with its system prompt from the registry.

Any agent a user plugs in should do the same (load its prompt through the registry), so
every trace records which prompt version produced it and GEPA can optimize it.
"""

import functools

import mlflow

from judgeloop.prompt_optimization import prompts
from judgeloop.tracing import feedbackqa
from judgeloop.stand_in_models.fake_llm import words
from judgeloop.settings import Settings, load_settings


@functools.lru_cache(maxsize=4)
def _corpus(root: str | None, domain: str) -> tuple[tuple[str, frozenset], ...]:
    passages = {item.passage for item in feedbackqa.load_items(root, domain)}
    return tuple((p, frozenset(words(p))) for p in sorted(passages))


def best_passage(question: str, settings: Settings) -> str:
    """The passage sharing the most words with the question (a small lexical retriever)."""
    root = str(settings.feedbackqa_path) if settings.feedbackqa_path else None
    corpus = _corpus(root, settings.demo_domain)
    asked = words(question)
    return max(corpus, key=lambda entry: (len(asked & entry[1]) / (len(entry[1]) ** 0.5 or 1), entry[0]))[0]


def call_model(model_uri: str, system: str, user: str) -> str:
    """Chat with any MLflow model URI (provider:/model) through litellm."""
    import litellm

    provider, _, model = model_uri.partition(":/")
    response = litellm.completion(
        model=f"{provider}/{model}",
        messages=[{"role": "system", "content": system}, {"role": "user", "content": user}],
    )
    return response.choices[0].message.content


def respond(question: str, system_prompt: str, settings: Settings) -> str:
    from judgeloop.model_calls.providers import require_model

    with mlflow.start_span("retrieve", span_type="RETRIEVER") as span:
        span.set_inputs({"question": question})
        passage = best_passage(question, settings)
        span.set_outputs(passage)
    return call_model(require_model(settings, "agent"), system_prompt, f"Question: {question}\n\nPassage: {passage}")


@mlflow.trace(span_type="AGENT")
def answer(question: str) -> str:
    """Entry point for JUDGELOOP_AGENT=judgeloop.tracing.agent:answer (and for GEPA's predict_fn).

    Its signature is fixed by those callers, so it reads the settings itself, once per call.
    """
    from judgeloop.stack.store import prepare_environment

    settings = load_settings()
    prepare_environment(settings)
    prompt = mlflow.genai.load_prompt(
        f"prompts:/{prompts.name(settings)}@{settings.production_alias}", cache_ttl_seconds=0
    )
    return respond(question, prompt.format(), settings)
