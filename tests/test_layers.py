"""The layers point one way: command line and DAG tasks -> collectors and analysis -> models -> settings.

Every import in every module (including those inside functions) is read with ``ast``, so a lazy import
cannot slip past.  The folders import as one namespace (``collectors/`` is ``trustwatch.collectors``).
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FOLDERS = {"trustwatch": "trustwatch", "collectors": "trustwatch.collectors", "models": "trustwatch.models",
           "analysis": "trustwatch.analysis", "sandbox": "trustwatch.sandbox", "alembic": "trustwatch.alembic",
           "dags": "trustwatch.dags"}
COMMAND_LINE = {"trustwatch.cli", "trustwatch.tasks", "trustwatch.local"}
BOTTOM = {"trustwatch.settings", "trustwatch.records"}
#: For each layer (a module-name prefix), what it must never import.
FORBIDDEN = {
    "trustwatch.settings": {"trustwatch.models", "trustwatch.collectors", "trustwatch.analysis",
                            "trustwatch.sandbox", *COMMAND_LINE, "trustwatch.migrate"},
    "trustwatch.records": {"trustwatch.models", "trustwatch.collectors", "trustwatch.analysis",
                           "trustwatch.sandbox", *COMMAND_LINE, "trustwatch.migrate"},
    "trustwatch.models": {"trustwatch.collectors", "trustwatch.analysis", "trustwatch.sandbox", *COMMAND_LINE},
    "trustwatch.migrate": {"trustwatch.collectors", "trustwatch.analysis", "trustwatch.sandbox", *COMMAND_LINE},
    "trustwatch.alembic": {"trustwatch.collectors", "trustwatch.analysis", "trustwatch.sandbox", *COMMAND_LINE},
    "trustwatch.collectors": {"trustwatch.sandbox", *COMMAND_LINE},
    "trustwatch.analysis": {"trustwatch.collectors", "trustwatch.sandbox", *COMMAND_LINE},
    "trustwatch.sandbox": COMMAND_LINE,
}
OLD_TOP_LEVEL = {"collectors", "models", "analysis", "sandbox"}


def _modules() -> list[tuple[str, Path]]:
    found = []
    for folder, package in FOLDERS.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            rel = path.relative_to(ROOT / folder).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            found.append((".".join([package, *parts]), path))
    return found


def _imports(path: Path, module: str) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the module's package
                base = module.split(".")[: -node.level]
                names.append(".".join([*base, node.module] if node.module else base))
            elif node.module:
                names.extend([node.module, *(f"{node.module}.{a.name}" for a in node.names)])
    return names


def _violations() -> list[str]:
    found = []
    for module, path in _modules():
        for name in _imports(path, module):
            if name.split(".")[0] in OLD_TOP_LEVEL:
                found.append(f"{path.relative_to(ROOT)} imports the old top-level name {name}")
            for layer, banned in FORBIDDEN.items():
                if module == layer or module.startswith(layer + "."):
                    if module in BOTTOM and name.startswith("trustwatch.") and name.split(".")[1] in {
                            "settings", "records"}:
                        continue
                    hit = [b for b in banned if name == b or name.startswith(b + ".")]
                    found.extend(f"{path.relative_to(ROOT)} ({layer}) imports {name}" for _ in hit)
    return found


def test_layers_point_one_way() -> None:
    assert _modules(), "no modules found"
    assert _violations() == []


def test_the_check_catches_a_wrong_way_import(tmp_path, monkeypatch) -> None:
    # the check itself must be able to fail: a models module that imports a collector is reported
    fake = tmp_path / "models"
    fake.mkdir()
    (fake / "bad.py").write_text("def f():\n    from trustwatch.collectors.x import XCollector\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    monkeypatch.setitem(FOLDERS, "models", "trustwatch.models")
    for folder in list(FOLDERS):
        if folder != "models":
            monkeypatch.delitem(FOLDERS, folder)
    assert _violations() == ["models/bad.py (trustwatch.models) imports trustwatch.collectors.x",
                             "models/bad.py (trustwatch.models) imports trustwatch.collectors.x.XCollector"]


@pytest.mark.parametrize("name", sorted(OLD_TOP_LEVEL))
def test_old_top_level_names_are_not_importable(name: str) -> None:
    import importlib.util

    saved = list(sys.path)
    try:
        sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT]
        assert importlib.util.find_spec(name) is None
    finally:
        sys.path[:] = saved
