"""A throwaway PostgreSQL server for tests, or the one named by JUDGELOOP_TEST_POSTGRES_URL.

Without a URL, ``cluster()`` runs ``initdb`` into a temporary folder, starts the server with
``pg_ctl`` on a free loopback port and removes everything on exit, also when a test fails.
PostgreSQL refuses to run as root, so under root the server runs as the ``postgres`` system
user (Debian's package creates it), else ``nobody``, owning only the temporary folder.
"""

import contextlib
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

from judgeloop.stack.servers import free_port

URL_VARIABLE = "JUDGELOOP_TEST_POSTGRES_URL"
SUPERUSER = "judgeloop"


class NoServerBinary(RuntimeError):
    """No PostgreSQL server binary (initdb/pg_ctl) on this machine."""


def server_bindir() -> Path:
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    if candidates:
        return Path(candidates[-1]).parent
    on_path = shutil.which("initdb")
    if on_path:
        return Path(on_path).parent
    raise NoServerBinary(
        "no PostgreSQL server binary (initdb) in /usr/lib/postgresql/*/bin or on PATH; "
        f"install it (apt-get install postgresql) or set {URL_VARIABLE}"
    )


def _run_as() -> list[str]:
    """The prefix that runs a command as an unprivileged user when we are root."""
    if os.geteuid() != 0:
        return []
    for user in ("postgres", "nobody"):
        try:
            pwd.getpwnam(user)
        except KeyError:
            continue
        return ["runuser", "-u", user, "--"]
    raise NoServerBinary("running as root and neither a 'postgres' nor a 'nobody' user exists to run the server")


def _owner() -> tuple[int, int] | None:
    prefix = _run_as()
    if not prefix:
        return None
    entry = pwd.getpwnam(prefix[2])
    return entry.pw_uid, entry.pw_gid


@contextlib.contextmanager
def cluster():
    """Yield the URL (``postgresql://``) of a fresh server's ``postgres`` database."""
    bindir = server_bindir()
    prefix = _run_as()
    root = Path(tempfile.mkdtemp(prefix="judgeloop-pg-"))
    data, sockets = root / "data", root / "run"
    sockets.mkdir()
    owner = _owner()
    if owner:
        # Only this folder is handed to the server's user; 0700 keeps it private again.
        for path in (root, sockets):
            os.chown(path, *owner)
    root.chmod(0o700)
    port = free_port()
    log = root / "server.log"
    started = False
    try:
        subprocess.run(
            [*prefix, str(bindir / "initdb"), "-D", str(data), "-U", SUPERUSER, "--auth=trust", "-E", "UTF8",
             "--no-locale", "--no-sync"],
            check=True, capture_output=True, cwd=root,
        )
        options = (
            f"-c listen_addresses=127.0.0.1 -p {port} -k {sockets} -c fsync=off -c synchronous_commit=off "
            "-c full_page_writes=off -c max_connections=200 -c shared_buffers=64MB"
        )
        subprocess.run(
            [*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-l", str(log), "-o", options, "-w", "-t", "60", "start"],
            check=True, capture_output=True, cwd=root,
        )
        started = True
        yield f"postgresql://{SUPERUSER}@127.0.0.1:{port}/postgres"
    except subprocess.CalledProcessError as exc:
        server_log = log.read_text() if log.exists() else ""
        raise RuntimeError(
            f"PostgreSQL did not start: {exc.cmd[len(prefix)]} exited {exc.returncode}: "
            f"{exc.stderr.decode(errors='replace')}{server_log}"
        ) from exc
    finally:
        if started:
            subprocess.run(
                [*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "-t", "30", "stop"],
                capture_output=True, cwd=root,
            )
        shutil.rmtree(root, ignore_errors=True)


def create_database(server_url: str) -> str:
    """A new empty database on the server; returns its URL (same scheme as ``server_url``)."""
    import psycopg2

    name = f"t_{uuid.uuid4().hex[:12]}"
    conn = psycopg2.connect(server_url.replace("postgresql+psycopg2://", "postgresql://"))
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{name}"')
    finally:
        conn.close()
    base, _, _ = server_url.rpartition("/")
    return f"{base}/{name}"
