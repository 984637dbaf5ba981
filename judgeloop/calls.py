"""Counts LLM calls made through litellm (MemAlign's and GEPA's reflection and embeddings)."""

import threading
from collections import Counter
from contextlib import contextmanager


@contextmanager
def count_litellm_calls():
    """Yield a Counter of 'completion' and 'embedding' calls made inside the block."""
    import litellm
    from litellm.integrations.custom_logger import CustomLogger

    counts: Counter = Counter()
    lock = threading.Lock()

    class _Counter(CustomLogger):
        def _record(self, kwargs):
            kind = "embedding" if kwargs.get("call_type") in {"embedding", "aembedding"} else "completion"
            with lock:
                counts[kind] += 1

        def log_success_event(self, kwargs, response_obj, start_time, end_time):
            self._record(kwargs)

        def log_failure_event(self, kwargs, response_obj, start_time, end_time):
            self._record(kwargs)

        async def async_log_success_event(self, kwargs, response_obj, start_time, end_time):
            self._record(kwargs)

        async def async_log_failure_event(self, kwargs, response_obj, start_time, end_time):
            self._record(kwargs)

    counter = _Counter()
    litellm.callbacks.append(counter)
    try:
        yield counts
    finally:
        litellm.callbacks.remove(counter)
