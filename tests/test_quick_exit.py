"""Processes that load the code location (Dagster's run workers) or run the CLI leave without a
full garbage collection of their heap (judgeloop.stack.quick_exit)."""

import os
import subprocess
import sys

import pytest

CHECK = "import atexit, gc\natexit.register(lambda: print('frozen at exit:', gc.get_freeze_count() > 0))\n"


@pytest.mark.parametrize(
    "entry",
    ["import judgeloop_assets.definitions", "from judgeloop.cli import main\nmain(['status', '--help'])"],
    ids=["code location", "cli"],
)
def test_the_heap_is_frozen_at_exit(tmp_path, entry):
    env = {k: v for k, v in os.environ.items() if not k.startswith("JUDGELOOP_")}
    env["JUDGELOOP_HOME"] = str(tmp_path / "state")
    done = subprocess.run(
        [sys.executable, "-c", CHECK + entry], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert done.stdout.strip().endswith("frozen at exit: True"), done.stdout + done.stderr
