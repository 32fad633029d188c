"""The code's layering, checked: no import cycles, libraries that import nothing of the runtime,
the API or the CLI, and no object reaching into another's private names."""

from __future__ import annotations

import ast
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(60)

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("dialer", "crm_bridge", "recordings", "compliance_rules", "evidence")
# Pure or IO libraries that the runtime, the API and the CLI build on, never the other way round.
LIBRARIES = ("compliance_rules", "crm_bridge", "recordings", "evidence", "dialer.pacing", "dialer.simulator")


def _modules() -> Iterator[tuple[str, Path]]:
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            yield ".".join(parts[:-1] if parts[-1] == "__init__" else parts), path


def _imports(path: Path) -> set[str]:
    """Every module this file imports, at any depth (function-level imports count too)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name.split(".")[0] in PACKAGES}


def _graph() -> dict[str, set[str]]:
    modules = dict(_modules())
    graph: dict[str, set[str]] = defaultdict(set)
    for name, path in modules.items():
        for target in _imports(path):
            # `from package import module` names a module; `from module import name` the module.
            graph[name].add(target if target in modules else target.rpartition(".")[0] or target)
    return graph


def _within(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == prefix or module.startswith(prefix + ".") for prefix in prefixes)


def test_no_import_cycles() -> None:
    graph = _graph()
    cycles: list[list[str]] = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                cycles.append([*stack[stack.index(target):], target])
            elif target not in state:
                visit(target)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    assert cycles == []


def test_libraries_import_nothing_of_the_runtime_api_or_cli() -> None:
    leaks = sorted(
        (module, target)
        for module, targets in _graph().items()
        if _within(module, LIBRARIES)
        for target in targets
        if target.split(".")[0] in PACKAGES and not _within(target, LIBRARIES)
    )
    assert leaks == []


def _private_names() -> set[str]:
    """The private names our own classes define (`def _x`, `self._x = ...`)."""
    names: set[str] = set()
    for _, path in _modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                names.add(node.name)
            elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
                names.add(node.attr)
    return {name for name in names if name.startswith("_") and not name.startswith("__")}


def _private_reaches(path: Path, private: set[str]) -> Iterator[str]:
    """`other._name` where `other` is not `self` or `cls` and `_name` is one of our private names:
    a reach into another object's privates (the standard library's and other packages' own
    underscored names, such as `argparse._SubParsersAction`, are theirs to judge)."""
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.Attribute) or node.attr not in private:
            continue
        owner = node.value
        if isinstance(owner, ast.Name) and owner.id in {"self", "cls"}:
            continue
        yield f"{path.relative_to(ROOT)}:{node.lineno} {ast.unparse(node)}"


def test_no_object_reaches_into_another_objects_private_names() -> None:
    private = _private_names()
    reaches = [reach for _, path in _modules() for reach in _private_reaches(path, private)]
    reaches += [reach for path in sorted((ROOT / "tests").rglob("*.py")) for reach in _private_reaches(path, private)]
    assert reaches == []
