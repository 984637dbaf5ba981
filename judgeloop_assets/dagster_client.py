"""The one client the CLI uses to talk to a running Dagster webserver (its GraphQL API).

Built on ``dagster_graphql.DagsterGraphQLClient``: launches go through its public
``submit_job_execution``; the two reads it has no method for (active runs of a job, whether
the code location has loaded) go through its ``_execute``, the only private name used here,
checked by a contract test against the pinned Dagster (documents validated against its schema).
Lives outside the Dagster-free core: ``judgeloop`` commands import it lazily.
"""

from urllib.parse import urlsplit

from dagster_graphql import DagsterGraphQLClient, DagsterGraphQLClientError

from judgeloop.run_names import CODE_LOCATION, REPOSITORY

ACTIVE_STATUSES = ["QUEUED", "NOT_STARTED", "MANAGED", "STARTING", "STARTED"]

ACTIVE_RUNS_QUERY = """
query JudgeloopActiveRuns($filter: RunsFilter!) {
  runsOrError(filter: $filter, limit: 5) {
    __typename
    ... on Runs { results { runId status } }
    ... on Error { message }
  }
}
"""

CODE_LOCATIONS_QUERY = """
query JudgeloopCodeLocations {
  workspaceOrError {
    __typename
    ... on Workspace { locationEntries { name loadStatus } }
    ... on Error { message }
  }
}
"""

DOCUMENTS = (ACTIVE_RUNS_QUERY, CODE_LOCATIONS_QUERY)


class DagsterError(RuntimeError):
    """Dagster could not be reached or refused the request; the message says which."""


class DagsterClient:
    def __init__(self, url: str, timeout: int = 30):
        self.url = url.rstrip("/")
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise DagsterError(f"{url!r} is not a Dagster webserver URL (expected http://host:port)")
        self._client = DagsterGraphQLClient(
            parts.hostname,
            port_number=parts.port,
            use_https=parts.scheme == "https",
            path_prefix=parts.path.rstrip("/"),
            timeout=timeout,
        )

    def _explain(self, exc: DagsterGraphQLClientError) -> DagsterError:
        import requests
        from gql.transport.exceptions import TransportConnectionFailed, TransportServerError

        causes, cause = [], exc.__cause__
        while cause is not None and len(causes) < 10:
            causes.append(cause)
            cause = cause.__cause__ or cause.__context__
        for cause in causes:
            if isinstance(cause, (TransportConnectionFailed, requests.exceptions.ConnectionError, requests.exceptions.Timeout)):
                return DagsterError(f"cannot reach Dagster at {self.url} ({type(cause).__name__}); is `judgeloop up` running?")
            if isinstance(cause, TransportServerError):
                return DagsterError(f"Dagster at {self.url} answered HTTP {cause.code}: is that the Dagster webserver?")
        if causes:  # the client's own message repeats the whole query: name the cause instead
            return DagsterError(f"Dagster at {self.url}: {type(causes[0]).__name__}: {causes[0]}")
        detail = ": ".join(str(arg) for arg in exc.args) or type(exc).__name__
        if exc.body is not None:
            detail += f" ({exc.body})"
        return DagsterError(f"Dagster at {self.url}: {detail}")

    def _query(self, document: str, variables: dict | None = None) -> dict:
        try:
            return self._client._execute(document, variables)
        except DagsterGraphQLClientError as exc:
            raise self._explain(exc) from None

    def launch(self, job_name: str, tags: dict[str, str]) -> str:
        """Launch ``job_name`` of judgeloop's code location; return the run id."""
        try:
            return self._client.submit_job_execution(
                job_name,
                repository_location_name=CODE_LOCATION,
                repository_name=REPOSITORY,
                tags={key: str(value) for key, value in tags.items()},
            )
        except DagsterGraphQLClientError as exc:
            raise DagsterError(f"launching {job_name} failed: {self._explain(exc).args[0]}") from None

    def active_runs(self, job_name: str) -> list[str]:
        """Ids of runs of ``job_name`` queued or in progress."""
        data = self._query(ACTIVE_RUNS_QUERY, {"filter": {"pipelineName": job_name, "statuses": ACTIVE_STATUSES}})
        result = data.get("runsOrError") or {}
        if result.get("__typename") != "Runs":
            raise DagsterError(f"listing runs of {job_name} failed: {result.get('message', result)}")
        return [run["runId"] for run in result.get("results", [])]

    def code_locations_loaded(self) -> bool:
        """True when every code location of the workspace has loaded."""
        result = self._query(CODE_LOCATIONS_QUERY).get("workspaceOrError") or {}
        entries = result.get("locationEntries") or []
        return bool(entries) and all(entry["loadStatus"] == "LOADED" for entry in entries)
