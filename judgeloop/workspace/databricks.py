"""A Databricks workspace: review queues where SMEs label, Unity Catalog datasets and prompts.

Where SMEs label: a Databricks review queue (``mlflow.genai.databricks.review_queues``, plain
REST on the workspace, no extra package) holding one review question titled like the judge.
Labeling sessions (``create_labeling_session``) need the proprietary ``databricks-agents``
package and re-log traces under new ids; a queue points at the traces themselves, and its
items carry update and completion times, which is what makes reading labels incrementally
possible without SQL (see ``changed_since``).

Evaluation dataset: a Unity Catalog table, looked up by name (``get_dataset(dataset_id=...)``
and dataset tags do not exist there). MLflow reaches it through ``databricks-agents``: the
``databricks`` extra. Prompts: Unity Catalog names ``catalog.schema.prompt``.
"""

import importlib.util
import json
import re

from judgeloop.settings import FeedbackType, Settings
from judgeloop.workspace import LabelingReport, LabelNameCheck, QueueState, Workspace, WorkspaceNotReadyError

QUEUE_TAG = "judgeloop.review_queue_id"
_UC_PART = re.compile(r"^[A-Za-z0-9_]+$")
# Seconds the auth check may spend reaching the host (the SDK's default retry budget is 5 minutes).
_AUTH_TIMEOUT_SECONDS = 15

EXTRA_MISSING = (
    "Databricks mode needs the optional 'databricks' extra (package databricks-agents, through which "
    "MLflow reads and writes Unity Catalog evaluation datasets): pip install -e '.[databricks]'"
)
CREDENTIALS_HELP = (
    "set DATABRICKS_HOST and DATABRICKS_TOKEN, or DATABRICKS_CONFIG_PROFILE naming a profile in "
    "~/.databrickscfg"
)


def uc_name_problem(value: str | None, parts: int, setting: str, example: str) -> str | None:
    """Why ``value`` is not a Unity Catalog name of ``parts`` parts, or None when it is."""
    if not value:
        return f"{setting} is not set: Databricks mode needs a Unity Catalog name like {example}"
    pieces = value.split(".")
    if len(pieces) != parts or not all(_UC_PART.match(p) for p in pieces):
        kind = "catalog.schema" if parts == 2 else "catalog.schema.name"
        return f"{setting}={value!r} is not a {parts}-part Unity Catalog name ({kind}, e.g. {example})"
    return None


def question_input(settings: Settings):
    from mlflow.genai.databricks.review_queues import InputCategorical, InputNumeric, InputPassFail

    if settings.feedback_type == FeedbackType.LIKERT:
        return InputNumeric(min_value=float(settings.scale_min), max_value=float(settings.scale_max))
    if settings.feedback_type == FeedbackType.PASS_FAIL:
        return InputPassFail(positive_label="Pass", negative_label="Fail")
    return InputCategorical(options=list(settings.categories))


def _all_pages(call, *args, **kwargs) -> list:
    found, token = [], None
    while True:
        page = call(*args, max_results=500, page_token=token, **kwargs)
        found.extend(page)
        token = page.token
        if not token:
            return found


def _item_stamp(item) -> list:
    # Everything about an item that moves when a reviewer acts on it.
    return [item.update_time_ms, item.complete_time_ms, str(item.status), item.completed_by]


def _not_found(exc: Exception) -> bool:
    text = f"{type(exc).__name__} {exc}".lower()
    return any(word in text for word in ("not found", "notfound", "does not exist", "resource_does_not_exist"))


