"""Modules import downward: no private name (`_pick`) is imported from another module, and the imports
of the rca package (parsers and detectors included; inside functions too) form no cycle."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FOLDERS = {"rca": "rca", "parsers": "rca.parsers", "detectors": "rca.detectors"}


def _modules() -> dict[str, ast.Module]:
    out = {}
    for folder, package in FOLDERS.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            rel = path.relative_to(ROOT / folder)
            if folder == "rca" and rel.parts[0] in ("parsers", "detectors"):
                continue  # the links to the top-level folders
            parts = [package, *rel.with_suffix("").parts]
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join(parts)] = ast.parse(path.read_text(encoding="utf-8"))
    return out


def _imported(node: ast.ImportFrom | ast.Import, importer: str) -> list[tuple[str, list[str]]]:
    if isinstance(node, ast.Import):
        return [(alias.name, []) for alias in node.names]
    base = node.module or ""
    if node.level:
        base = ".".join(importer.split(".")[: -node.level] + ([base] if base else []))
    return [(base, [alias.name for alias in node.names])]


def test_no_private_name_crosses_modules():
    offenders = []
    for name, tree in _modules().items():
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("rca"):
                for module, names in _imported(node, name):
                    offenders += [f"{name}: from {module} import {n}" for n in names if n.startswith("_") and not n.startswith("__")]
    assert offenders == []


def test_imports_form_no_cycle():
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for name, tree in modules.items():
        edges = set()
        for node in ast.walk(tree):  # imports inside functions too: a late import is still a dependency
            if isinstance(node, ast.Import | ast.ImportFrom):
                for module, names in _imported(node, name):
                    targets = [f"{module}.{n}" for n in names if f"{module}.{n}" in modules] or [module]
                    edges |= {t for t in targets if t in modules and t != name}
        graph[name] = edges
    # a package's __init__ importing its own submodules (to register them) is not a cycle through it
    cycles = []
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if nxt.startswith(node + "."):
                continue
            if state.get(nxt) == 1:
                cycles.append(" -> ".join([*path[path.index(nxt):], nxt]))
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    assert cycles == []
