"""The shape docs/architecture.md promises: imports point one way, generic code names no concrete part,
`run` reads top to bottom, and the run settings sit in one node."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import yaml

from conftest import CONF, ROOT

SRC = ROOT / "src" / "overparam"
# Modules that serve every algorithm, model and dataset.
GENERIC = [
    "run.py",
    "entry.py",
    "components.py",
    "module.py",
    "events.py",
    "evaluation.py",
    "rundir.py",
    "validate.py",
    "settings.py",
    "loggers.py",
    "step_size.py",
    "ensemble.py",
    "batched/grouping.py",
    "batched/optim.py",
    "callbacks/reweighting.py",
    "callbacks/resume.py",
    "procedures/__init__.py",
    "data/base.py",
    "weighting/base.py",
]
SHARED = {"overparam.weighting.base", "overparam.data.base", "overparam.models.mitigation"}


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """Every overparam module `path` imports, at the top or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("overparam"):
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("overparam"))
    return found


def test_no_import_cycle_in_the_package():
    modules = {module_name(path): path for path in SRC.rglob("*.py")}
    graph = {
        name: {m for m in imports_of(path) if m in modules and m != name} for name, path in modules.items()
    }
    # A package's __init__ importing its own submodules is how Python packages work, not a cycle.
    graph = {name: {m for m in deps if not m.startswith(f"{name}.")} for name, deps in graph.items()}
    state: dict[str, str] = {}

    def visit(name: str, trail: list[str]) -> None:
        state[name] = "open"
        for dependency in sorted(graph[name]):
            assert state.get(dependency) != "open", " → ".join([*trail, name, dependency])
            if dependency not in state:
                visit(dependency, [*trail, name])
        state[name] = "done"

    for name in sorted(graph):
        if name not in state:
            visit(name, [])


def test_generic_code_names_no_concrete_algorithm_model_or_dataset():
    for relative in GENERIC:
        concrete = {
            name
            for name in imports_of(SRC / relative)
            if name.startswith(("overparam.weighting.", "overparam.models.", "overparam.data."))
            and not any(name == shared or name.startswith(f"{shared}.") for shared in SHARED)
        }
        assert not concrete, f"{relative} imports {sorted(concrete)}"
        text = (SRC / relative).read_text()
        for word in ("jtt", "gdro", "GroupDRO", "JTT", "ERM", "cmnist", "celeba", "waterbirds"):
            assert f'"{word}' not in text and f"'{word}" not in text and f".{word}" not in text, (
                relative,
                word,
            )


def test_run_reads_top_to_bottom_in_at_most_sixty_lines():
    from overparam.run import run

    assert len(inspect.getsource(run).splitlines()) <= 60


def test_train_yaml_has_at_most_ten_settings_besides_its_groups():
    keys = set(yaml.safe_load((CONF / "train.yaml").read_text())) - {"defaults", "hydra"}
    assert len(keys) <= 10, sorted(keys)
