"""The package's import graph: layers that only look down, no cycles, every module importable.

docs/architecture.md describes the layers; this test is what keeps them true. The graph
counts every ``import`` of a bayesfmm module, function-local ones included, and leaves out
only imports under ``if TYPE_CHECKING:`` (never executed).
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "bayesfmm"

# Lowest first: a module may import modules of its own layer or of a layer before it.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("errors", "ops", "iterlog", "progress", "tasks", "formula", "memory"),
    ("families",),
    ("spec",),
    ("frame", "survey", "design"),
    ("names", "constraints"),
    ("params",),
    ("mixture", "hessian", "likelihood"),
    ("criteria", "postestimation", "inference", "summary", "simulate", "datasets", "plotting", "classplots", "margins", "habits", "mvresults", "plotting_mv"),
    ("results", "persist"),
    ("ml",),
    ("bayes",),
    ("model", "stata"),
    ("parallel", "selection", "bootstrap", "mvselect"),
    ("",),  # the package's __init__
)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                skipped.update(id(n) for n in ast.walk(child))
    return skipped


def imports_of(name: str) -> set[str]:
    """The bayesfmm modules ``name`` imports (anywhere in the file, not under TYPE_CHECKING)."""
    path = MODULES[name]
    tree = ast.parse(path.read_text())
    skipped = _type_checking_nodes(tree)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            targets = [f"{module}.{alias.name}" if f"{module}.{alias.name}" in MODULES else module for alias in node.names]
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.startswith("bayesfmm."):
            targets = [node.value]  # a lazily loaded module named in a string (the package's _LAZY table)
        else:
            continue
        found.update(t for t in targets if t in MODULES and t != name)
    return found


GRAPH = {name: imports_of(name) for name in MODULES}


def layer_of(name: str) -> int:
    short = name.removeprefix("bayesfmm").removeprefix(".")
    best = None
    for rank, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if short == prefix or (prefix and short.startswith(prefix + ".")):
                best = rank
    if best is None:
        raise AssertionError(f"{name} is in no layer of tests/test_architecture.py: add it to LAYERS")
    return best


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_cycle_finder_finds_a_planted_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_import_graph_has_no_cycles():
    assert cycles(GRAPH) == []


def test_layers_only_look_down():
    upward = [
        f"{name} -> {target}"
        for name, targets in GRAPH.items()
        for target in targets
        # a package __init__ re-exports its own submodules
        if layer_of(target) > layer_of(name) and not target.startswith(name + ".")
    ]
    assert upward == []


def test_no_function_local_import_of_the_package():
    """Function-local imports are for heavy optional third-party packages only."""
    local = []
    for name, path in MODULES.items():
        tree = ast.parse(path.read_text())
        skipped = _type_checking_nodes(tree)
        for func in ast.walk(tree):
            if not isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(func):
                if id(node) in skipped:
                    continue
                if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").startswith("bayesfmm")):
                    local.append(f"{name}:{node.lineno}")
                elif isinstance(node, ast.Import) and any(a.name.startswith("bayesfmm") for a in node.names):
                    local.append(f"{name}:{node.lineno}")
    assert sorted(set(local)) == []


def _import_fresh(name: str) -> tuple[str, int, str]:
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
    proc = subprocess.run(
        [sys.executable, "-c", f"import {name}"], capture_output=True, text=True, env=env, timeout=300
    )
    return name, proc.returncode, proc.stderr[-2000:]


def test_every_module_imports_alone_in_a_fresh_process():
    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
        outcomes = list(pool.map(_import_fresh, sorted(MODULES)))
    failed = [f"{name}:\n{err}" for name, rc, err in outcomes if rc != 0]
    assert not failed, "\n".join(failed)


@pytest.mark.parametrize("limit", [600])
def test_no_module_over_the_line_limit(limit):
    long = {name: n for name, path in MODULES.items() if (n := len(path.read_text().splitlines())) > limit}
    assert long == {}


FUNCTION_LIMIT = 100


def long_functions(limit: int = FUNCTION_LIMIT) -> dict[str, int]:
    """Functions longer than ``limit`` lines of code (their docstring not counted: a long
    parameter list deserves its documentation), outside the family builders
    (bayesfmm/families/, where a builder holds a family's whole definition)."""
    out = {}
    for name, path in MODULES.items():
        if name.startswith("bayesfmm.families"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                doc = node.body[0]
                if isinstance(doc, ast.Expr) and isinstance(doc.value, ast.Constant) and isinstance(doc.value.value, str):
                    length -= doc.end_lineno - doc.lineno + 1
                if length > limit:
                    out[f"{name}.{node.name}"] = length
    return out


def test_no_function_over_the_line_limit():
    assert long_functions() == {}
