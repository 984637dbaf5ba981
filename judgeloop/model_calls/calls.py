"""Counts model calls made through litellm (MemAlign's and GEPA's reflection, embeddings, and
judges on litellm-routed providers).

The counting wrappers sit on litellm's call functions, installed once, without importing litellm
(``judgeloop.mlflow_internals.litellm_hooks``): they see every call, synchronously, from any thread.
"""

import threading
from collections import Counter
from contextlib import contextmanager

from judgeloop.mlflow_internals import litellm_hooks

_ACTIVE: list[Counter] = []
_LISTENERS: list = []  # callables(kind, model, response) told about every finished call (see usage.py)
_LOCK = threading.Lock()
_KINDS = {"completion": "completion", "acompletion": "completion", "embedding": "embedding", "aembedding": "embedding"}


def _record(kind: str) -> None:
    with _LOCK:
        for counts in _ACTIVE:
            counts[kind] += 1


def _finished(kind: str, args, kwargs, response) -> None:
    if not _LISTENERS:
        return
    model = kwargs.get("model") or (args[0] if args else None)
    for listener in list(_LISTENERS):
        try:
            listener(kind, model, response)
        except Exception:  # accounting must never break a model call
            pass


def _install() -> None:
    """Count litellm's calls from now on, without importing litellm."""
    litellm_hooks.when_imported(_wrap)


def _wrap(litellm) -> None:
    litellm_hooks.replace_calls(litellm, "_judgeloop_counted", _counting)


def _counting(name: str, original):
    kind = _KINDS[name]
    if name.startswith("a"):

        async def wrapper(*args, **kwargs):
            _record(kind)
            try:
                response = await original(*args, **kwargs)
            except Exception:
                _record(f"{kind}_failed")
                raise
            _finished(kind, args, kwargs, response)
            return response

        return wrapper

    def wrapper(*args, **kwargs):
        _record(kind)
        try:
            response = original(*args, **kwargs)
        except Exception:
            _record(f"{kind}_failed")
            raise
        _finished(kind, args, kwargs, response)
        return response

    return wrapper


@contextmanager
def count_litellm_calls():
    """Yield a Counter of 'completion' and 'embedding' calls made inside the block (all threads),
    and of the ones that raised ('completion_failed', 'embedding_failed')."""
    _install()
    counts: Counter = Counter()
    with _LOCK:
        _ACTIVE.append(counts)
    try:
        yield counts
    finally:
        with _LOCK:
            _ACTIVE.remove(counts)
