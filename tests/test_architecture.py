"""The layout shows the architecture, and these tests keep it so.

``detector/`` is the pure computation: no lock, no process, no signal, no file
written. The run engine's sub-packages of ``orchestrator/`` depend on each other
in one order (``run`` ← ``worker`` ← ``backends`` ← ``launch``; ``observe`` reads
only ``run``), and no module imports, however indirectly, one that imports it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PURE_FORBIDDEN = {"filelock", "psutil", "signal", "subprocess", "multiprocessing", "threading"}
# Calls that write, create or remove files: none belongs in the computation.
WRITING_CALLS = {
    "write_text", "write_bytes", "write_parquet", "write_csv", "write_ipc", "write_json",
    "sink_parquet", "sink_csv", "sink_ipc", "write_table", "mkdir", "unlink", "rename",
    "replace", "rmdir", "touch", "makedirs", "remove", "rmtree",
}  # fmt: skip
# orchestrator sub-package -> the sub-packages it may import
ORCHESTRATOR_LAYERS = {
    "run": {"run"},
    "worker": {"worker", "run"},
    "backends": {"backends", "worker", "run"},
    "observe": {"observe", "run"},
    "launch": {"launch", "backends", "observe", "worker", "run"},
}


def modules(package: str) -> dict[str, Path]:
    found = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        found[name.removesuffix(".__init__")] = path
    return found


def _is_module(package: str, name: str) -> bool:
    base = ROOT.joinpath(*package.split("."), name)
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def imports(path: Path) -> set[str]:
    """Every module ``path`` imports (at any depth of the file), as dotted names."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            submodules = {
                f"{node.module}.{a.name}" for a in node.names if _is_module(node.module, a.name)
            }
            # `from pkg import mod` imports the module, not (only) the package's __init__
            names |= submodules or {node.module}
            names |= {f"{node.module}.{alias.name}" for alias in node.names}
    return names


@pytest.mark.parametrize("name,path", sorted(modules("detector").items()))
def test_the_detector_imports_no_lock_process_or_signal(name: str, path: Path) -> None:
    used = {n.split(".")[0] for n in imports(path)}
    assert used & PURE_FORBIDDEN == set(), f"{name} imports {sorted(used & PURE_FORBIDDEN)}"
    assert {n.split(".")[0] for n in imports(path)} & {"orchestrator", "tools"} == set()


@pytest.mark.parametrize("name,path", sorted(modules("detector").items()))
def test_the_detector_writes_no_file(name: str, path: Path) -> None:
    calls = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Call):
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if called == "replace" and not (
                isinstance(func, ast.Attribute) and getattr(func.value, "id", "") == "os"
            ):
                continue  # str.replace, dataclasses.replace: not os.replace
            if called in WRITING_CALLS:
                calls.add(called)
            if called == "open" and any(
                isinstance(a, ast.Constant)
                and isinstance(a.value, str)
                and set(a.value) & set("wax+")
                for a in [*node.args[1:2], *(k.value for k in node.keywords if k.arg == "mode")]
            ):
                calls.add("open for writing")
    assert calls == set(), f"{name} calls {sorted(calls)}"


def test_the_run_engine_sub_packages_depend_in_one_order() -> None:
    wrong = []
    for name, path in modules("orchestrator").items():
        parts = name.split(".")
        if len(parts) < 3:
            continue  # orchestrator/__init__.py
        allowed = ORCHESTRATOR_LAYERS[parts[1]]
        for imported in imports(path):
            target = imported.split(".")
            if target[0] == "orchestrator" and len(target) > 1 and target[1] not in allowed:
                wrong.append(f"{name} -> {imported}")
    assert wrong == []


def test_no_import_cycle_between_modules() -> None:
    graph: dict[str, set[str]] = {}
    known = {**modules("detector"), **modules("orchestrator"), **modules("tools")}
    for name, path in known.items():
        graph[name] = {n for n in imports(path) if n in known and n != name}
    cycles = []
    state: dict[str, int] = {}  # 1: on the path, 2: done

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append(" -> ".join([*path[path.index(nxt) :], nxt]))
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert cycles == []
