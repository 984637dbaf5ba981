"""Leave the process without collecting every object it holds first.

A run process holds MLflow, litellm, dspy and Dagster: half a gigabyte of Python objects. On
the way out the interpreter runs a full garbage collection over all of them (about 1 s per
process on a 2-core machine), work whose only result is memory the OS takes back anyway.
Freezing the heap as the last exit handler puts every object out of the collector's reach.
The other exit handlers (registered later, so run earlier) still run, and files and database
connections are still closed as their last reference goes.
"""

import atexit
import gc

_installed = False


def install() -> None:
    """Once per process, as early as possible (exit handlers run last-registered first)."""
    global _installed
    if not _installed:
        atexit.register(gc.freeze)
        _installed = True
