"""Profiles Dagster run processes with pyinstrument (``bench/latency.py --profile DIR``).

On ``PYTHONPATH`` only while profiling. A run process is a ``spawn`` child of the code server
(its command line ends in ``--multiprocessing-fork``); every other process is left alone. The
profile is written when the process exits, as text and HTML, named after the process id.
"""

import atexit
import os

_OUT = os.environ.get("BENCH_RUN_PROFILE_DIR")


def _is_spawned_child() -> bool:
    try:
        with open("/proc/self/cmdline", "rb") as f:
            return b"--multiprocessing-fork" in f.read()
    except OSError:
        return False


if _OUT and _is_spawned_child():
    try:
        from pyinstrument import Profiler
    except ImportError:  # pyinstrument is a bench dependency only
        Profiler = None
    if Profiler is not None:
        _profiler = Profiler(interval=0.005, async_mode="disabled")
        _profiler.start()

        def _write() -> None:
            _profiler.stop()
            os.makedirs(_OUT, exist_ok=True)
            base = os.path.join(_OUT, f"run-{os.getpid()}")
            with open(base + ".txt", "w") as f:
                f.write(_profiler.output_text(unicode=False, color=False, show_all=False))
            with open(base + ".html", "w") as f:
                f.write(_profiler.output_html())

        atexit.register(_write)
