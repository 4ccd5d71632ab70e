"""monitoring/ imports form a DAG: no module needs another that needs it back (lazy imports included)."""

from __future__ import annotations

import ast
from pathlib import Path

import ha_sequencer.monitoring as monitoring

PACKAGE = "ha_sequencer.monitoring"


def _imports(path: Path) -> set[str]:
    """Every monitoring module `path` imports, at the top, inside functions or under TYPE_CHECKING."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            continue
        found.update(n.removeprefix(PACKAGE + ".") for n in names if n.startswith(PACKAGE + "."))
    return found


def test_no_import_cycles_in_monitoring() -> None:
    folder = Path(monitoring.__file__).parent
    modules = {p.stem for p in folder.glob("*.py") if p.stem != "__init__"}
    graph = {m: _imports(folder / f"{m}.py") & modules for m in modules}
    done: set[str] = set()

    def visit(module: str, path: list[str]) -> None:
        if module in path:
            raise AssertionError("import cycle: " + " -> ".join(path[path.index(module) :] + [module]))
        if module in done:
            return
        for dependency in sorted(graph[module]):
            visit(dependency, path + [module])
        done.add(module)

    for module in sorted(modules):
        visit(module, [])
