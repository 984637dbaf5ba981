"""``judgeloop up``: the whole loop locally, an MLflow server and ``dagster dev`` (with its daemon)."""

import argparse
import importlib.util
import json
import os
import secrets
import signal
import sys
import time
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
    from judgeloop.model_calls.providers import configuration_report

    settings = load_settings()
    home = settings.resolved_home
    for warning in exposure.warnings(args.host, args.team):  # first, so it is seen even if start-up fails
        print(f"judgeloop up: {warning}", file=sys.stderr, flush=True)
    stack_lock = running_stack.StackLock(home)
    try:
        servers.check_state_folder(home)
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

    stand_ins = {}
    if args.demo and nothing_configured(settings) and not args.llama_server_model:
        # A fresh machine with no provider: the demo still runs end to end, on the offline
        # stand-in models, and says so (banner here, `models` in the assets' metadata).
        stand_ins = stand_in_environment()
        os.environ.update(stand_ins)
        settings = load_settings()
    missing = configuration_report(settings)
    mlflow_url = f"http://{args.host}:{args.mlflow_port}"
    dagster_url = f"http://{args.host}:{args.dagster_port}"
    if settings.database_url and not database_url.is_postgres(settings.database_url):
        print("judgeloop up: JUDGELOOP_DATABASE_URL must be a PostgreSQL URL (Dagster's storage lives there too).", file=sys.stderr)
        return 2
    if settings.database_url and importlib.util.find_spec("dagster_postgres") is None:
        print("judgeloop up: a database URL needs the postgres extra: pip install 'judgeloop[postgres]'", file=sys.stderr)
        return 2
    backend_uri = settings.database_url or (
        settings.tracking_uri if settings.tracking_uri and not settings.tracking_uri.startswith("http") else f"sqlite:///{home / 'mlflow.db'}"
    )
    env = dict(os.environ)
    env.update(
        {
            "JUDGELOOP_HOME": str(home),
            "JUDGELOOP_TRACKING_URI": mlflow_url,
            "JUDGELOOP_BACKEND_STORE_URI": backend_uri,
            "JUDGELOOP_MLFLOW_UI_URL": mlflow_url,
            "DAGSTER_HOME": str(settings.dagster_home),
            "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
        }
    )
    for key, value in library_environment(settings).items():
        env.setdefault(key, value)
    if settings.database_url:  # dagster.yaml reads Dagster's storage URL from the environment
        env[servers.DAGSTER_STORAGE_URL_VARIABLE] = database_url.dagster_storage_url(settings.database_url)
    creds = None
    if args.team:
        if not settings.reviewers:
            print("judgeloop up --team: set JUDGELOOP_REVIEWERS (e.g. alice,bob) first.", file=sys.stderr)
            return 2
        # The folder holds the passwords, MLflow's store and its user database: its owner's only.
        private_files.make_private_folder(home)
        creds = _team_credentials(home, settings.reviewers)
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
    from judgeloop_assets.interrupted_runs import fail_interrupted_runs
    from judgeloop_assets.realign_pool import ensure_realign_pool_at

    interrupted = fail_interrupted_runs(settings.dagster_home)
    ensure_realign_pool_at(settings.dagster_home)
    if interrupted:
        print(f"judgeloop: {len(interrupted)} run(s) interrupted when judgeloop up last stopped, marked failed; "
              "the label sensor retries them", flush=True)

    stack = servers.Stack()
    stopping = {"flag": False, "serving": False, "signal": 0}

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
        print(f"judgeloop: state in {home}", flush=True)
        if stand_ins:
            print(STAND_IN_BANNER, flush=True)
        if args.llama_server_model:
            print(f"judgeloop: starting llama-server with {args.llama_server_model} ...", flush=True)
            llama = local_models.start_llama_server(stack, args.llama_server_model, env, home / "logs")
            print(f"llama-server: {llama['base_url']}; use model URIs openai:/{llama['alias']}", flush=True)
            missing = configuration_report(settings)  # openai:/ URIs now resolve to llama-server
        sqlite_store.use_wal(backend_uri)  # the server's workers and the runs share the file
        mlflow = stack.start(
            "mlflow", servers.mlflow_command(
                args.host, args.mlflow_port, backend_uri, settings.artifacts_destination or home / "mlartifacts", args.team,
                workers=args.mlflow_workers,
            ),
            env, home / "logs",
        )
        auth = (creds["admin"]["username"], creds["admin"]["password"]) if creds else None
        # Several workers on a busy machine took over 2 minutes to answer here.
        servers.wait_for_http(f"{mlflow_url}/health", mlflow, timeout=300, auth=auth)

        os.environ.update({k: env[k] for k in ("JUDGELOOP_TRACKING_URI", "JUDGELOOP_HOME") if k in env})
        for key in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
            if key in env:
                os.environ[key] = env[key]
        from judgeloop.tracing import demo as demo_core
        from judgeloop.stack.store import connect

        settings = load_settings()
        experiment_id = connect(settings)
        if args.demo:
            demo_core.seed(settings, experiment_id)
            env["JUDGELOOP_EXPECTATIONS_PATH"] = str(demo_core.write_expectations(settings))
        if creds:
            _grant_reviewers(mlflow_url, experiment_id, creds)
        review_link = _review_queue_link(settings, experiment_id, mlflow_url)

        command, cwd = servers.dagster_command(args.host, args.dagster_port)
        dagster = stack.start("dagster", command, env, home / "logs", cwd=cwd)
        servers.wait_for_http(f"{dagster_url}/server_info", dagster, timeout=180)
        from judgeloop_assets.dagster_client import DagsterClient
        from judgeloop.run_names import FOUNDATION_JOB

        dagster_client = DagsterClient(dagster_url)
        _wait_for_code_location(dagster_client)
        stopping["serving"] = True  # from here on, Ctrl-C is seen by the loop below

        # Replaced whole (never half-written: other shells refuse a file they cannot read).
        private_files.write_private(
            home / running_stack.STATE_FILE,
            json.dumps({
                "pid": os.getpid(), "tracking_uri": mlflow_url, "dagster_url": dagster_url,
                # A database URL may carry a password: other shells read it from their own settings.
                "backend_store_uri": None if settings.database_url else backend_uri,
            })
        )
        print(f"\nMLflow UI:  {mlflow_url}/#/experiments/{experiment_id}", flush=True)
        if review_link:
            print(f"Experts label here (MLflow review queue): {review_link}", flush=True)
        print(f"Dagster UI: {dagster_url}/asset-groups  (sensor sme_labels_sensor is running)", flush=True)
        print(f"Logs:       {home / 'logs'}", flush=True)
        if creds:
            print("\nTeam mode: each reviewer signs in to MLflow with their own account.")
            print(f"  admin: {creds['admin']['username']} (password in {home / 'team-credentials.json'})")
            for reviewer in creds["reviewers"]:
                print(f"  {reviewer}: {review_link or f'{mlflow_url}/#/experiments/{experiment_id}/review-queue'}")
        if missing:
            print("\nModels are not configured yet; assets that call a model will fail until you set:")
            for line in missing:
                print(f"  - {line}")
        elif not args.no_launch and not stopping["flag"]:
            from judgeloop_assets.dagster_client import DagsterError

            try:
                run_id = dagster_client.launch(FOUNDATION_JOB, {TRIGGER_TAG: "up"})
                print(f"\nLaunched {FOUNDATION_JOB}: {dagster_url}/runs/{run_id}")
            except DagsterError as exc:  # the servers stay up: the job can be launched from the UI
                print(f"\n{exc}", file=sys.stderr)
        print("\nCtrl-C stops everything.", flush=True)

        started = time.monotonic()
        last_release = started
        release_every = DEMO_RELEASE_EVERY if args.release_every is None else args.release_every
        releasing = bool(args.demo and release_every)
        released_once = False
        restarts = servers.RestartBudget(MLFLOW_RESTARTS, MLFLOW_RESTART_WINDOW)
        while not stopping["flag"]:
            for process in list(stack.processes):
                if stopping["flag"] or process.popen.poll() is None:
                    continue
                code = process.popen.returncode
                if process is mlflow and restarts.allow(time.monotonic()):
                    # Dagster keeps running; its runs and sensor ticks fail while MLflow is down
                    # and the sensor retries the labels of a failed run.
                    print(f"judgeloop: MLflow exited ({code}); restarting it (at most {MLFLOW_RESTARTS} restarts per "
                          f"{MLFLOW_RESTART_WINDOW / 60:.0f} min); see {process.log_path}", file=sys.stderr, flush=True)
                    stopping["serving"] = False  # Ctrl-C interrupts the wait below
                    mlflow = stack.restart(process)
                    servers.wait_for_http(f"{mlflow_url}/health", mlflow, timeout=300, auth=auth)
                    stopping["serving"] = True
                    print(f"judgeloop: MLflow is back at {mlflow_url}", flush=True)
                    continue
                why = (f"it exited {MLFLOW_RESTARTS + 1} times within {MLFLOW_RESTART_WINDOW / 60:.0f} min"
                       if process is mlflow else "judgeloop up needs it")
                print(f"judgeloop: {process.name} exited ({code}); stopping everything ({why}); see {process.log_path}",
                      file=sys.stderr, flush=True)
                stopping["flag"] = True
            if releasing and time.monotonic() - last_release >= release_every:
                last_release = time.monotonic()
                try:
                    count = args.batch if released_once else max(args.batch, args.first_batch)
                    release = demo_core.release_labels(settings, experiment_id, count, DEMO_LEFT_FOR_REVIEW)
                    released_once = True
                except Exception as exc:  # a busy store must not end the session: try again next time
                    print(f"releasing demo labels failed ({exc}); retrying in {release_every:.0f} s", file=sys.stderr)
                    continue
                print(f"released {release.written} expert labels ({release.remaining} still held back)", flush=True)
                if release.written:
                    from judgeloop_assets.label_push import push_after_writing

                    push_after_writing(settings, experiment_id, say=lambda message: print(message, flush=True))
                if release.remaining == 0:
                    # Stop polling MLflow (and printing "released 0") once every rating is out.
                    print("all demo expert labels released", flush=True)
                    print(demo_core.review_invitation(settings, experiment_id, DEMO_LEFT_FOR_REVIEW), flush=True)
                    releasing = False
            if args.exit_after and time.monotonic() - started >= args.exit_after:
                break
            time.sleep(0.5)
        # Stopped by Ctrl-C (SIGINT) or SIGTERM: the shell convention 128 + signal (130, 143).
        return 128 + stopping["signal"] if stopping["signal"] else 0
    except (servers.StartupError, local_models.LocalModelError) as exc:
        print(f"judgeloop up: {exc}", file=sys.stderr)
        return 1
    finally:
        stopping["flag"] = True  # a Ctrl-C from here on must not interrupt the clean-up
        print("judgeloop: stopping Dagster and MLflow...", flush=True)
        (home / running_stack.STATE_FILE).unlink(missing_ok=True)
        stack.stop()
        stack_lock.release()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        print("judgeloop: stopped.", flush=True)
