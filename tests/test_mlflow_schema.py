"""Contract tests: what judgeloop relies on past MLflow's public API, checked against the pinned MLflow.

If one fails after an MLflow upgrade, the module named in the test is the one place to update.
"""

import inspect
import logging
import sys
from pathlib import Path

import mlflow
import pytest
import sqlalchemy as sa
from mlflow.entities import AssessmentSource

from judgeloop.sme_labels import labels
from judgeloop.mlflow_internals import label_rows, mlflow_schema
from judgeloop.sme_labels.label_files.traces import known_trace_ids

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
import mlflow_rows  # noqa: E402  (bench/mlflow_rows.py)


@pytest.fixture
def store(template_store):
    return template_store


def _engine(settings):
    return label_rows.engine_for(settings.resolved_tracking_uri)


def test_tables_columns_index_and_revision_of_the_pinned_mlflow(store):
    settings, _, _ = store
    engine = _engine(settings)
    assert mlflow_schema.schema_revision(engine) == mlflow_schema.WRITTEN_FOR_REVISION
    inspector = sa.inspect(engine)
    for table in (mlflow_schema.ASSESSMENTS, mlflow_schema.TRACE_INFO, mlflow_schema.TRACE_TAGS):
        present = {column["name"] for column in inspector.get_columns(table.name)}
        assert {column.name for column in table.columns} <= present, table.name
    for table_name, columns in mlflow_rows.WRITTEN_COLUMNS.items():  # the benchmark's inserts
        present = {column["name"]: column for column in inspector.get_columns(table_name)}
        assert set(columns) <= set(present), table_name
        required = {name for name, column in present.items() if not column["nullable"] and column.get("default") is None}
        assert required <= set(columns), f"{table_name}: the benchmark leaves required columns out"
    index_name, index_columns = mlflow_schema.RELIED_ON_INDEX
    indexes = {index["name"]: tuple(index["column_names"]) for index in inspector.get_indexes("assessments")}
    assert indexes.get(index_name) == index_columns


def test_override_and_delete_change_validity_but_not_the_update_time(store):
    settings, _, (t1, *_) = store
    engine = _engine(settings)
    table = mlflow_schema.ASSESSMENTS

    def row(assessment_id):
        with engine.connect() as conn:
            query = sa.select(table.c.valid, table.c.last_updated_timestamp, table.c.overrides)
            return conn.execute(query.where(table.c.assessment_id == assessment_id)).one()

    original = labels.log_label(t1, "answer_quality", 2, "rater-1")
    before = row(original)
    override = mlflow.override_feedback(
        trace_id=t1, assessment_id=original, value=4, source=AssessmentSource(source_type="HUMAN", source_id="rater-2")
    )
    assert row(original) == (False, before.last_updated_timestamp, None)
    assert row(override.assessment_id).overrides == original
    mlflow.delete_assessment(trace_id=t1, assessment_id=override.assessment_id)
    assert row(original) == (True, before.last_updated_timestamp, None)


def test_another_revision_falls_back_to_the_public_api_with_a_warning(store, monkeypatch, caplog):
    settings, experiment_id, trace_ids = store
    written = [labels.log_label(tid, "answer_quality", 3, "rater-1") for tid in trace_ids[:2]]
    direct = labels.changed_since(settings, experiment_id)
    monkeypatch.setattr(mlflow_schema, "WRITTEN_FOR_REVISION", "0000not-this-one")
    monkeypatch.setattr(mlflow_schema, "_checked", {})
    with caplog.at_level(logging.WARNING, logger=mlflow_schema.__name__):
        through_api = labels.changed_since(settings, experiment_id)
        found = known_trace_ids(settings, experiment_id, {*trace_ids[:3], "tr-not-in-the-store"})
    assert "schema revision" in caplog.text and "0000not-this-one" in caplog.text
    assert [label.assessment_id for label in through_api.labels] == [label.assessment_id for label in direct.labels] == written
    assert found == set(trace_ids[:3])


def test_trace_keys_read_directly_and_through_the_api_agree(store, monkeypatch):
    """A trace's own key (item tag, else client request id) is found the same way either side."""
    from judgeloop.sme_labels.label_files.traces import trace_keys, traces_by_key

    settings, experiment_id, trace_ids = store
    with mlflow.start_span(name="support_agent") as span:
        mlflow.update_current_trace(client_request_id="req-7")
    wanted = {*trace_ids[:2], span.trace_id, "tr-not-in-the-store"}
    keys = {"WHO-0", "WHO-1", "req-7", "nobody"}
    direct = trace_keys(settings, experiment_id, wanted), traces_by_key(settings, experiment_id, keys)
    monkeypatch.setattr(mlflow_schema, "WRITTEN_FOR_REVISION", "0000not-this-one")
    monkeypatch.setattr(mlflow_schema, "_checked", {})
    through_api = trace_keys(settings, experiment_id, wanted), traces_by_key(settings, experiment_id, keys)
    assert direct == through_api
    by_id, by_key = direct
    assert by_id == {trace_ids[0]: "WHO-0", trace_ids[1]: "WHO-1", span.trace_id: "req-7"}
    assert by_key == {"WHO-0": {trace_ids[0]}, "WHO-1": {trace_ids[1]}, "req-7": {span.trace_id}}


def test_prompt_version_template_is_a_property_the_optimizer_can_swap():
    """judgeloop.mlflow_internals.prompt_override.prompt_template replaces PromptVersion.template for one prompt name."""
    from mlflow.entities.model_registry import PromptVersion

    from judgeloop.mlflow_internals.prompt_override import prompt_template

    assert isinstance(inspect.getattr_static(PromptVersion, "template"), property)
    mine = PromptVersion(name="mine", version=1, template="original")
    other = PromptVersion(name="other", version=1, template="kept")
    with prompt_template("mine", "candidate"):
        assert (mine.template, other.template) == ("candidate", "kept")
    assert mine.template == "original"


def test_memalign_private_members_alignment_relies_on():
    """judgeloop.mlflow_internals.memalign_memory.hydrate_memory / guidelines_of set and read these MemAlign internals."""
    from mlflow.genai.judges.optimizers import dspy_utils
    from mlflow.genai.judges.optimizers.memalign import optimizer

    assert callable(optimizer._build_embedder) and callable(dspy_utils.create_dspy_signature)
    assert callable(dspy_utils.trace_to_dspy_example)
    judge_class = optimizer.MemoryAugmentedJudge
    assert callable(judge_class._build_episodic_memory)
    source = inspect.getsource(judge_class)
    for member in ("_embedder", "_base_signature", "_base_judge", "_embedding_model", "_embedding_dim",
                   "_episodic_trace_ids", "_episodic_memory", "_semantic_memory"):
        assert f"self.{member}" in source, member
