"""``judgeloop up``: the whole loop locally, an MLflow server and ``dagster dev`` (with its daemon)."""

import argparse
import importlib.util
import json
import os
import secrets
import signal
import sys
import time
from contextlib import contextmanager
from pathlib import Path

from judgeloop.stack import database_url, exposure, private_files, running_stack, servers
from judgeloop.stand_in_models import local_models
from judgeloop.mlflow_internals import sqlite_store
from judgeloop.sme_labels.notify import TRIGGER_TAG
from judgeloop.model_calls.providers import nothing_configured, stand_in_environment
from judgeloop.settings import load_settings
from judgeloop.stack.store import library_environment


# The demo releases the experts' labels in batches on its own, so the sensor can be watched re-aligning.
DEMO_RELEASE_EVERY = 60.0
# The first alignment measures the judge on the held-out third of what is labelled: on three or
# four traces one disagreement swings kappa from 0.5 to 0, so the first round of reviews is larger.
DEMO_FIRST_BATCH = 40
# The simulated raters leave the last few traces "needs review": a new user's own labels move the judge next.
DEMO_LEFT_FOR_REVIEW = 6

# MLflow exiting under a running `up` is restarted this many times per window; more means it
# keeps crashing (full disk, broken store), and everything stops with the log to read.
MLFLOW_RESTARTS = 3
MLFLOW_RESTART_WINDOW = 3600.0

STAND_IN_BANNER = """
==========================================================================================
  OFFLINE DEMO: no model provider is configured, so every model role (judge, reflection,
  embeddings, agent) is an offline STAND-IN (judgeloop.stand_in_models.fake_llm): deterministic rules, not
  an LLM. The loop runs end to end and the judge learns from the experts' labels through
  MemAlign, but its judgements are not a real model's. Set JUDGELOOP_JUDGE_MODEL etc. (see
  README) for real judgements.
==========================================================================================
"""


def register(commands) -> None:
    parser = commands.add_parser("up", help="Start MLflow and Dagster (UIs, sensors) on loopback; Ctrl-C stops both.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--mlflow-port", type=int, default=5000)
    parser.add_argument("--dagster-port", type=int, default=3000)
    parser.add_argument("--mlflow-workers", type=int, default=2, help="MLflow server worker processes.")
    parser.add_argument("--demo", action="store_true", help="Load FeedbackQA as production traffic (see `judgeloop demo`).")
    parser.add_argument("--team", action="store_true", help="MLflow basic-auth: one account per reviewer (JUDGELOOP_REVIEWERS).")
    parser.add_argument("--no-launch", action="store_true", help="Do not launch the foundation job at start.")
    parser.add_argument(
        "--release-every", type=float, default=None, metavar="SECONDS",
        help="Demo: release one batch of expert labels every SECONDS (default 60; 0 = only by `judgeloop demo release`).",
    )
    parser.add_argument("--batch", type=int, default=10, help="Demo: labels per released batch.")
    parser.add_argument(
        "--first-batch", type=int, default=DEMO_FIRST_BATCH, metavar="N",
        help=f"Demo: labels in the first released batch (default {DEMO_FIRST_BATCH}).",
    )
    parser.add_argument(
        "--llama-server-model", type=Path, metavar="PATH.gguf",
        help="Offline: serve this GGUF model with your llama.cpp llama-server (LLAMA_SERVER or PATH) and point "
        "openai:/<file name without .gguf> model URIs at it. Small local models exercise the loop, they do not judge well.",
    )
    parser.add_argument("--exit-after", type=float, default=0.0, help=argparse.SUPPRESS)
    parser.set_defaults(handler=run)


