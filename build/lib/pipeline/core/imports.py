"""The package's import graph, read from the source (no module is run): every import counts,
also those inside functions (a lazy import is still a dependency).

Two users: tests/test_architecture.py checks the graph's shape, and the Makefile asks for each
stage's sources, the files its entry module imports directly or not (standard library only, so
the system's python3 can answer before the virtualenv exists):

    python3 -m pipeline.core.imports data=pipeline.data.dataset train=pipeline.model.training
    DATA_SRC := pipeline/__init__.py pipeline/core/__init__.py ...
"""

from __future__ import annotations

import ast
import sys
from functools import lru_cache
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1]
ROOT = PACKAGE.parent


def module_name(path: Path) -> str:
    """pipeline/data/features.py -> pipeline.data.features; pipeline/core/__init__.py -> pipeline.core."""
    parts = path.resolve().relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@lru_cache(maxsize=1)
def package_modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def resolve(name: str) -> str | None:
    """The package module that `name` (pipeline.x.y, possibly an attribute of a module) refers to;
    None for the package itself and for anything outside it."""
    modules = package_modules()
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name if name and name != "pipeline" else None


def imported_modules(path: Path) -> set[str]:
    """Every package module that the file imports, anywhere in it."""
    found = set()
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {resolve(alias.name) for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            found |= {resolve(f"{base}.{alias.name}") or resolve(base) for alias in node.names}
    return {m for m in found if m}


def import_graph() -> dict[str, set[str]]:
    return {module: imported_modules(path) - {module} for module, path in package_modules().items()}


def closure(entries: list[str], graph: dict[str, set[str]] | None = None) -> set[str]:
    """The entry modules, every module they import directly or not, and the packages whose
    __init__.py runs on the way (pipeline.data.dataset -> pipeline, pipeline.data, ...)."""
    graph = import_graph() if graph is None else graph
    seen: set[str] = set()
    todo = list(entries)
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        parts = module.split(".")
        todo.extend(graph.get(module, ()))
        todo.extend(".".join(parts[:i]) for i in range(1, len(parts)))
    return seen & set(package_modules())


def stage_sources(entries: list[str]) -> list[str]:
    """The files of `closure(entries)`, relative to the repository, sorted."""
    modules = package_modules()
    return sorted(str(modules[m].relative_to(ROOT)) for m in closure(entries))


def main(argv: list[str]) -> int:
    """STAGE=module[,module...] ... -> one `STAGE_SRC := files` line each, for make."""
    for spec in argv:
        stage, _, entries = spec.partition("=")
        print(f"{stage.upper()}_SRC := {' '.join(stage_sources(entries.split(',')))}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
