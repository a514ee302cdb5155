"""The operator, migration and architecture guides stay true to the code.

Checks are structural, never prose: commands and options shown in code spans
exist in the CLI, every module is named, every run path ``RunLayout`` builds and
every legacy path and failure of LEGACY.md has its entry, links resolve, and the
package dependency rule the architecture page states holds.

LEGACY.md (the users' old system) lives outside this repository; its 12 failures
and its on-disk paths are copied below, and compared with the file when it is
found (``INTRADAY_EVENTS_LEGACY_MD``, or ``../shared/docs/LEGACY.md``).
"""

from __future__ import annotations

import ast
import os
import re
from datetime import datetime
from functools import cache
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from orchestrator.run.layout import RunLayout
from tools.cli.app import all_commands, cli

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
OPERATIONS = DOCS / "operations.md"
MIGRATION = DOCS / "migration.md"
ARCHITECTURE = DOCS / "architecture.md"
GUIDES = (OPERATIONS, MIGRATION, ARCHITECTURE)
PACKAGES = ("detector", "orchestrator", "tools")

# LEGACY.md, "How the old system lost and duplicated data", items 1-12.
LEGACY_FAILURES = (
    "Lost checkpoint updates",
    "Checkpoint before data",
    "Non-atomic writes",
    "Stale locks",
    "Shard names from a file count",
    "Run id = today's date",
    "Killing by command-line substring",
    "Coarse supervision",
    "Evidence destroyed",
    "Seeding overwrote",
    "Dedup kept the wrong row",
    "Every worker wrote the same final file",
)
# LEGACY.md, "On-disk layout": the path column.
LEGACY_PATHS = (
    "raw/market_data/bars/1m/symbol=SYM/date=YYYY-MM-DD.parquet",
    "logs/checkpoints/{run_id}_completed.json",
    "logs/heartbeats/{run_id}_heartbeat.json",
    "logs/detect_events/heartbeat_YYYYMMDD.log",
    "logs/detect_events/batches_YYYYMMDD.log",
    "logs/detect_events/detect_events_intraday_YYYYMMDD_HHMMSS.log",
    "processed/events/shards/worker_N/{run_id}_shardNNNN.parquet",
    "processed/events/{run_id}.parquet",
    "worker_N_symbols.txt",
)
FAILURES_HEADING = "## The old system's 12 failures, and what to do now"
ENTRY_PARTS = ("**Old system.**", "**Now.**", "**What to do.**")
KEY_COMMANDS = ("launch", "seed-checkpoint", "dedupe", "merge", "demo")
# Tokens that end a shell command in a code sample.
_STOPS = {"#", "|", "||", "&&", ";", "&", ">", ">>", "<", "2>&1"}
_INVOCATION = re.compile(r"(?:^|(?<=[\s(]))(?:intraday-events|python -m tools)(?=\s|$)(.*)$")
_OPTION = re.compile(r"^--?[A-Za-z][\w-]*$")
_COMMAND = re.compile(r"^[a-z][a-z0-9-]*$")


# -- reading markdown ---------------------------------------------------------------
def _split_fences(text: str) -> tuple[list[str], str]:
    """Fenced code blocks, and the text outside them."""
    blocks: list[str] = []
    outside: list[str] = []
    current: list[str] | None = None
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            if current is None:
                current = []
            else:
                blocks.append("\n".join(current))
                current = None
            continue
        (outside if current is None else current).append(line)
    assert current is None, "unclosed code fence"
    return blocks, "\n".join(outside)


def code_samples(text: str) -> list[str]:
    """Every fenced block and inline code span (an inline span may wrap a line)."""
    blocks, outside = _split_fences(text)
    inline = [span.replace("\n", " ") for span in re.findall(r"`([^`]+)`", outside)]
    return blocks + inline


def headings(text: str) -> list[str]:
    _, outside = _split_fences(text)
    return [line for line in outside.splitlines() if re.match(r"^#{1,6} ", line)]


def slug(heading: str) -> str:
    """GitHub's anchor for a heading line."""
    title = heading.lstrip("#").strip().lower()
    return re.sub(r"[^\w\- ]", "", title).replace(" ", "-")


@cache
def read(path: Path) -> str:
    return path.read_text(encoding="utf-8")


# -- command lines in the docs ------------------------------------------------------
def _value_options(command: click.Command) -> set[str]:
    return {
        opt
        for p in command.params
        if isinstance(p, click.Option) and not p.is_flag
        for opt in p.opts + p.secondary_opts
    }


def invocations(text: str) -> list[tuple[list[str], str | None, list[str], str]]:
    """(global options, command, its options, the line) of every command line shown."""
    found = []
    for sample in code_samples(text):
        for line in sample.replace("\\\n", " ").splitlines():
            match = _INVOCATION.search(line)
            if match is None:
                continue
            tokens = match.group(1).split()
            for i, token in enumerate(tokens):
                if token in _STOPS:
                    tokens = tokens[:i]
                    break
            global_opts: list[str] = []
            i = 0
            while i < len(tokens) and tokens[i].startswith("-"):
                name = tokens[i].split("=")[0]
                global_opts.append(name)
                i += 2 if name in _value_options(cli) and "=" not in tokens[i] else 1
            command = tokens[i] if i < len(tokens) else None
            options = []
            for token in tokens[i + 1 :]:
                name = token.lstrip("[(").split("=")[0].rstrip("]),.;:")
                if _OPTION.match(name):
                    options.append(name)
            found.append((global_opts, command, options, line.strip()))
    return found