def _team_credentials(home: Path, reviewers: list[str]) -> dict:
    """Passwords for admin and reviewers, generated once and kept in the state folder (0600)."""
    path = home / "team-credentials.json"
    creds = json.loads(path.read_text()) if path.exists() else {}
    creds.setdefault("secret_key", secrets.token_hex(24))
    creds.setdefault("admin", {"username": "admin", "password": secrets.token_urlsafe(18)})
    users = creds.setdefault("reviewers", {})
    for reviewer in reviewers:
        users.setdefault(reviewer, secrets.token_urlsafe(12))
    private_files.write_private(path, json.dumps(creds, indent=2))
    return creds


def _auth_config(home: Path, creds: dict) -> Path:
    path = home / "mlflow-auth.ini"
    path.write_text(
        "[mlflow]\n"
        "default_permission = READ\n"
        f"database_uri = sqlite:///{home / 'mlflow-auth.db'}\n"
        f"admin_username = {creds['admin']['username']}\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
        "grant_default_workspace_access = false\n"
        # Without a cache every request re-hashes the password (~0.8 s each).
        "auth_cache_ttl_seconds = 60\n"
    )
    return path


def _grant_reviewers(tracking_uri: str, experiment_id: str, creds: dict) -> None:
    from mlflow.server.auth.client import AuthServiceClient

    client = AuthServiceClient(tracking_uri)
    for reviewer, password in creds["reviewers"].items():
        try:
            client.get_user(reviewer)
        except Exception:
            client.create_user(reviewer, password)
        client.grant_user_permission(reviewer, "experiment", experiment_id, "EDIT")


def _wait_for_code_location(dagster, timeout: float = 120) -> None:
    from judgeloop_assets.dagster_client import DagsterError

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if dagster.code_locations_loaded():
                return
        except DagsterError:
            pass  # the webserver is still starting
        time.sleep(1)
    raise servers.StartupError(f"the judgeloop code location did not load within {timeout:.0f} s")


def _review_queue_link(settings, experiment_id: str, mlflow_url: str) -> str | None:
    """The link experts open: the judge's review queue, at its first unreviewed item.

    The schema and queue are created here (labeling_session re-uses them), so the link works
    before the first run finished; traces join the queue as labeling_session tags them.
    """
    from judgeloop.sme_labels import labeling

    try:
        report = labeling.open_session(settings, experiment_id, [], mlflow_url)
    except Exception as exc:  # the link is a convenience: the servers stay up without it
        print(f"judgeloop up: could not prepare the review queue ({exc})", file=sys.stderr)
        return None
    return f"{report.url}&startReview=true"


def run(args) -> int:
    """Start the stack, serve until Ctrl-C (or a server dies), stop everything; each step is a method of ``_Up``."""
    up = _Up(args, load_settings())
    refused = up.check_before_starting()
    if refused is not None:
        return refused
    refused = up.plan_the_environment()
    if refused is not None:
        up.stack_lock.release()
        return refused
    up.prepare_dagster_instance()
    with up.handling_signals():
        try:
            up.start_mlflow()
            up.prepare_the_store()
            up.start_dagster()
            up.announce()
            up.launch_the_foundation()
            return up.serve()
        except (servers.StartupError, local_models.LocalModelError) as exc:
            print(f"judgeloop up: {exc}", file=sys.stderr)
            return 1
        finally:
            up.stop()


