"""Stand-ins for real LLM providers, so the loop runs with no provider account and no network.

- ``fake_llm``: the deterministic offline models behind ``fake:/<name>`` URIs (tests, the demo),
  in-process through a litellm custom provider, or over HTTP as an OpenAI-compatible server.
  They exercise the whole loop; they are not an LLM and judge naively.
- ``local_models``: models running on this machine: ``local:/<name>`` sentence embeddings served
  in-process, and a llama.cpp ``llama-server`` that ``judgeloop up`` can start for chat models.
"""
