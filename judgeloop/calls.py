"""Counts model calls made through litellm (MemAlign's and GEPA's reflection, embeddings, and
judges on litellm-routed providers).

litellm's own callbacks do not fit: success events arrive from a background worker after the
call returned, and custom providers skip some hooks. dspy and MLflow look up
``litellm.completion`` / ``litellm.embedding`` at call time, so counting wrappers installed once
on those module functions see every call, synchronously, from any thread.

Counting never imports litellm (~3 s in a fresh process): a step whose models all go through
MLflow's own clients would pay it for nothing. When litellm is not loaded yet, the wrappers are
installed the moment something else imports it (``_WrapOnImport``), before any call can be made.
"""

import functools
import importlib.abc
import importlib.util
import sys
import threading
from collections import Counter
from contextlib import contextmanager

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


class _WrapOnImport(importlib.abc.MetaPathFinder):
    """Installs the counting wrappers right after ``litellm`` is imported, by whoever imports it."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname != "litellm":
            return None
        sys.meta_path.remove(self)  # once; the regular finders locate the package
        spec = importlib.util.find_spec(fullname)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        execute = spec.loader.exec_module

        def exec_module(module):
            execute(module)
            _wrap(module)

        spec.loader.exec_module = exec_module
        return spec


_HOOK = _WrapOnImport()


def _install() -> None:
    """Count litellm's calls from now on, without importing litellm."""
    with _LOCK:
        if "litellm" in sys.modules:
            _wrap(sys.modules["litellm"])
        elif _HOOK not in sys.meta_path:
            sys.meta_path.insert(0, _HOOK)


def _wrap(litellm) -> None:
    for name, kind in _KINDS.items():
        original = getattr(litellm, name)
        if getattr(original, "_judgeloop_counted", False):
            continue
        if name.startswith("a"):

            async def wrapper(*args, _original=original, _kind=kind, **kwargs):
                _record(_kind)
                try:
                    response = await _original(*args, **kwargs)
                except Exception:
                    _record(f"{_kind}_failed")
                    raise
                _finished(_kind, args, kwargs, response)
                return response

        else:

            def wrapper(*args, _original=original, _kind=kind, **kwargs):
                _record(_kind)
                try:
                    response = _original(*args, **kwargs)
                except Exception:
                    _record(f"{_kind}_failed")
                    raise
                _finished(_kind, args, kwargs, response)
                return response

        wrapper = functools.wraps(original)(wrapper)
        wrapper._judgeloop_counted = True
        setattr(litellm, name, wrapper)


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
