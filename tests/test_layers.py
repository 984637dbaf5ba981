"""The packages stay in layers: the core (``judgeloop/``) below the sensors below the Dagster assets.

Every import statement counts, including those inside functions (a lazy import is still a
dependency: it fails the day the other package is absent or imports back). Read with ``ast``,
never by importing, so a forbidden import is found even on a path no test runs.
"""

import ast
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
