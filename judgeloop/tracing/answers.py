"""An answer stored as a trace output that MLflow's UIs show as text.

MLflow's review form and trace view print a plain string output as a JSON string, so a
multi-line answer shows literal ``\\n``; an OpenAI-style chat completion is rendered as the
assistant's message (paragraphs and lists included).
"""


def as_chat_completion(text: str) -> dict:
    return {
        "object": "chat.completion",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
    }

