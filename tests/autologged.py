"""Traces shaped the way MLflow's autologgers log an application's calls, built with MLflow's
public tracing API (no network, no OpenAI or LangChain package): the shapes judgeloop must read.

- ``openai_chat``: ``mlflow.openai.autolog()`` around ``client.chat.completions.create``. The
  root span is the completion itself (type CHAT_MODEL): inputs are the request's keyword
  arguments (``messages``, ``model``, ``temperature``), outputs the ``ChatCompletion``.
- ``langchain_chain``: ``mlflow.langchain.autolog()`` around ``(prompt | llm | parser).invoke(
  {"question": ...})``: a ``RunnableSequence`` root (CHAIN) with the dict it was invoked with as
  inputs and the parser's string as outputs, and a child span per step.

Each trace gets the application's request id as its client request id, as an application does
with ``mlflow.update_current_trace(client_request_id=...)``.
"""

import mlflow

SYSTEM = "You are a support assistant for a home internet provider."
OPENAI_REQUEST_FIELD = "messages.-1.content"
OPENAI_RESPONSE_FIELD = "choices.0.message.content"


def openai_chat(question: str, answer: str, request_id: str, model: str = "gpt-4o-mini") -> str:
    messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": question}]
    with mlflow.start_span(name="Completions", span_type="CHAT_MODEL") as span:
        span.set_inputs({"messages": messages, "model": model, "temperature": 0.2})
        span.set_attributes({"model": model, "temperature": 0.2})
        span.set_outputs({
            "id": f"chatcmpl-{request_id}",
            "object": "chat.completion",
            "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": answer}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 42, "completion_tokens": 17, "total_tokens": 59},
        })
        mlflow.update_current_trace(client_request_id=request_id)
        return span.trace_id


def langchain_chain(question: str, answer: str, request_id: str) -> str:
    with mlflow.start_span(name="RunnableSequence", span_type="CHAIN") as root:
        root.set_inputs({"question": question})
        with mlflow.start_span(name="ChatPromptTemplate", span_type="CHAIN") as prompt:
            prompt.set_inputs({"question": question})
            rendered = {"messages": [{"type": "system", "content": SYSTEM}, {"type": "human", "content": question}]}
            prompt.set_outputs(rendered)
        with mlflow.start_span(name="ChatOpenAI", span_type="CHAT_MODEL") as llm:
            llm.set_inputs([[{"type": "system", "content": SYSTEM}, {"type": "human", "content": question}]])
            llm.set_outputs({"generations": [[{"text": answer, "type": "ChatGeneration"}]], "llm_output": None})
        with mlflow.start_span(name="StrOutputParser", span_type="PARSER") as parser:
            parser.set_inputs({"content": answer, "type": "ai"})
            parser.set_outputs(answer)
        root.set_outputs(answer)
        mlflow.update_current_trace(client_request_id=request_id)
        return root.trace_id


def support_exchanges(count: int) -> list[tuple[str, str, str]]:
    """(question, answer, request id) triples: distinct questions, answers of varying quality."""
    topics = ["router", "modem", "wifi password", "invoice", "fibre line", "static IP", "mesh extender", "outage"]
    found = []
    for i in range(count):
        topic = topics[i % len(topics)]
        question = f"How do I fix the {topic} problem number {i} in my flat?"
        if i % 3 == 0:
            answer = f"To fix the {topic} problem number {i}, restart the {topic} and check the flat's cabling."
        elif i % 3 == 1:
            answer = f"Please restart the {topic}."
        else:
            answer = "Thanks for reaching out, we will get back to you."
        found.append((question, answer, f"req-{i:05d}"))
    return found
