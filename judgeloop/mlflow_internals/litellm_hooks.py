"""Wrappers on litellm's call functions, installed once litellm is imported, by whoever imports it.

dspy and MLflow look up ``litellm.completion`` / ``litellm.embedding`` (and their async twins) at
call time, so a wrapper set on the module function sees every call, synchronously, from any
thread; litellm's own callbacks do not fit (success events arrive from a background worker after
the call returned, and custom providers skip some hooks). Replacing a library's module functions
is a reach past its API, so it happens here only (contract test: tests/test_mlflow_internals.py).

Nothing here imports litellm (~3 s in a fresh process): a step whose models all go through
MLflow's own clients would pay it for nothing. What is asked for before litellm is loaded runs
the moment its module has run, through one import hook, in the order it was asked for.
"""

import functools
import importlib.abc
import importlib.util
import sys
import threading

CALLS = ("completion", "acompletion", "embedding", "aembedding")

_AFTER_IMPORT: list = []  # callables(litellm module), run in the order they were asked for
_LOCK = threading.RLock()


class _AfterImport(importlib.abc.MetaPathFinder):
    """Finds litellm as Python would, and runs ``_AFTER_IMPORT`` on it once its module has run."""

    def __init__(self):
        self._finding = False

    def find_spec(self, name, path=None, target=None):
        if name != "litellm" or self._finding:
            return None
        self._finding = True
        try:
            spec = importlib.util.find_spec(name)
        finally:
            self._finding = False
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        run_module = spec.loader.exec_module

        def exec_module(module):
            run_module(module)
            with _LOCK:
                for configure in list(_AFTER_IMPORT):
                    configure(module)

        spec.loader.exec_module = exec_module
        return spec


_HOOK = _AfterImport()


def when_imported(configure) -> None:
    """``configure(litellm)`` now if litellm is loaded, else right after something imports it
    (each callable once, however often it is asked for)."""
    with _LOCK:
        if "litellm" in sys.modules:
            configure(sys.modules["litellm"])
            return
        if configure not in _AFTER_IMPORT:
            _AFTER_IMPORT.append(configure)
        if _HOOK not in sys.meta_path:
            sys.meta_path.insert(0, _HOOK)


def replace_calls(litellm, marker: str, wrap) -> None:
    """Replace each of litellm's call functions by ``wrap(name, original)``, once per ``marker``
    (a function already carrying ``marker`` is left as it is)."""
    for name in CALLS:
        original = getattr(litellm, name, None)
        if original is None or getattr(original, marker, False):
            continue
        wrapper = functools.wraps(original)(wrap(name, original))
        setattr(wrapper, marker, True)
        setattr(litellm, name, wrapper)
