"""The one ``judgeloop up`` of a state folder, and what it announces to other shells.

A second ``up`` on the same folder would take over the first one's Dagster instance (marking
its live runs "interrupted" while its worker still runs, so two re-alignments run at once) and
its clean-up would delete the first one's ``running.json``. An exclusive ``flock`` on
``up.lock``, held from before ``up`` touches anything until it exits, keeps it to one: the
kernel releases the lock when the process ends, however it ends, so a crashed ``up`` never
blocks the next one.

``running.json`` tells other commands (status, labels import...) to go through the running
stack's MLflow server. A file there that judgeloop cannot read is refused, never skipped: skipping
it sent those commands straight into the sqlite file behind the running server.
"""

import fcntl
import json
import os
from pathlib import Path

LOCK_FILE = "up.lock"
STATE_FILE = "running.json"


class StackRunningError(RuntimeError):
    """Another ``judgeloop up`` holds this state folder."""


class StateFileError(RuntimeError):
    """``running.json`` exists but is not what ``judgeloop up`` writes; the message says what to do."""


class StackLock:
    """Held by the running ``judgeloop up``; ``acquire`` raises naming the stack that holds it."""

    def __init__(self, home: Path):
        self.home = Path(home)
        self._fd: int | None = None

    def acquire(self) -> None:
        fd = os.open(self.home / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 64).decode(errors="replace").strip()
            os.close(fd)
            raise StackRunningError(_describe_holder(self.home, holder)) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def _describe_holder(home: Path, pid: str) -> str:
    try:
        info = read_state(home)
    except StateFileError:
        info = {}
    where = ", ".join(f"{name} {info[key]}" for name, key in (("MLflow", "tracking_uri"), ("Dagster", "dagster_url")) if info.get(key))
    return (
        f"another judgeloop up (pid {pid or 'unknown'}{', ' + where if where else ', still starting'}) is running on "
        f"the state folder {home}; stop it first (Ctrl-C in its shell), or set JUDGELOOP_HOME to another folder. "
        "Nothing was started."
    )


def read_state(home: Path) -> dict:
    """What a live ``judgeloop up`` on ``home`` announced; {} when none runs (no file, or its process ended)."""
    path = Path(home) / STATE_FILE
    try:
        raw = path.read_text()
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise StateFileError(f"cannot read {path} ({exc}); fix its permissions, or delete it if no judgeloop up runs on {home}") from exc
    try:
        info = json.loads(raw)
        pid = int(info["pid"])
        if not isinstance(info.get("tracking_uri"), str):
            raise ValueError("no tracking_uri")
    except (ValueError, KeyError, TypeError) as exc:
        # Not skipped: going on without it would write the sqlite file behind a running server.
        raise StateFileError(
            f"{path} is not a state file judgeloop up wrote ({type(exc).__name__}: {exc}); commands do not guess "
            f"where MLflow is. If judgeloop up is running on {home}, restart it (it rewrites the file); if not, "
            "delete the file."
        ) from None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return {}  # left by an up that ended without cleaning up
    except PermissionError:
        pass  # alive, another user's
    return info
