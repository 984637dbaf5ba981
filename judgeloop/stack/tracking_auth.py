"""What to say when an MLflow tracking server refuses this process (team mode's basic auth).

``judgeloop up --team`` runs MLflow with its basic-auth app. Another shell on the same state folder
finds that server through ``running.json`` but has no credentials of its own: MLflow's client then
raises on the first request with a 401, deep in a traceback. The command line turns that into
one paragraph saying which variables to set.
"""

CREDENTIALS_FILE = "team-credentials.json"


def refusal_status(exc: BaseException) -> int | None:
    """401 or 403 when ``exc`` (or what caused it) is a tracking server refusing the request."""
    from mlflow.exceptions import MlflowException

    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, MlflowException):
            if exc.error_code == "UNAUTHENTICATED":
                return 401
            if exc.error_code == "PERMISSION_DENIED":
                return 403
        exc = exc.__cause__ or exc.__context__
    return None


def explain(status: int, tracking_uri: str, home) -> str:
    """One paragraph: who refused, and how to authenticate."""
    account = (
        "Set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD in this shell to an MLflow account: "
        "a reviewer's own account (JUDGELOOP_REVIEWERS) for labelling, or the admin account, whose password "
        f"`judgeloop up --team` keeps in {home / CREDENTIALS_FILE} (readable by its owner only). "
        "Then run the command again."
    )
    if status == 403:
        return (
            f"The MLflow server at {tracking_uri} accepted the account in MLFLOW_TRACKING_USERNAME but it may not do "
            "this (basic auth with per-experiment permissions, as `judgeloop up --team` runs it). Use the admin "
            "account, or have the admin grant this account EDIT on the experiment. " + account
        )
    return (
        f"The MLflow server at {tracking_uri} requires a login (basic auth, as `judgeloop up --team` runs it) and "
        "refused this command's credentials: none were given, or the user name or password is wrong. " + account
    )
