"""The command line's smaller input checks (issue 15), each with the line a user sees.

``launch --symbols A B``; an empty ``--from-file``; an unknown ``--run-id``; a missing
``--root``; more workers than symbols; bar folders that are not symbols; log lines
on a pipe; a double Ctrl-C. Launches run as real processes, every wait is bounded,
and ``no_stray_processes`` fails a test whose processes outlive it.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import psutil
import pytest
from click.testing import CliRunner

from orchestrator.run.faults import ENV as CRASH_ENV
from orchestrator.run.faults import PAUSE_ENV
from orchestrator.run.layout import RunLayout
from tools.cli import cli
from tools.cli.app import INTERRUPTED_LINE
from tools.demo.data import DemoDataSpec, generate_demo_bars

REPO = Path(__file__).resolve().parents[1]
TIMEOUT_S = 90.0
RUN_ID = "inputs_run"
FAST = """
intraday_events:
  supervision:
    poll_interval_seconds: 0.05
    stop_grace_seconds: 20.0
"""


@pytest.fixture(scope="module")
def bars(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bars")
    generate_demo_bars(DemoDataSpec(out=out, symbols=3, days=3, seed=5))
    return out


@pytest.fixture(scope="module")
def symbols(bars: Path) -> list[str]:
    return sorted(p.name.removeprefix("symbol=") for p in bars.glob("symbol=*"))


def _env(**extra: str) -> dict[str, str]:
    # os.environ carries the no_stray_processes tag, which every child inherits.
    drop = (CRASH_ENV, PAUSE_ENV, "INTRADAY_EVENTS_ROOT", "COLUMNS")
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env.update(extra)
    return env


def _argv(root: Path, args: Sequence[str]) -> list[str]:
    config = root / "fast.yaml"
    config.write_text(FAST)
    return [sys.executable, "-m", "tools", "--root", str(root), "--config", str(config), *args]


def run_cli(root: Path, args: Sequence[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        _argv(root, args), cwd=root, env=_env(), stdin=subprocess.DEVNULL,
        capture_output=True, text=True, timeout=TIMEOUT_S, check=False,
    )  # fmt: skip


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.stdout, result.stderr


def worker_lines(stdout: str) -> list[str]:
    return [line for line in stdout.splitlines() if re.match(r"Worker \d+: ", line)]


# -- launch --symbols A B, more workers than symbols, folders that are not symbols ----------
@pytest.mark.usefixtures("no_stray_processes")
def test_launch_takes_symbols_like_detect_caps_workers_and_lists_bad_folders(
    tmp_path: Path, bars: Path, symbols: list[str]
) -> None:
    for name in ("symbol=abc", "symbol=x y"):
        (bars / name).mkdir(exist_ok=True)
    try:
        args = ["launch", "--bars", str(bars), "--run-id", RUN_ID, "--yes", "--workers", "100000"]
        done = run_cli(tmp_path, [*args, "--symbols", symbols[0], symbols[2]])
    finally:
        for name in ("symbol=abc", "symbol=x y"):
            (bars / name).rmdir()

    assert done.returncode == 0, done.stdout + done.stderr
    assert "Total symbols: 2" in done.stdout.splitlines()
    lines = worker_lines(done.stdout)
    assert [line.split(" symbols")[0] for line in lines] == ["Worker 0: 1", "Worker 1: 1"]
    assert "Workers: 2 (capped from 100000: one per remaining symbol at most)" in done.stdout
    assert (
        f"Folders left out, their names are not symbols: 2 under {bars} (symbol=abc, "
        "symbol=x y); a symbol is 1-16 characters of A-Z 0-9 . - _"
    ) in done.stdout.splitlines()
    cp = RunLayout(tmp_path, RUN_ID).checkpoint.read_text()
    assert f'"{symbols[0]}"' in cp and f'"{symbols[2]}"' in cp and f'"{symbols[1]}"' not in cp
    # Log lines on a pipe are plain and whole: one record, one line.
    logged = done.stderr.splitlines()
    assert logged and all(re.match(r"\d\d:\d\d:\d\d (INFO|WARNING) ", line) for line in logged)


def test_log_records_on_a_pipe_are_never_wrapped(tmp_path: Path) -> None:
    message = "worker 3: given up after 5 restarts " + "x" * 300
    code = (
        "import logging, sys\n"
        "from pathlib import Path\n"
        "from orchestrator.run.logs import setup_logging\n"
        f"setup_logging(Path(sys.argv[1]))\n"
        f"logging.getLogger('orchestrator').warning({message!r})\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "main.log")],
        env=_env(), capture_output=True, text=True, timeout=TIMEOUT_S, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    (line,) = done.stderr.splitlines()
    assert re.fullmatch(r"\d\d:\d\d:\d\d WARNING " + re.escape(message), line)


# -- an empty --from-file ---------------------------------------------------------------
@pytest.mark.parametrize("command", ["launch", "detect"])
def test_empty_from_file_exits_2_with_one_line(tmp_path: Path, command: str) -> None:
    empty = tmp_path / "symbols.txt"
    empty.write_text("\n  \n")

    code, out, err = invoke("--root", str(tmp_path), command, "--from-file", str(empty))

    assert code == 2
    assert out == ""
    assert err.splitlines() == [f"Error: {empty}: holds no symbols (one ticker per line expected)"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["symbols.txt"]  # nothing started


# -- an unknown --run-id ------------------------------------------------------------------
@pytest.mark.parametrize("command", ["status", "merge", "restart"])
def test_unknown_run_id_exits_2_naming_the_run_and_the_root(tmp_path: Path, command: str) -> None:
    # Another run exists: the name given is the mistake.
    other = RunLayout(tmp_path, "other_run").checkpoint
    other.parent.mkdir(parents=True)
    other.write_text('{"run_id": "other_run", "completed_symbols": []}')

    code, out, err = invoke("--root", str(tmp_path), command, "--run-id", "NOPE")

    assert code == 2
    assert out == ""
    assert err.splitlines() == [
        f"Error: no run NOPE under {tmp_path.resolve()} (no checkpoint, shard, final file or "
        "launch files of it); check --run-id and --root"
    ]
    assert not RunLayout(tmp_path, "NOPE").exists()


# -- a missing --root ---------------------------------------------------------------------
@pytest.mark.parametrize(
    "args", [["launch", "--yes"], ["detect", "--symbols", "AAA"], ["status"], ["merge"]]
)
def test_missing_root_exits_2_and_creates_nothing(tmp_path: Path, args: list[str]) -> None:
    missing = tmp_path / "no" / "such" / "root"

    code, out, err = invoke("--root", str(missing), *args)

    assert code == 2
    assert out == ""
    assert err.splitlines() == [
        f"Error: root {missing} does not exist (--root or INTRADAY_EVENTS_ROOT): give the "
        "workspace that holds raw/, logs/ and processed/; nothing was created"
    ]
    assert list(tmp_path.iterdir()) == []


def test_root_from_the_environment_is_checked_too(tmp_path: Path) -> None:
    a_file = tmp_path / "root.txt"
    a_file.write_text("")
    result = CliRunner(env={"INTRADAY_EVENTS_ROOT": str(a_file)}).invoke(cli, ["status"])
    assert result.exit_code == 2
    assert result.stderr.startswith(f"Error: root {a_file} is not a directory")


# -- a double Ctrl-C ----------------------------------------------------------------------
def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _wait(condition, what: str, timeout: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


@pytest.mark.usefixtures("no_stray_processes")
def test_double_ctrl_c_of_launch_exits_130(tmp_path: Path, bars: Path) -> None:
    layout = RunLayout(tmp_path, RUN_ID)
    launch = subprocess.Popen(
        _argv(tmp_path, ["launch", "--bars", str(bars), "--run-id", RUN_ID, "--workers", "2",
                         "--batch-size", "1", "--yes"]),
        cwd=tmp_path, env=_env(**{PAUSE_ENV: "before_detection:3"}), stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    workers: list[int] = []
    try:
        _wait(lambda: len(layout.pid_files()) == 3, "the launcher and its two workers")
        workers = [json.loads(p.read_text())["pid"] for p in layout.launch_dir.glob("worker_*.pid")]
        # Their heartbeats: they are in their loop, with their own signal handlers.
        _wait(lambda: all(layout.worker_heartbeat(k).exists() for k in (0, 1)), "heartbeats")
        launch.send_signal(signal.SIGINT)  # an orderly stop: workers asked to commit and exit
        time.sleep(0.5)  # the launcher is now waiting for them (they sleep 3 s)
        assert launch.poll() is None, "the launcher did not wait for its workers"
        launch.send_signal(signal.SIGINT)  # the impatient second one
        out, err = launch.communicate(timeout=TIMEOUT_S)
    finally:
        if launch.poll() is None:
            launch.kill()
            launch.wait()

    assert launch.returncode == 130, out + err
    assert err.splitlines()[-1] == f"{INTERRUPTED_LINE}"
    assert "Aborted!" not in out + err
    # Workers notice their parent is gone and stop on their own (the fixture checks it).
    _wait(lambda: not any(_alive(pid) for pid in workers), "the workers to exit")
