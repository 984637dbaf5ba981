"""The packages stay in layers: the core (``judgeloop/``) below the sensors below the Dagster assets.

Every import statement counts, including those inside functions (a lazy import is still a
dependency: it fails the day the other package is absent or imports back). Read with ``ast``,
never by importing, so a forbidden import is found even on a path no test runs.
"""

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CLI = ("judgeloop/commands/", "judgeloop/cli.py")  # the command line drives Dagster; it may import it


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """(line, module) for every import in ``path``; relative imports resolved against its package."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = path.relative_to(ROOT).with_suffix("").parts[:-1]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package[: len(package) - node.level + 1]
                base = ".".join([*parent, base] if base else parent)
            found.append((node.lineno, base))
            # ``from judgeloop import commands`` names a module too.
            found.extend((node.lineno, f"{base}.{alias.name}") for alias in node.names)
    return found


def sources(folder: str) -> list[Path]:
    return sorted((ROOT / folder).rglob("*.py"))


def relative(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def is_under(module: str, *packages: str) -> bool:
    return any(module == p or module.startswith(p + ".") for p in packages)


def violations(folder: str, forbidden, allowed_files=()) -> list[str]:
    found = []
    for path in sources(folder):
        name = relative(path)
        if any(name == a or (a.endswith("/") and name.startswith(a)) for a in allowed_files):
            continue
        found.extend(f"{name}:{line} imports {module}" for line, module in imported_modules(path) if forbidden(module))
    return found


def is_dagster(module: str) -> bool:
    return module == "dagster" or module.startswith(("dagster.", "dagster_"))


def test_the_core_imports_no_dagster_assets_or_sensors_outside_the_cli():
    def forbidden(module):
        return is_dagster(module) or is_under(module, "judgeloop_assets", "sensors")

    assert violations("judgeloop", forbidden, allowed_files=CLI) == []


def test_the_sensors_import_nothing_from_the_assets():
    assert violations("sensors", lambda module: is_under(module, "judgeloop_assets")) == []


def test_the_assets_import_nothing_from_the_cli():
    def forbidden(module):
        return is_under(module, "judgeloop.commands", "judgeloop.cli")

    assert violations("judgeloop_assets", forbidden) == []


@pytest.mark.parametrize("source, module", [
    ("import dagster as dg\n", "dagster"),
    ("def f():\n    from judgeloop_assets.names import X\n", "judgeloop_assets.names"),
    ("from judgeloop import commands\n", "judgeloop.commands"),
    ("from .commands import display\n", "judgeloop.commands"),
])
def test_the_scan_sees_every_kind_of_import(tmp_path, monkeypatch, source, module):
    package = tmp_path / "judgeloop"
    package.mkdir()
    (package / "probe.py").write_text(source)
    monkeypatch.setattr(__import__(__name__, fromlist=["ROOT"]), "ROOT", tmp_path)
    assert any(is_under(found, module) for _, found in imported_modules(package / "probe.py"))


# --- Reaches past MLflow's public API live in one package -------------------------------------

BOUNDARY = "judgeloop/mlflow_internals/"
# Dagster's own schema on PostgreSQL (not MLflow's) is created with one statement here.
DAGSTER_SCHEMA = "judgeloop/stack/database_url.py"
# Reads the label sensor's state from Dagster's sqlite storage (its own contract test: tests/test_sensor_rows.py).
DAGSTER_SENSOR_ROWS = "judgeloop_assets/sensor_rows.py"
# MLflow modules whose use is a contract with its internals, not its API.
PRIVATE_MLFLOW = ("mlflow.store", "mlflow.genai.judges.optimizers.memalign", "mlflow.genai.judges.adapters")
RAW_SQL = re.compile(r"\b(SELECT\s.+\sFROM|INSERT\s+INTO|UPDATE\s+\w+\s+SET|DELETE\s+FROM|PRAGMA|CREATE\s+(TABLE|INDEX|SCHEMA))\b", re.I | re.S)


def past_the_api(path: Path) -> list[str]:
    """What in ``path`` reaches past MLflow's public API: SQL libraries, raw SQL, MLflow's store
    and private modules, private names imported from MLflow, private members set on its objects."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            modules = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            for module in modules:
                if is_under(module, "sqlalchemy", "sqlite3", *PRIVATE_MLFLOW):
                    found.append(f"{node.lineno}: imports {module}")
                if module.startswith("mlflow") and any(part.startswith("_") for part in module.split(".")):
                    found.append(f"{node.lineno}: imports private module {module}")
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("mlflow"):
                found.extend(f"{node.lineno}: imports {node.module}.{a.name}" for a in node.names if a.name.startswith("_"))
            if isinstance(node, ast.ImportFrom) and any(a.name == "AdapterInvocationInput" for a in node.names):
                found.append(f"{node.lineno}: imports AdapterInvocationInput")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and RAW_SQL.search(node.value):
            found.append(f"{node.lineno}: raw SQL {node.value[:40]!r}")
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store) and node.attr.startswith("_") \
                and not node.attr.startswith("__") and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")):
            found.append(f"{node.lineno}: sets private member .{node.attr}")
    return found


def test_sql_and_private_mlflow_members_appear_only_in_the_boundary_package():
    found = []
    for folder in ("judgeloop", "judgeloop_assets", "sensors"):
        for path in sources(folder):
            name = relative(path)
            if name.startswith(BOUNDARY) or name in (DAGSTER_SCHEMA, DAGSTER_SENSOR_ROWS):
                continue
            found.extend(f"{name}:{line}" for line in past_the_api(path))
    assert found == []


@pytest.mark.parametrize("source", [
    "import sqlalchemy as sa\n",
    "def f():\n    from mlflow.store.tracking.dbmodels import models\n",
    "from mlflow.genai.judges.optimizers.memalign.optimizer import _build_embedder\n",
    "from mlflow.genai.judges.adapters.base_adapter import AdapterInvocationInput\n",
    "QUERY = 'SELECT version_num FROM alembic_version'\n",
    "def f(judge):\n    judge._episodic_memory = []\n",
])
def test_the_boundary_scan_sees_every_kind_of_reach(tmp_path, source):
    probe = tmp_path / "probe.py"
    probe.write_text(source)
    assert past_the_api(probe)