class _Up:
    """One ``judgeloop up``: what it decided (settings, URLs, the servers' environment) and its steps, in order."""

    def __init__(self, args, settings):
        self.args, self.settings = args, settings
        self.home = settings.resolved_home
        self.mlflow_url = f"http://{args.host}:{args.mlflow_port}"
        self.dagster_url = f"http://{args.host}:{args.dagster_port}"
        self.stack_lock = running_stack.StackLock(self.home)
        self.stack = servers.Stack()
        self.stand_ins: dict = {}
        self.creds: dict | None = None
        self.env: dict = {}
        self.backend_uri = ""
        self.missing: list[str] = []
        self.experiment_id = ""
        self.review_link: str | None = None
        self.mlflow = self.dagster_client = None
        self.stopping = {"flag": False, "serving": False, "signal": 0}

    # 1. Nothing is started while anything here is wrong --------------------------------------
    def check_before_starting(self) -> int | None:
        args = self.args
        for warning in exposure.warnings(args.host, args.team):  # first, so it is seen even if start-up fails
            print(f"judgeloop up: {warning}", file=sys.stderr, flush=True)
        stack_lock = self.stack_lock
        try:
            servers.check_state_folder(self.home)
            # Before anything reads or changes the folder's Dagster instance or running.json.
            stack_lock.acquire()
            servers.check_ports(args.host, {"MLflow": args.mlflow_port, "Dagster": args.dagster_port})
            if args.llama_server_model:  # fail before anything starts
                local_models.find_llama_server()
                local_models.check_gguf(args.llama_server_model)
        except (servers.StartupError, local_models.LocalModelError, running_stack.StackRunningError) as exc:
            print(f"judgeloop up: {exc}", file=sys.stderr)
            stack_lock.release()
            return 2
        return None

    # 2. The settings and the servers' environment --------------------------------------------
    def plan_the_environment(self) -> int | None:
        from judgeloop.model_calls.providers import ROLES, configuration_report

        args, settings, home = self.args, self.settings, self.home
        if args.demo and nothing_configured(settings) and not args.llama_server_model:
            # A fresh machine with no provider: the demo still runs end to end, on the offline
            # stand-in models, and says so (banner here, `models` in the assets' metadata).
            # This process's environment holds them too: the agent's entry point reads its settings there.
            self.stand_ins = stand_in_environment()
            os.environ.update(self.stand_ins)
            by_variable = {variable: field for field, variable in ROLES.values()}
            settings = self.settings = settings.model_copy(update={by_variable[k]: v for k, v in self.stand_ins.items()})
        self.missing = configuration_report(settings)
        if settings.database_url and not database_url.is_postgres(settings.database_url):
            print("judgeloop up: JUDGELOOP_DATABASE_URL must be a PostgreSQL URL (Dagster's storage lives there too).", file=sys.stderr)
            return 2
        if settings.database_url and importlib.util.find_spec("dagster_postgres") is None:
            print("judgeloop up: a database URL needs the postgres extra: pip install 'judgeloop[postgres]'", file=sys.stderr)
            return 2
        self.backend_uri = settings.database_url or (
            settings.tracking_uri if settings.tracking_uri and not settings.tracking_uri.startswith("http") else f"sqlite:///{home / 'mlflow.db'}"
        )
        env = self.env = dict(os.environ)
        env.update(
            {
                "JUDGELOOP_HOME": str(home),
                "JUDGELOOP_TRACKING_URI": self.mlflow_url,
                "JUDGELOOP_BACKEND_STORE_URI": self.backend_uri,
                "JUDGELOOP_MLFLOW_UI_URL": self.mlflow_url,
                "DAGSTER_HOME": str(settings.dagster_home),
                "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
            }
        )
        for key, value in library_environment(settings).items():
            env.setdefault(key, value)
        if settings.database_url:  # dagster.yaml reads Dagster's storage URL from the environment
            env[servers.DAGSTER_STORAGE_URL_VARIABLE] = database_url.dagster_storage_url(settings.database_url)
        if args.team:
            if not settings.reviewers:
                print("judgeloop up --team: set JUDGELOOP_REVIEWERS (e.g. alice,bob) first.", file=sys.stderr)
                return 2
            # The folder holds the passwords, MLflow's store and its user database: its owner's only.
            private_files.make_private_folder(home)
            creds = self.creds = _team_credentials(home, settings.reviewers)
            env["MLFLOW_AUTH_CONFIG_PATH"] = str(_auth_config(home, creds))
            env["MLFLOW_FLASK_SERVER_SECRET_KEY"] = creds["secret_key"]
            env["MLFLOW_AUTH_ADMIN_PASSWORD"] = creds["admin"]["password"]
            # Dagster's processes write to MLflow as the admin; reviewers label as themselves.
            env["MLFLOW_TRACKING_USERNAME"] = creds["admin"]["username"]
            env["MLFLOW_TRACKING_PASSWORD"] = creds["admin"]["password"]
        servers.write_dagster_yaml(settings.dagster_home, settings.database_url)
        if settings.database_url:
            try:
                database_url.create_dagster_schema(settings.database_url)
            except Exception as exc:  # unreachable server, bad credentials: say so before starting anything
                print(f"judgeloop up: cannot reach {database_url.redacted(settings.database_url)}: {exc}", file=sys.stderr)
                return 2
            # This process opens the instance too (below): it reads the same storage URL.
            os.environ[servers.DAGSTER_STORAGE_URL_VARIABLE] = env[servers.DAGSTER_STORAGE_URL_VARIABLE]
        return None

    # 3. Runs a stopped up left behind ---------------------------------------------------------
    def prepare_dagster_instance(self) -> None:
        from judgeloop_assets.interrupted_runs import fail_interrupted_runs
        from judgeloop_assets.realign_pool import ensure_realign_pool_at

        interrupted = fail_interrupted_runs(self.settings.dagster_home)
        ensure_realign_pool_at(self.settings.dagster_home)
        if interrupted:
            print(f"judgeloop: {len(interrupted)} run(s) interrupted when judgeloop up last stopped, marked failed; "
                  "the label sensor retries them", flush=True)

    @contextmanager
    def handling_signals(self):
        stopping = self.stopping

        def _stop(signum, frame):
            first = not stopping["flag"]
            stopping["flag"] = True
            stopping["signal"] = stopping["signal"] or signum
            # While starting (waiting for servers, seeding, ...) nothing polls the flag: interrupt
            # right away instead of finishing start-up and launching a run first. Only the first
            # signal raises, so a second Ctrl-C cannot cut the clean-up in `finally` short.
            if first and not stopping["serving"]:
                raise KeyboardInterrupt

        previous = {sig: signal.signal(sig, _stop) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    # 4. MLflow's server --------------------------------------------------------------------------
    @property
    def auth(self):
        return (self.creds["admin"]["username"], self.creds["admin"]["password"]) if self.creds else None

    def start_mlflow(self) -> None:
        from judgeloop.model_calls.providers import configuration_report

        args, settings, home = self.args, self.settings, self.home
        print(f"judgeloop: state in {home}", flush=True)
        if self.stand_ins:
            print(STAND_IN_BANNER, flush=True)
        if args.llama_server_model:
            print(f"judgeloop: starting llama-server with {args.llama_server_model} ...", flush=True)
            llama = local_models.start_llama_server(self.stack, args.llama_server_model, self.env, home / "logs")
            print(f"llama-server: {llama['base_url']}; use model URIs openai:/{llama['alias']}", flush=True)
            self.missing = configuration_report(settings)  # openai:/ URIs now resolve to llama-server
        sqlite_store.use_wal(self.backend_uri)  # the server's workers and the runs share the file
        self.mlflow = self.stack.start(
            "mlflow", servers.mlflow_command(
                args.host, args.mlflow_port, self.backend_uri, settings.artifacts_destination or home / "mlartifacts", args.team,
                workers=args.mlflow_workers,
            ),
            self.env, home / "logs",
        )
        # Several workers on a busy machine took over 2 minutes to answer here.
        servers.wait_for_http(f"{self.mlflow_url}/health", self.mlflow, timeout=300, auth=self.auth)

    # 5. The experiment, the demo's traffic, the review queue ---------------------------------
    def prepare_the_store(self) -> None:
        from judgeloop.stack.store import connect
        from judgeloop.tracing import demo as demo_core

        # From here on this process goes through the server too, as the admin in team mode
        # (MLflow's client reads the credentials from the environment).
        for key in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
            if key in self.env:
                os.environ[key] = self.env[key]
        os.environ.update({k: self.env[k] for k in ("JUDGELOOP_TRACKING_URI", "JUDGELOOP_HOME")})
        settings = self.settings = self.settings.model_copy(update={"tracking_uri": self.mlflow_url})
        self.experiment_id = connect(settings)
        if self.args.demo:
            demo_core.seed(settings, self.experiment_id)
            self.env["JUDGELOOP_EXPECTATIONS_PATH"] = str(demo_core.write_expectations(settings))
        if self.creds:
            _grant_reviewers(self.mlflow_url, self.experiment_id, self.creds)
        self.review_link = _review_queue_link(settings, self.experiment_id, self.mlflow_url)

    # 6. Dagster's webserver and daemon -------------------------------------------------------
    def start_dagster(self) -> None:
        from judgeloop_assets.dagster_client import DagsterClient

        command, cwd = servers.dagster_command(self.args.host, self.args.dagster_port)
        dagster = self.stack.start("dagster", command, self.env, self.home / "logs", cwd=cwd)
        servers.wait_for_http(f"{self.dagster_url}/server_info", dagster, timeout=180)
        self.dagster_client = DagsterClient(self.dagster_url)
        _wait_for_code_location(self.dagster_client)
        self.stopping["serving"] = True  # from here on, Ctrl-C is seen by the serving loop

    # 7. Tell other shells and the user where everything is -----------------------------------
    def announce(self) -> None:
        home, mlflow_url, experiment_id, creds = self.home, self.mlflow_url, self.experiment_id, self.creds
        # Replaced whole (never half-written: other shells refuse a file they cannot read).
        private_files.write_private(
            home / running_stack.STATE_FILE,
            json.dumps({
                "pid": os.getpid(), "tracking_uri": mlflow_url, "dagster_url": self.dagster_url,
                # A database URL may carry a password: other shells read it from their own settings.
                "backend_store_uri": None if self.settings.database_url else self.backend_uri,
            })
        )
        # This process pushes the demo's label batches to Dagster: it knows where Dagster is.
        self.settings = self.settings.model_copy(update={"dagster_url": self.dagster_url})
        print(f"\nMLflow UI:  {mlflow_url}/#/experiments/{experiment_id}", flush=True)
        if self.review_link:
            print(f"Experts label here (MLflow review queue): {self.review_link}", flush=True)
        print(f"Dagster UI: {self.dagster_url}/asset-groups  (sensor sme_labels_sensor is running)", flush=True)
        print(f"Logs:       {home / 'logs'}", flush=True)
        if creds:
            print("\nTeam mode: each reviewer signs in to MLflow with their own account.")
            print(f"  admin: {creds['admin']['username']} (password in {home / 'team-credentials.json'})")
            for reviewer in creds["reviewers"]:
                print(f"  {reviewer}: {self.review_link or f'{mlflow_url}/#/experiments/{experiment_id}/review-queue'}")

    # 8. The foundation job, unless told not to or models are missing -------------------------
    def launch_the_foundation(self) -> None:
        from judgeloop.run_names import FOUNDATION_JOB
        from judgeloop_assets.dagster_client import DagsterError

        if self.missing:
            print("\nModels are not configured yet; assets that call a model will fail until you set:")
            for line in self.missing:
                print(f"  - {line}")
        elif not self.args.no_launch and not self.stopping["flag"]:
            try:
                run_id = self.dagster_client.launch(FOUNDATION_JOB, {TRIGGER_TAG: "up"})
                print(f"\nLaunched {FOUNDATION_JOB}: {self.dagster_url}/runs/{run_id}")
            except DagsterError as exc:  # the servers stay up: the job can be launched from the UI
                print(f"\n{exc}", file=sys.stderr)
        print("\nCtrl-C stops everything.", flush=True)

    # 9. Serve: keep MLflow alive, release the demo's labels ------------------------------------
    def serve(self) -> int:
        args, stopping = self.args, self.stopping
        started = time.monotonic()
        release_every = DEMO_RELEASE_EVERY if args.release_every is None else args.release_every
        releases = _DemoReleases(self, release_every) if args.demo and release_every else None
        restarts = servers.RestartBudget(MLFLOW_RESTARTS, MLFLOW_RESTART_WINDOW)
        while not stopping["flag"]:
            self.watch_processes(restarts)
            if releases is not None and releases.due():
                releases.release()
                if releases.done:
                    releases = None
            if args.exit_after and time.monotonic() - started >= args.exit_after:
                break
            time.sleep(0.5)
        # Stopped by Ctrl-C (SIGINT) or SIGTERM: the shell convention 128 + signal (130, 143).
        return 128 + stopping["signal"] if stopping["signal"] else 0

    def watch_processes(self, restarts) -> None:
        stopping = self.stopping
        for process in list(self.stack.processes):
            if stopping["flag"] or process.popen.poll() is None:
                continue
            code = process.popen.returncode
            if process is self.mlflow and restarts.allow(time.monotonic()):
                # Dagster keeps running; its runs and sensor ticks fail while MLflow is down
                # and the sensor retries the labels of a failed run.
                print(f"judgeloop: MLflow exited ({code}); restarting it (at most {MLFLOW_RESTARTS} restarts per "
                      f"{MLFLOW_RESTART_WINDOW / 60:.0f} min); see {process.log_path}", file=sys.stderr, flush=True)
                stopping["serving"] = False  # Ctrl-C interrupts the wait below
                self.mlflow = self.stack.restart(process)
                servers.wait_for_http(f"{self.mlflow_url}/health", self.mlflow, timeout=300, auth=self.auth)
                stopping["serving"] = True
                print(f"judgeloop: MLflow is back at {self.mlflow_url}", flush=True)
                continue
            why = (f"it exited {MLFLOW_RESTARTS + 1} times within {MLFLOW_RESTART_WINDOW / 60:.0f} min"
                   if process is self.mlflow else "judgeloop up needs it")
            print(f"judgeloop: {process.name} exited ({code}); stopping everything ({why}); see {process.log_path}",
                  file=sys.stderr, flush=True)
            stopping["flag"] = True

    # 10. Stop ---------------------------------------------------------------------------------
    def stop(self) -> None:
        self.stopping["flag"] = True  # a Ctrl-C from here on must not interrupt the clean-up
        print("judgeloop: stopping Dagster and MLflow...", flush=True)
        (self.home / running_stack.STATE_FILE).unlink(missing_ok=True)
        self.stack.stop()
        self.stack_lock.release()
        print("judgeloop: stopped.", flush=True)


class _DemoReleases:
    """The demo's stand-in experts: a batch of held-back ratings every ``every`` seconds, pushed to Dagster."""

    def __init__(self, up: _Up, every: float):
        self.up, self.every = up, every
        self.last = time.monotonic()
        self.released_once = False
        self.done = False

    def due(self) -> bool:
        return time.monotonic() - self.last >= self.every

    def release(self) -> None:
        from judgeloop.tracing import demo as demo_core

        up, args = self.up, self.up.args
        self.last = time.monotonic()
        try:
            count = args.batch if self.released_once else max(args.batch, args.first_batch)
            release = demo_core.release_labels(up.settings, up.experiment_id, count, DEMO_LEFT_FOR_REVIEW)
            self.released_once = True
        except Exception as exc:  # a busy store must not end the session: try again next time
            print(f"releasing demo labels failed ({exc}); retrying in {self.every:.0f} s", file=sys.stderr)
            return
        print(f"released {release.written} expert labels ({release.remaining} still held back)", flush=True)
        if release.written:
            from judgeloop_assets.label_push import push_after_writing

            push_after_writing(up.settings, up.experiment_id, say=lambda message: print(message, flush=True))
        if release.remaining == 0:
            # Stop polling MLflow (and printing "released 0") once every rating is out.
            print("all demo expert labels released", flush=True)
            print(demo_core.review_invitation(up.settings, up.experiment_id, DEMO_LEFT_FOR_REVIEW), flush=True)
            self.done = True