@cache
def help_text(command: str | None) -> str:
    args = ["--help"] if command is None else [command, "--help"]
    result = CliRunner().invoke(cli, args, terminal_width=200)
    assert result.exit_code == 0, result.output
    return result.output


def _in_help(option: str, command: str | None) -> bool:
    return re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])", help_text(command)) is not None


def all_markdown() -> list[Path]:
    return [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]


COMMANDS = all_commands()  # each command's module imported (the CLI loads them lazily)


def test_every_registered_command_is_shown_in_the_operations_guide() -> None:
    shown = {command for _, command, _, _ in invocations(read(OPERATIONS))}
    assert len(COMMANDS) >= 11
    assert sorted(set(COMMANDS) - shown) == []


@pytest.mark.parametrize("doc", all_markdown(), ids=lambda p: p.name)
def test_command_lines_in_the_docs_use_real_commands_and_options(doc: Path) -> None:
    wrong = []
    for global_opts, command, options, line in invocations(read(doc)):
        wrong += [f"{line}: global {o}" for o in global_opts if not _in_help(o, None)]
        if command is None or not _COMMAND.match(command):
            continue  # `intraday-events` alone, `... COMMAND ...`, a screen title
        if command not in COMMANDS:
            wrong.append(f"{line}: no command {command!r}")
            continue
        wrong += [f"{line}: {command} has no {o}" for o in options if not _in_help(o, command)]
    assert wrong == []


def test_the_guides_show_the_key_commands_with_options() -> None:
    lines = [inv for doc in GUIDES for inv in invocations(read(doc))]
    for command in KEY_COMMANDS:
        assert any(c == command and opts for _, c, opts, _ in lines), command


@pytest.mark.parametrize("command", KEY_COMMANDS)
def test_every_option_of_the_key_commands_is_in_the_operations_guide(command: str) -> None:
    params = COMMANDS[command].params
    options = [o for p in params if isinstance(p, click.Option) and not p.hidden for o in p.opts]
    long = [o for o in options if o.startswith("--") and o != "--help"]
    text = read(OPERATIONS)
    assert [o for o in long if not re.search(rf"{re.escape(o)}(?![\w-])", text)] == []


# -- operations: the 12 failures and the files of a run -----------------------------
def _failure_section() -> str:
    text = read(OPERATIONS)
    assert FAILURES_HEADING in text.splitlines()
    section = text.split(FAILURES_HEADING, 1)[1]
    return re.split(r"^## ", section, maxsplit=1, flags=re.MULTILINE)[0]


def test_each_legacy_failure_has_its_numbered_entry_in_order() -> None:
    entries = re.findall(r"^### (\d+)\. (.+)$", _failure_section(), flags=re.MULTILINE)
    assert [int(n) for n, _ in entries] == list(range(1, 13))
    assert [t.strip().lower() for _, t in entries] == [t.lower() for t in LEGACY_FAILURES]


def test_each_failure_entry_says_old_now_and_what_to_do() -> None:
    bodies = re.split(r"^### \d+\. .+$", _failure_section(), flags=re.MULTILINE)[1:]
    assert len(bodies) == 12
    for number, body in enumerate(bodies, start=1):
        assert [p for p in ENTRY_PARTS if p not in body] == [], f"entry {number}"


_STRFTIME_PLACEHOLDERS = (
    ("%Y", "YYYY"), ("%m", "MM"), ("%d", "DD"), ("%H", "HH"), ("%M", "MM"), ("%S", "SS"),
)  # fmt: skip


class _Pattern:
    """Formats as a placeholder: ``{day:%Y%m%d}`` gives ``YYYYMMDD``, ``{n:04d}`` ``NNNN``."""

    def __init__(self, text: str = "") -> None:
        self.text = text

    def __format__(self, spec: str) -> str:
        if self.text:
            return self.text
        for code, letters in _STRFTIME_PLACEHOLDERS:
            spec = spec.replace(code, letters)
        return spec

    def __str__(self) -> str:
        return self.text