class DatabricksWorkspace(Workspace):
    kind = "databricks"

    # Names -----------------------------------------------------------------------------
    def dataset_table(self) -> str:
        return self.settings.dataset_table or f"{self.settings.uc_schema}.{self.settings.judge_name}_eval"

    def prompt_name(self) -> str:
        name = self.settings.prompt_name
        if len(name.split(".")) == 3:
            return name
        return f"{self.settings.uc_schema}.{name.replace('-', '_')}"

    def queue_name(self) -> str:
        return f"{self.settings.judge_name}-review"

    # Readiness -------------------------------------------------------------------------
    def name_problems(self) -> list[str]:
        problems = []
        schema_problem = uc_name_problem(self.settings.uc_schema, 2, "JUDGELOOP_UC_SCHEMA", "main.judgeloop")
        if schema_problem and not (self.settings.dataset_table and len(self.settings.prompt_name.split(".")) == 3):
            problems.append(schema_problem)
        if self.settings.dataset_table:
            problems.append(uc_name_problem(self.settings.dataset_table, 3, "JUDGELOOP_DATASET_TABLE", "main.judgeloop.eval"))
        if len(self.settings.prompt_name.split(".")) > 1:
            problems.append(uc_name_problem(self.settings.prompt_name, 3, "JUDGELOOP_PROMPT_NAME", "main.judgeloop.agent_prompt"))
        return [p for p in problems if p]

    def check_ready(self) -> None:
        problems = self.name_problems()
        if importlib.util.find_spec("databricks.agents") is None:
            problems.append(EXTRA_MISSING)
        if problems:
            raise WorkspaceNotReadyError("\n".join(problems))
        self.check_credentials()

    def check_credentials(self) -> str:
        """The signed-in user, after the SDK's unified auth found a host and a credential that work."""
        from databricks.sdk import WorkspaceClient
        from databricks.sdk.core import Config

        try:
            config = Config(retry_timeout_seconds=_AUTH_TIMEOUT_SECONDS, http_timeout_seconds=_AUTH_TIMEOUT_SECONDS)
        except ValueError as exc:
            # The SDK's message lists what it found, with secrets masked; never print the config itself.
            raise WorkspaceNotReadyError(
                f"Databricks credentials are missing or incomplete: {CREDENTIALS_HELP} ({str(exc).splitlines()[0]})"
            ) from None
        if not config.host:
            raise WorkspaceNotReadyError(f"No Databricks host is configured: {CREDENTIALS_HELP}")
        try:
            me = WorkspaceClient(config=config).current_user.me()
        except Exception as exc:
            status = getattr(exc, "error_code", None) or type(exc).__name__
            if "unauth" in str(status).lower() or "permission" in str(status).lower() or "401" in str(exc) or "403" in str(exc):
                raise WorkspaceNotReadyError(
                    f"The workspace at {config.host} rejected the credentials (auth type {config.auth_type}): "
                    f"the token is expired or revoked; renew DATABRICKS_TOKEN or the profile's token."
                ) from None
            raise WorkspaceNotReadyError(
                f"The workspace at {config.host} (DATABRICKS_HOST) did not answer: {type(exc).__name__}"
            ) from None
        return me.user_name or ""

    def host(self) -> str:
        from mlflow.utils.databricks_utils import get_databricks_host_creds

        return get_databricks_host_creds("databricks").host.rstrip("/")

    # Where SMEs label ------------------------------------------------------------------
    def _find_queue(self, experiment_id: str):
        from mlflow.genai.databricks import review_queues as rq

        return next(
            (q for q in _all_pages(rq.list_review_queues, experiment_id) if q.display_name == self.queue_name()), None
        )

    def _find_question(self, experiment_id: str):
        from mlflow.genai.databricks import review_queues as rq

        return next(
            (q for q in _all_pages(rq.list_review_questions, experiment_id) if q.title == self.settings.judge_name), None
        )

    def _items(self, experiment_id: str, queue_id: str) -> list:
        from mlflow.genai.databricks import review_queues as rq

        return _all_pages(rq.list_review_queue_items, experiment_id, queue_id)

    def review_url(self, experiment_id: str, queue_id: str) -> str:
        return f"{self.host()}/ml/experiments/{experiment_id}/review-queues/{queue_id}"

    def open_labeling(self, experiment_id: str, trace_ids: list[str], mlflow_ui_url: str) -> LabelingReport:
        from mlflow.genai.databricks import review_queues as rq

        from judgeloop.sme_labels import labeling
        from judgeloop.stack.store import set_experiment_tag

        judge = self.settings.judge_name
        queue = self._find_queue(experiment_id)
        if queue is not None:
            asked = [q.title for q in rq.resolve_effective_review_questions(experiment_id, queue.queue_id)]
            if asked and asked != [judge]:
                raise WorkspaceNotReadyError(
                    f"Review queue {self.queue_name()!r} in experiment {experiment_id} asks {asked}, not one question "
                    f"titled like the judge {judge!r}: MemAlign would ignore those labels. Delete that queue, or set "
                    f"JUDGELOOP_JUDGE_NAME to the name its question carries."
                )
        wanted = question_input(self.settings)
        question = self._find_question(experiment_id)
        if question is None:
            question = rq.create_review_question(
                experiment_id, title=judge, type="FEEDBACK", input=wanted, enable_comment=True,
                instruction=labeling.instruction(self.settings),  # the judge's rubric, as on open-source MLflow
            )
        elif question.input != wanted:
            question = rq.update_review_question(experiment_id, question.question_id, input=wanted)
        if queue is None:
            queue = rq.create_review_queue(experiment_id, self.queue_name(), queue_type="CUSTOM", question_ids=[question.question_id])
        set_experiment_tag(experiment_id, QUEUE_TAG, queue.queue_id)
        members = {m.user for m in _all_pages(rq.list_review_queue_members, experiment_id, queue.queue_id)}
        for user in [u for u in self.settings.reviewers if u not in members]:
            rq.add_review_queue_member(experiment_id, queue.queue_id, user)
            members.add(user)
        present = {item.trace_id for item in self._items(experiment_id, queue.queue_id)}
        missing = [tid for tid in dict.fromkeys(trace_ids) if tid not in present]
        for start in range(0, len(missing), 100):
            rq.add_review_queue_items(experiment_id, queue.queue_id, trace_ids=missing[start : start + 100])
        items = self._items(experiment_id, queue.queue_id)
        return LabelingReport(
            schema_id=question.question_id,
            schema_name=question.title or "",
            queue_id=queue.queue_id,
            queue_name=queue.display_name,
            url=self.review_url(experiment_id, queue.queue_id),
            items_added=len(missing),
            pending=sum(1 for i in items if str(i.status) == "PENDING"),
            complete=sum(1 for i in items if str(i.status) == "COMPLETE"),
            reviewers=sorted(members),
        )

    def review_queue(self, experiment_id: str, mlflow_ui_url: str) -> QueueState | None:
        queue_id = self._queue_id(experiment_id)
        if queue_id is None:
            return None
        items = self._items(experiment_id, queue_id)
        statuses = [str(i.status) for i in items]
        return QueueState(
            name=self.queue_name(), queue_id=queue_id, url=self.review_url(experiment_id, queue_id),
            trace_ids=[i.trace_id for i in items], complete=statuses.count("COMPLETE"), pending=statuses.count("PENDING"),
        )

    def complete_labelled_items(self, experiment_id: str, current: list | None = None, written=()) -> int:
        """Complete the pending items of labelled traces, as the Review App does on submit: that
        moves the items, so the next label read finds these labels without waiting for a full
        reconcile. The workspace records the caller (not the label's reviewer) as ``completed_by``.
        Labels are read from the queue's traces only: a ``written`` trace outside it joins it first."""
        from mlflow.genai.databricks import review_queues as rq

        from judgeloop.sme_labels import labels

        queue_id = self._queue_id(experiment_id)
        if queue_id is None:
            return 0
        items = self._items(experiment_id, queue_id)
        queued = {i.trace_id for i in items}
        joining = [t for t in dict.fromkeys(written) if t not in queued]
        for start in range(0, len(joining), 100):
            rq.add_review_queue_items(experiment_id, queue_id, trace_ids=joining[start : start + 100])
        if joining:
            items = self._items(experiment_id, queue_id)
        pending = [i for i in items if str(i.status) == "PENDING"]
        if not pending:
            return 0
        if current is None:
            current, _ = labels.current_labels(self.settings, experiment_id)
        labelled = {label.trace_id for label in current}
        done = 0
        for item in pending:
            if item.trace_id in labelled:
                rq.set_review_queue_item_status(experiment_id, queue_id, item.item_id, "COMPLETE")
                done += 1
        return done

    def check_label_names(self, experiment_id: str) -> LabelNameCheck:
        """Checked on the labels that arrived, not only on the question just written: what name
        the Review App gives an answer is the workspace's decision, and MemAlign matches on it."""
        from mlflow import MlflowClient

        judge = self.settings.judge_name
        question = self._find_question(experiment_id)
        queue_id = self._queue_id(experiment_id)
        names: dict[str, int] = {}
        completed = [i for i in self._items(experiment_id, queue_id) if str(i.status) == "COMPLETE"] if queue_id else []
        client = MlflowClient()
        for item in completed:
            for a in client.get_trace(item.trace_id).info.assessments or []:
                if a.feedback is not None and a.source.source_type == "HUMAN" and a.valid is not False:
                    names[a.name] = names.get(a.name, 0) + 1
        foreign = sorted(n for n in names if n.strip().lower() != judge.strip().lower())
        passed = question is not None and question.input == question_input(self.settings) and not foreign
        return LabelNameCheck(
            passed=passed,
            metadata={
                "schema_name": question.title if question else "(none)",
                "judge_name": judge,
                "items_complete": len(completed),
                "label_names_seen": ", ".join(f"{n} ({c})" for n, c in sorted(names.items())) or "no labels yet",
                "labels_named_unlike_judge": ", ".join(foreign) or "none",
            },
        )

    # Evaluation dataset ----------------------------------------------------------------
    def dataset(self, experiment_id: str):
        from mlflow.genai import datasets

        name = self.dataset_table()
        try:
            return datasets.get_dataset(name=name)
        except ImportError:
            raise WorkspaceNotReadyError(EXTRA_MISSING) from None
        except Exception as exc:
            if not _not_found(exc):
                raise
        return datasets.create_dataset(name=name, experiment_id=[experiment_id])

    # SME labels ------------------------------------------------------------------------
    def _queue_id(self, experiment_id: str) -> str | None:
        from judgeloop.stack.store import get_experiment_tag

        return get_experiment_tag(experiment_id, QUEUE_TAG)

    def changed_since(self, experiment_id: str, cursor, **_options):
        """Labels on the queue's traces that changed since ``cursor``, without SQL.

        There is no "updated since" filter on assessments, so the queue's items are the index:
        one listing (O(items in the queue), never O(traces in the experiment)), then only the
        traces whose item moved (completed, re-opened, edited) since the cursor are read. Every
        ``label_reconcile_ticks`` ticks all the queue's traces are re-read, which catches labels
        edited after their item was completed (that edit does not move the item).
        """
        from mlflow import MlflowClient

        from judgeloop.sme_labels import labels

        state = json.loads(cursor.state) if cursor.state else {}
        queue_id = self._queue_id(experiment_id)
        if queue_id is None:
            return labels.LabelBatch(cursor=cursor)
        tick = int(state.get("tick", 0)) + 1
        full = state.get("queue") != queue_id or tick % max(1, self.settings.label_reconcile_ticks) == 0
        known_items = {} if state.get("queue") != queue_id else state.get("items", {})
        known_labels = state.get("labels", {})
        items = self._items(experiment_id, queue_id)
        changed = [i for i in items if full or known_items.get(i.item_id) != _item_stamp(i)]
        client = MlflowClient()
        found = []
        for item in changed:
            for a in client.get_trace(item.trace_id).info.assessments or []:
                if a.feedback is None or a.source.source_type != "HUMAN":
                    continue
                if a.name.strip().lower() != self.settings.judge_name.strip().lower():
                    continue
                label = labels.HumanLabel(
                    a.assessment_id, item.trace_id, a.name, a.value, a.rationale, a.source.source_id,
                    a.last_update_time_ms or a.create_time_ms or 0, bool(a.valid if a.valid is not None else True),
                )
                stamp = [label.updated_ms, label.valid]
                if known_labels.get(label.assessment_id) != stamp:
                    known_labels[label.assessment_id] = stamp
                    found.append(label)
        found.sort(key=lambda label: label.key)
        newest = max([cursor.key] + [label.key for label in found])
        next_state = {
            "queue": queue_id,
            "tick": tick,
            "items": {i.item_id: _item_stamp(i) for i in items},
            "labels": known_labels,
        }
        next_cursor = labels.Cursor(newest[0], newest[1], state=json.dumps(next_state, sort_keys=True))
        return labels.LabelBatch(labels=found, cursor=next_cursor, rows_read=len(changed))
