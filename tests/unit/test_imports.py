"""The package's arrows point one way (house style: "Arrows point down").

Every import of every module of `plugins/batch_cleanup` counts: at the top, inside a function
(tasks import lazily), and under `TYPE_CHECKING` (a type-only import still makes two modules know
each other, so it counts for cycles as well as for direction). The rules:

- no import cycle among the package's modules;
- a LEAF imports no module of the package but other leaves;
- a HOOK (`hooks/`) imports only leaves and other hooks: a domain rule it needs is passed in;
- a PURE module imports nothing under `hooks/`: steps receive hooks as arguments.

`notify` (Airflow's failure callbacks), `dag_args` (what the DAGs hand every task) and `ui` (the
plugin's pages) are the wiring at the edges: they may use hooks and domain code alike, but join no
cycle. Every module must be in one of these groups, so a new module comes with a decision.
"""

from __future__ import annotations

import ast
import graphlib
import itertools
from pathlib import Path

import pytest

PACKAGE = "batch_cleanup"
ROOT = Path(__file__).resolve().parents[2] / "plugins" / PACKAGE


def group(*names: str) -> set[str]:
    return {f"{PACKAGE}.{name}" for name in names}


# `cleanup` is the coordinator's answer contract, which its hook validates; `ports` is what crosses
# between steps and hooks (protocols, values, ThreadGone).
LEAVES = {PACKAGE} | group(
    *("budget", "cleanup", "compat", "config", "labels", "masking", "metrics", "names", "ports"),
    *("rule_defaults", "text"),
)
PURE = group(
    *("backtest", "delivery", "diagnosis", "digest", "events", "messages", "monitoring", "params"),
    *("patterns", "policy", "quality", "rules", "steps"),
)
EDGES = group("dag_args", "notify", "ui")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in sorted(ROOT.rglob("*.py"))}


def is_hook(name: str) -> bool:
    return name == f"{PACKAGE}.hooks" or name.startswith(f"{PACKAGE}.hooks.")


def is_edge(name: str) -> bool:
    return any(name == edge or name.startswith(edge + ".") for edge in EDGES)


def imports_of(name: str) -> dict[str, int]:
    """The package's modules that `name` imports, with the line of the first such import."""
    path = MODULES[name]
    found: dict[str, int] = {}
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            assert not node.level, f"a relative import at {path}:{node.lineno} (the house style has none)"
            base = node.module or ""
            # `from batch_cleanup import steps` imports the submodule `steps`, not the package.
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]
        else:
            continue
        for target in targets:
            if target in MODULES and target != name:
                found.setdefault(target, node.lineno)
    return found


GRAPH = {name: imports_of(name) for name in MODULES}


def edge(source: str, target: str) -> str:
    return f"{source} -> {target} ({MODULES[source].relative_to(ROOT.parent)}:{GRAPH[source][target]})"


def test_every_module_is_in_a_group():
    unplaced = [name for name in MODULES if not (name in LEAVES | PURE or is_hook(name) or is_edge(name))]
    assert not unplaced, f"modules in no group of {__name__}: {unplaced}"
    gone = (LEAVES | PURE) - set(MODULES)
    assert not gone, f"groups name modules that are gone: {gone}"


def find_cycle(graph: dict[str, dict[str, int]]) -> list[str] | None:
    """One import cycle as its modules in order (the first again at the end), or None."""
    try:
        graphlib.TopologicalSorter(graph).prepare()
    except graphlib.CycleError as error:
        return error.args[1][::-1]  # graphlib walks from a module to its importers
    return None


def test_no_import_cycle():
    cycle = find_cycle(GRAPH)
    assert cycle is None, "import cycle: " + ", ".join(edge(a, b) for a, b in itertools.pairwise(cycle))


def test_find_cycle_sees_a_cycle_through_three_modules():
    graph = {"a": {"b": 1}, "b": {"c": 1}, "c": {"a": 1}, "d": {"a": 1}}
    assert find_cycle(graph) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b": 1}, "b": {}}) is None


@pytest.mark.parametrize("name", sorted(LEAVES))
def test_a_leaf_imports_only_leaves(name):
    wrong = [edge(name, target) for target in GRAPH[name] if target not in LEAVES]
    assert not wrong, "a leaf imports a module that is not a leaf: " + "; ".join(wrong)


@pytest.mark.parametrize("name", sorted(n for n in MODULES if is_hook(n)))
def test_a_hook_imports_no_domain_module(name):
    wrong = [edge(name, target) for target in GRAPH[name] if not (target in LEAVES or is_hook(target))]
    assert not wrong, "a hook imports a domain module (pass the rule in instead): " + "; ".join(wrong)


@pytest.mark.parametrize("name", sorted(PURE))
def test_a_pure_module_imports_no_hook(name):
    wrong = [edge(name, target) for target in GRAPH[name] if is_hook(target)]
    assert not wrong, "a pure module imports a hook (take it as an argument instead): " + "; ".join(wrong)
