import os
from pathlib import Path

import dagster as dg
import pytest

from judgeloop.stand_in_models.fake_llm import reset_calls

# Synchronous trace export: no 'trace not found' races and no exit-time flush stall.
os.environ.setdefault("MLFLOW_ENABLE_ASYNC_TRACE_LOGGING", "false")
# litellm's price table from its package, never fetched: judgeloop's entry points set this before
# litellm is imported (stack.store.prepare_environment); a test that reaches litellm another way
# (usage.price on its own) would otherwise try GitHub, retrying for seconds without a network.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

REPO = Path(__file__).resolve().parent.parent

FAKE_MODELS = {
    "JUDGELOOP_JUDGE_MODEL": "fake:/judge",
    "JUDGELOOP_REFLECTION_MODEL": "fake:/reflection",
    "JUDGELOOP_EMBEDDING_MODEL": "fake:/embedding",
    "JUDGELOOP_AGENT_MODEL": "fake:/agent",
}


def feedbackqa_root() -> Path:
    """The FeedbackQA sample shipped in the package (what the demo reads on a fresh clone)."""
    from judgeloop.tracing.feedbackqa import bundled_root

    return Path(str(bundled_root()))


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    """A fresh state folder (sqlite MLflow store) and fake models for every role."""
    state = tmp_path / "state"
    for key in list(os.environ):
        if key.startswith("JUDGELOOP_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("JUDGELOOP_HOME", str(state))
    for key, value in FAKE_MODELS.items():
        monkeypatch.setenv(key, value)
    monkeypatch.chdir(tmp_path)
    reset_calls()
    yield state
    try:
        import mlflow

        mlflow.flush_trace_async_logging()
    except Exception:
        pass


@pytest.fixture
def instance():
    with dg.instance_for_test() as inst:
        yield inst


@pytest.fixture
def questions_file(tmp_path) -> Path:
    path = tmp_path / "questions.jsonl"
    path.write_text(
        "\n".join(
            [
                '{"question": "How does the virus spread between people?"}',
                '{"question": "Should I wear a mask when I am sick?"}',
                '{"question": "How long is the incubation period?"}',
                '{"question": "Can pets carry the virus?"}',
            ]
        )
        + "\n"
    )
    return path


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    """One migrated sqlite store with six FeedbackQA traces, for tests to copy: creating MLflow's
    schema takes ~4 s per fresh database, the copy a few milliseconds."""
    from judgeloop.tracing import feedbackqa, production
    from judgeloop.settings import load_settings
    from judgeloop.stack.store import connect

    state = tmp_path_factory.mktemp("template") / "state"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("JUDGELOOP_HOME", str(state))
        experiment_id = connect(load_settings())
        items = feedbackqa.load_items(feedbackqa_root(), "WHO", limit=6)
        trace_ids = list(production.seed_traces(experiment_id, items).values())
    return state, experiment_id, trace_ids


@pytest.fixture
def template_store(home, template):
    """A private copy of ``template`` as this test's store: (settings, experiment id, trace ids)."""
    import shutil

    from judgeloop.settings import load_settings
    from judgeloop.stack.store import connect

    state, experiment_id, trace_ids = template
    shutil.copytree(state, home)
    settings = load_settings()
    assert connect(settings) == experiment_id
    return settings, experiment_id, trace_ids


@pytest.fixture(scope="session")
def postgres_server():
    """URL of a PostgreSQL server: JUDGELOOP_TEST_POSTGRES_URL, else a throwaway local cluster.

    Skipped only where no server binary exists at all, and never in CI (CI=true fails instead).
    """
    from tests import postgres

    given = os.environ.get(postgres.URL_VARIABLE)
    if given:
        yield given
        return
    try:
        postgres.server_bindir()
    except postgres.NoServerBinary as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must run the PostgreSQL tests: {exc}")
        pytest.skip(str(exc))
    with postgres.cluster() as url:
        yield url


@pytest.fixture
def postgres_url(postgres_server) -> str:
    """A fresh, empty database on the test server (``postgresql://`` URL, as users paste it)."""
    from tests import postgres

    return postgres.create_database(postgres_server)
