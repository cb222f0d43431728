"""The shape of the house, kept true: the package's own imports follow docs/ARCHITECTURE.md.

Every ``import`` of a soundscape module anywhere in the package (inside functions too) is read
with :mod:`ast`; nothing is imported or run. The rooms and what each may import are the table in
docs/ARCHITECTURE.md; change both together.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "soundscape"

# room -> the rooms it may import. A room is a top-level module or folder of the package;
# "soundscape" is the package itself (its __version__), which every room may read.
ROOMS: dict[str, set[str]] = {
    "errors": set(),
    "atomic": set(),
    "canonical": set(),
    "config": {"errors"},
    "production": {"errors"},
    "spec": {"errors", "production"},
    "render": {"spec"},
    "facts": {"errors"},
    "extras": {"errors"},
    "samples": {"config", "errors", "render", "spec"},
    "audio": {"errors", "render", "spec"},
    "engines": {"atomic", "config", "errors", "render", "samples", "spec"},
    "rights": {"atomic", "audio", "canonical", "config", "errors", "facts"},
    "models": {"config", "engines", "errors", "rights"},
    "watermark": {"audio", "errors"},
    "corpus": {"atomic", "audio", "config", "engines", "errors", "rights", "spec"},
    "delivery": {"atomic", "audio", "errors", "facts", "production", "render", "rights", "spec",
                 "watermark"},
    "journal": {"atomic", "audio", "delivery", "errors", "facts", "rights"},
    "pipeline": {"audio", "config", "delivery", "engines", "errors", "journal", "models",
                 "rights", "spec", "watermark"},
    "batch": {"atomic", "audio", "canonical", "config", "delivery", "engines", "errors", "extras", "journal",
              "models", "pipeline", "production", "rights", "spec"},
    "reports": {"atomic", "audio", "config", "errors", "production", "rights"},
    "cli": {"atomic", "audio", "batch", "config", "corpus", "engines", "errors", "extras", "journal",
            "models", "pipeline", "reports", "rights", "watermark"},
    "demo": {"batch", "cli", "config", "pipeline", "spec"},
    "__main__": {"cli"},
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _resolve(name: str) -> str | None:
    """The package module ``name`` names, or the nearest package above it that exists."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _imports(module: str) -> list[tuple[str, str | None, int]]:
    """``(imported module, name taken from it or None, line)`` for every soundscape import."""
    found = []
    for node in ast.walk(ast.parse(MODULES[module].read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module and (
                node.module == "soundscape" or node.module.startswith("soundscape.")):
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                if submodule in MODULES:
                    found.append((submodule, None, node.lineno))
                else:
                    found.append((_resolve(node.module), alias.name, node.lineno))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == "soundscape" or alias.name.startswith("soundscape."):
                    found.append((_resolve(alias.name), None, node.lineno))
    return found


def _room(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "soundscape"


EDGES = {m: {target for target, _, _ in _imports(m) if target and target != m} for m in MODULES}


def test_every_room_is_in_the_table():
    assert {_room(m) for m in MODULES} - {"soundscape"} == set(ROOMS)


def test_no_import_cycles():
    # Tarjan's strongly connected components over the module graph.
    index, low, on_stack, stack, cycles = {}, {}, set(), [], []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in EDGES[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for module in MODULES:
        if module not in index:
            visit(module)
    assert cycles == []


def test_each_room_imports_only_what_the_table_allows():
    wrong = sorted(f"{m} imports {t}" for m, targets in EDGES.items() for t in targets
                   if _room(t) not in ROOMS[_room(m)] | {_room(m), "soundscape"})
    assert wrong == []


@pytest.mark.parametrize("room, never", [
    ("engines", "rights"), ("audio", "engines"), ("reports", "batch"), ("rights", "delivery"),
    ("rights", "engines"), ("engines", "models"), ("render", "engines")])
def test_arrows_that_must_never_be(room, never):
    assert not [f"{m} imports {t}" for m, targets in EDGES.items() for t in targets
                if _room(m) == room and _room(t) == never]


def test_no_module_takes_another_modules_private_names():
    taken = []
    for module in MODULES:
        tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
        aliases = {}
        for target, name, line in _imports(module):
            if name and name.startswith("_") and not name.startswith("__") and target != module:
                taken.append(f"{module}:{line} takes {target}.{name}")
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("soundscape"):
                for alias in node.names:
                    if f"{node.module}.{alias.name}" in MODULES:
                        aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.startswith("soundscape") and alias.asname:
                        aliases[alias.asname] = alias.name
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                    and node.value.id in aliases and node.attr.startswith("_")
                    and not node.attr.startswith("__")):
                taken.append(f"{module}:{node.lineno} uses {aliases[node.value.id]}.{node.attr}")
    assert taken == []


def test_the_engine_registry_is_the_only_switch():
    # The pipeline, the batch runner and the command line name no engine: they ask the registry.
    named = []
    for module in MODULES:
        if _room(module) not in ("pipeline", "batch", "cli", "delivery", "journal"):
            continue
        for node in ast.walk(ast.parse(MODULES[module].read_text(encoding="utf-8"))):
            if isinstance(node, ast.Compare) and any(
                    isinstance(c, ast.Constant) and c.value in ("composer", "musicgen")
                    for c in [node.left, *node.comparators]):
                named.append(f"{module}:{node.lineno}")
    assert named == []