def run_paths() -> list[str]:
    """Every kind of file a run writes, as RunLayout builds it, with placeholders."""
    layout = RunLayout(Path("."), "{run_id}")
    day = _Pattern()
    k, pid, number, token = _Pattern("K"), _Pattern("PID"), _Pattern("NNNN"), _Pattern("TOKEN")
    worker_dir = layout.shard_dir(k)  # type: ignore[arg-type]
    paths = [
        layout.checkpoint,
        layout.lock,
        layout.run_heartbeat,
        layout.worker_heartbeat(k),  # type: ignore[arg-type]
        layout.heartbeat_log(day),  # type: ignore[arg-type]
        layout.batch_log(day),  # type: ignore[arg-type]
        layout.main_log(day, None, pid),  # type: ignore[arg-type]
        layout.main_log(day, k, pid),  # type: ignore[arg-type]
        layout.launch_lock,
        layout.orchestrator_pid_file,
        layout.worker_pid_file(k),  # type: ignore[arg-type]
        layout.plan,
        layout.worker_symbols_file(k),  # type: ignore[arg-type]
        layout.worker_console_log(k),  # type: ignore[arg-type]
        layout.shard_path(worker_dir, number),  # type: ignore[arg-type]
        layout.shard_path(layout.shard_dir(None), number),  # type: ignore[arg-type]
        layout.temp_shard(worker_dir, k, pid, token),  # type: ignore[arg-type]
        layout.final,
    ]
    return [p.as_posix() for p in paths]


def test_run_paths_look_like_placeholders() -> None:
    paths = run_paths()
    assert "logs/detect_events/heartbeat_YYYYMMDD.log" in paths
    assert "processed/events/shards/worker_K/{run_id}_shardNNNN.parquet" in paths
    assert not any(str(datetime.now().year) in p for p in paths)


def test_operations_guide_lists_every_file_a_run_writes() -> None:
    spans = set(code_samples(read(OPERATIONS)))
    assert [p for p in run_paths() if p not in spans] == []


# -- migration: every legacy path ---------------------------------------------------
def test_migration_guide_maps_every_legacy_path() -> None:
    spans = set(code_samples(read(MIGRATION)))
    assert [p for p in LEGACY_PATHS if p not in spans] == []


def _legacy_md() -> Path | None:
    candidates = [
        os.environ.get("INTRADAY_EVENTS_LEGACY_MD"),
        ROOT.parent / "shared/docs/LEGACY.md",
    ]
    return next((Path(c) for c in candidates if c and Path(c).is_file()), None)


def test_copied_failures_and_paths_match_legacy_md() -> None:
    legacy = _legacy_md()
    if legacy is None:
        pytest.skip("LEGACY.md not found (set INTRADAY_EVENTS_LEGACY_MD)")
    text = legacy.read_text(encoding="utf-8")
    failures = text.split("## How the old system lost and duplicated data", 1)[1]
    items = re.findall(r"^(\d+)\. \*\*(.+?)\*\*", failures, flags=re.MULTILINE)
    assert [(int(n), t.rstrip(".")) for n, t in items] == list(enumerate(LEGACY_FAILURES, start=1))
    layout = text.split("## On-disk layout", 1)[1].split("\n## ", 1)[0]
    rows = [line.split("|") for line in layout.splitlines() if line.startswith("| ")]
    paths = [cells[2].strip().strip("`") for cells in rows[1:]]  # skip the header row
    assert tuple(paths) == LEGACY_PATHS


# -- architecture: modules and the dependency rule ----------------------------------
def module_files() -> list[str]:
    return sorted(
        path.relative_to(ROOT).as_posix()
        for package in PACKAGES
        for path in (ROOT / package).rglob("*.py")
        if path.name not in ("__init__.py", "__main__.py")
    )


def test_architecture_names_every_module() -> None:
    text = read(ARCHITECTURE)
    modules = module_files()
    assert len(modules) > 40
    assert [m for m in modules if f"`{m}`" not in text] == []


@pytest.mark.parametrize("doc", GUIDES, ids=lambda p: p.name)
def test_module_paths_in_the_guides_exist(doc: Path) -> None:
    named = re.findall(rf"\b(?:{'|'.join(PACKAGES)})/[\w/]+\.py\b", read(doc))
    assert sorted({n for n in named if not (ROOT / n).is_file()}) == []


def _imported_packages(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found & set(PACKAGES)


def test_dependencies_go_one_way_tools_orchestrator_detector() -> None:
    allowed = {
        "detector": {"detector"},
        "orchestrator": {"orchestrator", "detector"},
        "tools": set(PACKAGES),
    }
    wrong = [
        f"{path.relative_to(ROOT)} imports {sorted(bad)}"
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
        if (bad := _imported_packages(path) - allowed[package])
    ]
    assert wrong == []


# -- links ---------------------------------------------------------------------------
@pytest.mark.parametrize("doc", GUIDES, ids=lambda p: p.name)
def test_links_of_the_guides_resolve(doc: Path) -> None:
    _, outside = _split_fences(read(doc))
    targets = re.findall(r"\]\(([^)\s]+)\)", outside)
    assert targets
    assert [t for t in targets if not _resolves(doc, t)] == []


def _resolves(doc: Path, target: str) -> bool:
    """A web address, or a file next to ``doc`` and, for markdown, one of its headings."""
    if re.match(r"^[a-z]+://", target):
        return True
    name, _, anchor = target.partition("#")
    path = doc if not name else (doc.parent / name).resolve()
    if not path.is_file():
        return False
    return not anchor or path.suffix != ".md" or anchor in map(slug, headings(read(path)))
