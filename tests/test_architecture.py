"""The package's structure: imports point down the layers, no import cycle, no module over 700 lines.

The graph is read from the source with ``ast`` (imports inside functions count, as they do at run
time). The layers are README.md's "Architecture" table; a new module must be given a layer here.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "hf_spamguard"

#: Layer of each module or subpackage (longest prefix wins). Imports may go to the same layer or lower.
LAYERS: dict[str, int] = {
    "hf_spamguard.verdict": 0,
    "hf_spamguard.taxonomy": 0,
    "hf_spamguard.files": 0,
    "hf_spamguard.atomic": 0,
    "hf_spamguard.hub_io": 0,
    "hf_spamguard.jobs": 0,
    "hf_spamguard.lazy": 0,
    "hf_spamguard.cards": 1,
    "hf_spamguard.policy": 1,
    "hf_spamguard.prompts": 1,
    "hf_spamguard.data": 2,
    "hf_spamguard.baseline": 2,
    "hf_spamguard.decoding": 2,
    "hf_spamguard.modeling": 2,
    "hf_spamguard.scoring": 3,
    "hf_spamguard.reviews": 3,
    "hf_spamguard.vllm_engine": 3,
    "hf_spamguard.pipeline": 4,
    "hf_spamguard.training": 4,
    "hf_spamguard.predict": 4,
    "hf_spamguard.report": 4,
    "hf_spamguard.testing": 4,
    "hf_spamguard.publish": 5,
    "hf_spamguard.demo": 5,
    "hf_spamguard.metrics": 5,
    "hf_spamguard.cli": 6,
    "hf_spamguard.__main__": 6,
    # ``import hf_spamguard`` registers the pipeline (layer 4) and re-exports the verdict.
    "hf_spamguard": 4,
}

MAX_LINES = 700
#: policy.py is copied alone into the metric Space, so it stays one self-contained file.
LONG_MODULES = {"hf_spamguard.policy"}


def _modules() -> dict[str, Path]:
    mods = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        mods[".".join(parts)] = path
    return mods


MODULES = _modules()


def _owner(name: str) -> str:
    """The module of the package that ``name`` (a module or ``module.attribute``) lives in."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name


def _imports(module: str, path: Path) -> set[str]:
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(_owner(a.name) for a in node.names if a.name.startswith("hf_spamguard"))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.startswith("hf_spamguard"):
                for alias in node.names:
                    sub = f"{target}.{alias.name}"
                    found.add(sub if sub in MODULES else _owner(target))
    found.discard(module)
    found.discard("")
    return found


GRAPH = {m: _imports(m, p) for m, p in MODULES.items()}


def _layer(module: str) -> int:
    best = max((k for k in LAYERS if module == k or module.startswith(k + ".")), key=len, default=None)
    if best is None:
        raise AssertionError(f"{module} has no layer: add it to LAYERS in {__file__} and to the README")
    return LAYERS[best]


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_every_module_has_a_layer() -> None:
    for module in MODULES:
        _layer(module)


def test_no_import_cycle() -> None:
    assert _cycles(GRAPH) == []


def test_imports_point_down() -> None:
    upward = sorted(
        f"{m} (layer {_layer(m)}) imports {t} (layer {_layer(t)})"
        for m, targets in GRAPH.items()
        for t in targets
        # a package's __init__ re-exporting its own submodules is not an upward import
        if _layer(t) > _layer(m) and not t.startswith(m + ".")
    )
    assert upward == []


@pytest.mark.parametrize("module", sorted(MODULES))
def test_module_size(module: str) -> None:
    if module in LONG_MODULES:
        return
    n = len(MODULES[module].read_text(encoding="utf-8").splitlines())
    assert n <= MAX_LINES, f"{module} has {n} lines (at most {MAX_LINES}): split it by concept"


def test_the_graph_reader_sees_imports_inside_functions() -> None:
    # A test that cannot fail is a defect: the reader must find a lazy import as an edge.
    assert "hf_spamguard.pipeline" in GRAPH["hf_spamguard"]
    assert _cycles({"a": {"b"}, "b": {"a"}, "c": {"a"}}) == [["a", "b"]]
