"""The package's layout holds: no import cycles, every module importable on its own."""

from __future__ import annotations

import ast
import json
import subprocess
import sys

import pytest

from forgekit.quiet import child_env
from tests.conftest import ROOT

PACKAGE = ROOT / "forgekit"


def _module_name(path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _is_type_checking(node: ast.AST) -> bool:
    test = getattr(node, "test", None)
    return isinstance(node, ast.If) and (
        (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING")
        or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"))


def _statements(tree: ast.Module, deep: bool) -> list[ast.stmt]:
    """Module-level statements, or (``deep``) every import anywhere, functions included,
    except under ``if TYPE_CHECKING:`` (never run)."""
    if not deep:
        return tree.body
    found, todo = [], list(tree.body)
    while todo:
        node = todo.pop()
        if _is_type_checking(node):
            todo.extend(node.orelse)
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.append(node)
        todo.extend(ast.iter_child_nodes(node))
    return found


def _top_level_imports(module: str, deep: bool = False) -> set[str]:
    """forgekit modules imported when ``module`` is imported: module-level statements only
    (imports inside functions and ``if TYPE_CHECKING:`` run later, or never); with ``deep``,
    also those a function imports when it runs."""
    tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
    package = module if MODULES[module].name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in _statements(tree, deep):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1]
                                + ([base] if base else []))
            found.add(base)
            found |= {f"{base}.{alias.name}" for alias in node.names}  # submodules imported
    resolved = set()
    for name in found:
        while name and name not in MODULES:
            name = name.rpartition(".")[0]
        if name.startswith("forgekit") and name != module:
            resolved.add(name)
    # importing a.b.c runs a/__init__ and a/b/__init__ first
    for name in list(resolved):
        parts = name.split(".")
        resolved |= {".".join(parts[:i]) for i in range(1, len(parts)) if ".".join(parts[:i])
                     in MODULES and ".".join(parts[:i]) != module}
    return resolved


@pytest.mark.parametrize("deep", [False, True], ids=["at-import", "at-any-depth"])
def test_no_import_cycles(deep):
    """No cycle when modules import, nor through an import a function makes when it runs:
    a function-level import that closes a cycle is the same tangle, only deferred."""
    graph = {module: _top_level_imports(module, deep) for module in MODULES}
    # a package's __init__ importing its own submodules is how packages work, not a cycle
    for module in graph:
        graph[module] = {m for m in graph[module] if not module.startswith(m + ".")}
    cycles, state = [], {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert not cycles, f"import cycles: {cycles}"
    # and the checker sees real edges (a parse that found nothing would pass vacuously)
    assert "forgekit.formats.kinds" in graph["forgekit.formats.detect"]
    if deep:  # a function-level import (diagnose_artifact imports keras_versions lazily)
        assert "forgekit.keras_io.keras_versions" in graph["forgekit.diagnose.diagnosis"]


def test_every_module_imports_on_its_own():
    """Each module imported first in a clean slate of forgekit modules: an order-dependent
    import (a hidden cycle through a function-level import made at import time) fails here."""
    code = (
        "import importlib, json, sys, traceback\n"
        "failed = {}\n"
        "for name in json.loads(sys.argv[1]):\n"
        "    for loaded in [m for m in sys.modules if m == 'forgekit' or "
        "m.startswith('forgekit.')]:\n"
        "        del sys.modules[loaded]\n"
        "    try:\n"
        "        importlib.import_module(name)\n"
        "    except Exception as exc:\n"
        "        failed[name] = f'{type(exc).__name__}: {exc}'\n"
        "print(json.dumps(failed))")
    modules = sorted(m for m in MODULES if not m.endswith("__main__"))  # those run on import
    done = subprocess.run([sys.executable, "-c", code, json.dumps(modules)], capture_output=True,
                          text=True, cwd=ROOT, timeout=600, env=child_env())
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {}


def test_each_subpackage_says_what_lives_there():
    for name in ("formats", "keras_io", "diagnose", "measure", "training", "course"):
        init = PACKAGE / name / "__init__.py"
        doc = ast.get_docstring(ast.parse(init.read_text(encoding="utf-8")))
        assert doc and len(doc.splitlines()) <= 3, f"{init.parent.name}/__init__.py: say it in two lines"


def test_no_submodule_shadows_a_public_name():
    """Importing ``pkg.doctor`` (a module) would replace ``pkg.doctor`` (a function)."""
    import importlib

    import forgekit

    for package in ("forgekit", *(f"forgekit.{p.parent.name}" for p in PACKAGE.glob("*/__init__.py"))):
        names = (forgekit._LAZY if package == "forgekit"
                 else getattr(importlib.import_module(package), "LAZY_NAMES", {}))
        submodules = {m.rpartition(".")[2] for m in MODULES if m.rpartition(".")[0] == package}
        assert not set(names) & submodules, f"{package}: {set(names) & submodules}"
