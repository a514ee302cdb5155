"""The live dashboard on real terminals: tmux panes and pseudo-terminals, real processes.

``launch`` draws the inline view when its stdout is a terminal (``q`` closes the view,
the run goes on); ``dashboard`` watches a run from its files (``q`` or Ctrl-C quit the
view, never the run) and prints one frame when stdout is not a terminal.

The tmux tests run each pane on a private tmux server (``tmux -L <unique name>``, no
user config) that is killed at the end of the test, so the user's tmux is never
touched. Workers are slowed with the pause hook so that a run lasts long enough to be
watched. Every wait polls against a deadline; the ``no_stray_processes`` fixture fails
a test if any process it started (the tmux server included) outlives it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import pty
import re
import select
import shlex
import shutil
import signal
import struct
import subprocess
import sys
import termios
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import psutil
import pytest

from orchestrator.run.faults import ENV as CRASH_ENV
from orchestrator.run.faults import PAUSE_ENV
from orchestrator.run.layout import RunLayout
from tools.demo.data import DemoDataSpec, generate_demo_bars

pytestmark = pytest.mark.usefixtures("no_stray_processes")

RUN_ID = "dash_run"
WIDTH, HEIGHT = 120, 45
STEP_S = 0.1
RUN_TIMEOUT_S = 30.0
SUPERVISION = """
intraday_events:
  supervision:
    backoff_initial_seconds: 0.1
    backoff_max_seconds: 0.4
    poll_interval_seconds: 0.1
    progress_interval_seconds: 0.5
"""
# CSI sequences (colours, cursor moves), OSC sequences (titles, links), two-byte escapes.
ANSI = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)|[@-Z\\-_])")
PANEL_TITLE = "intraday-events ·"
CLOSED = "Dashboard closed; the run goes on"
TMUX_CONF = "set -g remain-on-exit on\nset -g history-limit 10000\n"

needs_tmux = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")


# -- data and commands ----------------------------------------------------------------
@pytest.fixture(scope="module")
def bars(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """12 demo symbols x 30 days: a two-worker run of it takes a few seconds."""
    out = tmp_path_factory.mktemp("bars")
    generate_demo_bars(DemoDataSpec(out=out, symbols=12, days=30, seed=5))
    return out


def config(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    path = root / "supervision.yaml"
    path.write_text(SUPERVISION)
    return path


def cli_argv(root: Path, args: Sequence[str]) -> list[str]:
    """``intraday-events --root ROOT [--config ROOT/supervision.yaml] ARGS``."""
    argv = [sys.executable, "-m", "tools", "--root", str(root)]
    if (root / "supervision.yaml").exists():
        argv += ["--config", str(root / "supervision.yaml")]
    return [*argv, *args]


def launch_args(bars: Path, *extra: str, workers: int = 2) -> list[str]:
    return [
        "launch", "--bars", str(bars), "--run-id", RUN_ID, "--workers", str(workers),
        "--batch-size", "2", "--yes", *extra,
    ]  # fmt: skip


def child_env(**extra: str) -> dict[str, str]:
    """Our environment (the test tag included) without faults, terminal sizes or $TMUX."""
    dropped = (CRASH_ENV, PAUSE_ENV, "COLUMNS", "LINES", "TMUX", "TMUX_PANE")
    env = {k: v for k, v in os.environ.items() if k not in dropped}
    env["TERM"] = "xterm-256color"
    env.update(extra)
    return env


def paused(seconds: float) -> str:
    """A shell word that sets the pause hook for the command after it."""
    return f"{PAUSE_ENV}=before_detection:{seconds}"


def final_file(root: Path) -> Path:
    return root / "processed" / "events" / f"{RUN_ID}.parquet"


def plain(text: str) -> str:
    """Terminal output as text: escape sequences and carriage returns removed."""
    return ANSI.sub("", text).replace("\r", "")


def wait_for(
    condition: Callable[[], bool], what: str, timeout: float, detail: Callable[[], str]
) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}\n{detail()}")
        time.sleep(STEP_S)


def worker_row(screen: str, worker: int, status: str = r"\S+") -> bool:
    """A ``wK  PID  STATUS ...`` row of the workers table is on the screen."""
    return re.search(rf"^\s*w{worker}\s+\d+\s+{status}\b", screen, re.MULTILINE) is not None


def read_text(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def canonical_with_echo(stty_all: str) -> bool:
    """``stty -a`` says ``icanon`` and ``echo`` (not ``-icanon`` / ``-echo``)."""
    return all(re.search(rf"(?<![-\w]){flag}(?!\w)", stty_all) for flag in ("icanon", "echo"))


# -- tmux -----------------------------------------------------------------------------
class Tmux:
    """One pane on a private tmux server; every screen it captures is kept in a file."""

    def __init__(self, tmp_path: Path) -> None:
        self.socket = f"ie-test-{uuid.uuid4().hex[:12]}"
        self.conf = tmp_path / "tmux.conf"
        self.conf.write_text(TMUX_CONF)
        self.screen_file = tmp_path / "screen.txt"
        self.last = ""
        self.socket_path: Path | None = None

    def tmux(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["tmux", "-L", self.socket, "-f", str(self.conf), *args],
            env=child_env(),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=10,
            check=check,
        )

    def start(self, script: Path) -> None:
        """Run ``sh SCRIPT`` in a WIDTH x HEIGHT pane; the pane stays after it ends."""
        self.tmux(
            "new-session", "-d", "-s", "main", "-x", str(WIDTH), "-y", str(HEIGHT),
            "-c", str(script.parent), f"/bin/sh {shlex.quote(str(script))}",
        )  # fmt: skip
        found = self.tmux("display-message", "-p", "#{socket_path}", check=False).stdout.strip()
        self.socket_path = Path(found) if found else None

    def screen(self) -> str:
        """The pane's whole text (history included), wrapped lines joined."""
        done = self.tmux("capture-pane", "-p", "-J", "-S", "-", "-t", "main", check=False)
        if done.returncode == 0:
            self.last = done.stdout
            self.screen_file.write_text(self.last)
        return self.last

    def send(self, *keys: str) -> None:
        self.tmux("send-keys", "-t", "main", *keys)

    def kill(self) -> None:
        """Stop the server and its panes; remove its socket, which tmux leaves behind."""
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            self.tmux("kill-server", check=False)
        if self.socket_path is not None and self.socket_path.name == self.socket:
            self.socket_path.unlink(missing_ok=True)

    def shown(self) -> str:
        return f"last screen (also in {self.screen_file}):\n{self.last}"


@contextlib.contextmanager
def tmux_pane(tmp_path: Path, lines: Sequence[str]) -> Iterator[Tmux]:
    """A pane running a shell script of ``lines``; its tmux server is killed at the end."""
    script = tmp_path / "pane.sh"
    script.write_text("\n".join(lines) + "\n")
    pane = Tmux(tmp_path)
    try:
        pane.start(script)
        yield pane
    finally:
        pane.kill()


def after(screen: str, marker: str) -> str:
    """The screen text after the last ``marker`` on it ("" if none)."""
    _, found, tail = screen.rpartition(marker)
    return tail if found else ""


def launch_in_pane(tmp_path: Path, bars: Path, pause_s: float) -> tuple[Path, list[str]]:
    """The pane script of a slowed ``launch`` with its dashboard; status and stty to files."""
    root = tmp_path / "root"
    config(root)
    command = shlex.join(cli_argv(root, launch_args(bars)))
    return root, [
        "stty -g > stty_before",
        f"env {paused(pause_s)} {command}",
        "rc=$?",
        "stty -g > stty_after",
        "echo $rc > status",
        'echo "LAUNCH EXITED $rc"',
    ]


# -- tmux: the inline view of launch ----------------------------------------------------
@needs_tmux
def test_launch_in_a_terminal_shows_both_workers_running_then_the_finished_run(
    tmp_path: Path, bars: Path
) -> None:
    root, lines = launch_in_pane(tmp_path, bars, pause_s=0.4)
    status = tmp_path / "status"
    seen_workers = seen_running = False
    with tmux_pane(tmp_path, lines) as pane:
        deadline = time.monotonic() + RUN_TIMEOUT_S
        while read_text(status) is None:
            if time.monotonic() > deadline:
                pytest.fail(f"the launch did not end in {RUN_TIMEOUT_S:.0f} s\n{pane.shown()}")
            screen = pane.screen()
            if read_text(status) is None:  # a screen of the run in progress
                seen_workers |= worker_row(screen, 0) and worker_row(screen, 1)
                seen_running |= "state running" in screen and worker_row(screen, 0, "running")
            time.sleep(STEP_S)
        wait_for(lambda: "LAUNCH EXITED" in pane.screen(), "the pane's last line", 5, pane.shown)
        screen = pane.screen()

    assert seen_workers, f"rows w0 and w1 never shown during the run\n{pane.shown()}"
    assert seen_running, f"no running state shown during the run\n{pane.shown()}"
    assert PANEL_TITLE in screen, pane.shown()
    assert "100.0%" in screen, pane.shown()
    assert "DETECTION COMPLETE" in screen, pane.shown()
    assert read_text(status) == "0", pane.shown()
    assert final_file(root).is_file()
    assert read_text(tmp_path / "stty_after") == read_text(tmp_path / "stty_before"), (
        "the terminal's settings were not restored after the launch"
    )


@needs_tmux
def test_q_closes_the_inline_view_and_the_run_goes_on_with_progress_lines(
    tmp_path: Path, bars: Path
) -> None:
    root, lines = launch_in_pane(tmp_path, bars, pause_s=0.6)
    status = tmp_path / "status"
    with tmux_pane(tmp_path, lines) as pane:
        wait_for(
            lambda: worker_row(pane.screen(), 0, "running") and worker_row(pane.last, 1),
            "both workers in the view",
            RUN_TIMEOUT_S,
            pane.shown,
        )
        assert read_text(status) is None, f"the run ended before q could be pressed\n{pane.shown()}"
        pane.send("q")
        wait_for(lambda: CLOSED in pane.screen(), "the view to close", 10, pane.shown)
        closed_while_running = read_text(status) is None
        wait_for(
            lambda: read_text(status) is not None, "the launch to end", RUN_TIMEOUT_S, pane.shown
        )
        wait_for(lambda: "LAUNCH EXITED" in pane.screen(), "the pane's last line", 5, pane.shown)
        screen = pane.screen()

    assert closed_while_running, pane.shown()
    rest = after(screen, CLOSED)
    assert re.search(r"^progress \d+/12 symbols", rest, re.MULTILINE), (
        f"no progress line after the view closed\n{pane.shown()}"
    )
    assert PANEL_TITLE not in rest, f"the view was drawn again after q\n{pane.shown()}"
    assert "DETECTION COMPLETE" in rest, pane.shown()
    assert read_text(status) == "0", pane.shown()
    assert final_file(root).is_file()
    assert read_text(tmp_path / "stty_after") == read_text(tmp_path / "stty_before"), (
        "the terminal's settings were not restored after q and the end of the run"
    )


# -- tmux: the dashboard command on a run launched elsewhere ----------------------------
@needs_tmux
def test_dashboard_quits_on_q_and_on_ctrl_c_and_the_run_goes_on(tmp_path: Path, bars: Path) -> None:
    root = tmp_path / "root"
    config(root)
    layout = RunLayout(root, RUN_ID)
    log = tmp_path / "launch.out"
    with log.open("w") as out:
        launch = subprocess.Popen(
            cli_argv(root, launch_args(bars, "--no-dashboard")),
            cwd=root,
            env=child_env(**{PAUSE_ENV: "before_detection:1.0"}),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    dashboard = shlex.join(cli_argv(root, ["dashboard", "--refresh", "0.2"]))
    lines = [
        "trap : INT",  # the shell survives Ctrl-C; the dashboard gets the default SIGINT
        "stty -g > stty_before",
        "echo DASHBOARD-ONE",
        dashboard,
        "echo $? > rc1",
        "stty -g > stty_after1",
        "stty -a > stty_all1",
        "echo DASHBOARD-TWO",
        f"{dashboard} --run-id {RUN_ID}",
        "echo $? > rc2",
        "stty -g > stty_after2",
        "stty -a > stty_all2",
        "echo PANE-DONE",
    ]

    def showing_workers(pane: Tmux, marker: str) -> bool:
        shown = after(pane.screen(), marker)
        return worker_row(shown, 0) and worker_row(shown, 1) and "quits the view" in shown

    try:
        wait_for(
            lambda: len(list(layout.launch_dir.glob("worker_*.pid"))) == 2,
            "the launch's workers",
            RUN_TIMEOUT_S,
            lambda: log.read_text(),
        )
        with tmux_pane(tmp_path, lines) as pane:
            wait_for(
                lambda: showing_workers(pane, "DASHBOARD-ONE"), "the first view", 15, pane.shown
            )
            assert "state running" in after(pane.last, "DASHBOARD-ONE"), pane.shown()
            pane.send("q")
            wait_for(lambda: read_text(tmp_path / "rc1") is not None, "q to quit", 10, pane.shown)
            running_after_q = launch.poll() is None

            wait_for(
                lambda: showing_workers(pane, "DASHBOARD-TWO"), "the second view", 15, pane.shown
            )
            pane.send("C-c")
            wait_for(
                lambda: read_text(tmp_path / "rc2") is not None, "Ctrl-C to quit", 10, pane.shown
            )
            running_after_ctrl_c = launch.poll() is None
            wait_for(lambda: "PANE-DONE" in pane.screen(), "the pane's last line", 5, pane.shown)
        returncode = launch.wait(timeout=RUN_TIMEOUT_S)
    finally:
        if launch.poll() is None:
            launch.kill()
            launch.wait()

    assert read_text(tmp_path / "rc1") == "0", pane.shown()
    assert read_text(tmp_path / "rc2") == "0", pane.shown()
    assert running_after_q, "the launch ended when the first dashboard quit"
    assert running_after_ctrl_c, "the launch ended when the second dashboard got Ctrl-C"
    assert "Traceback" not in pane.last, pane.shown()
    before = read_text(tmp_path / "stty_before")
    assert read_text(tmp_path / "stty_after1") == before, "terminal not restored after q"
    assert read_text(tmp_path / "stty_after2") == before, "terminal not restored after Ctrl-C"
    for name in ("stty_all1", "stty_all2"):
        assert canonical_with_echo(read_text(tmp_path / name) or ""), read_text(tmp_path / name)
    output = log.read_text()
    assert returncode == 0, output
    assert "DETECTION COMPLETE" in output
    assert final_file(root).is_file()


@needs_tmux
def test_launch_started_in_the_background_of_a_job_control_shell_is_not_stopped(
    tmp_path: Path, bars: Path
) -> None:
    """``launch --yes &`` in an interactive shell: stdin and stdout are the terminal, but
    the launch is not in its foreground process group. Changing the terminal's modes
    from there stops the process (SIGTTOU), and the run would wait for ``fg``."""
    root = tmp_path / "root"
    config(root)
    command = shlex.join(cli_argv(root, launch_args(bars)))
    lines = [
        "set -m",  # job control, as in an interactive shell: `&` keeps the terminal as stdin
        f"env {paused(0.3)} {command} &",
        "echo $! > launch.pid",
        "wait $!",
        "echo $? > status",
        "echo PANE-DONE",
    ]
    status = tmp_path / "status"
    pid: int | None = None
    try:
        with tmux_pane(tmp_path, lines) as pane:
            wait_for(lambda: read_text(tmp_path / "launch.pid") is not None, "$!", 10, pane.shown)
            pid = int(read_text(tmp_path / "launch.pid") or "0")
            # `wait` returns when the job ends, or as soon as it is stopped (128 + signal).
            wait_for(lambda: read_text(status) is not None, "the launch", RUN_TIMEOUT_S, pane.shown)
            pane.screen()
    finally:
        if pid is not None:
            _kill_run(pid, RunLayout(root, RUN_ID))  # only a launch that did not end is left

    waited = int(read_text(status) or "-1")
    if waited > 128:
        how = signal.Signals(waited - 128).name
        pytest.fail(
            f"the background launch was stopped by {how} (wait returned {waited}) instead of "
            f"running on; the run waits for `fg`\n{pane.shown()}"
        )
    assert waited == 0, pane.shown()
    assert final_file(root).is_file()


def _kill_run(launcher: int, layout: RunLayout) -> None:
    """SIGKILL the launcher, if left alive (stopped), and the workers its pid files name.

    Only processes of this run are killed: their command line names the run's root.
    """
    pids = [launcher]
    for path in layout.launch_dir.glob("worker_*.pid"):
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            pids.append(int(json.loads(path.read_text())["pid"]))
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            process = psutil.Process(pid)
            if str(layout.root) in process.cmdline():
                process.kill()


# -- a pseudo-terminal without tmux -----------------------------------------------------
def run_in_pty(
    argv: Sequence[str], cwd: Path, env: dict[str, str], timeout: float = RUN_TIMEOUT_S
) -> tuple[int, str, bool]:
    """Run ``argv`` with stdin, stdout and stderr on a new WIDTH x HEIGHT pseudo-terminal.

    Returns the exit status, the output as plain text, and whether the terminal's
    settings were the same after the command as before it.
    """
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", HEIGHT, WIDTH, 0, 0))
    before = termios.tcgetattr(slave)
    chunks: list[bytes] = []
    process = subprocess.Popen(
        list(argv), cwd=cwd, env=env, stdin=slave, stdout=slave, stderr=slave,
        start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + timeout
        while True:
            assert time.monotonic() < deadline, plain(b"".join(chunks).decode(errors="replace"))
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    data = os.read(master, 65536)
                except OSError:  # EIO: no process holds the terminal any more
                    break
                if not data:
                    break
                chunks.append(data)
            elif process.poll() is not None:
                break  # exited, and nothing more to read
        returncode = process.wait(timeout=10)
        restored = termios.tcgetattr(slave) == before
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        os.close(master)
        os.close(slave)
    return returncode, plain(b"".join(chunks).decode("utf-8", errors="replace")), restored


def test_launch_in_a_pseudo_terminal_draws_the_dashboard_to_the_end(
    tmp_path: Path, bars: Path
) -> None:
    root = tmp_path / "root"
    config(root)
    env = child_env(**{PAUSE_ENV: "before_detection:0.3"})
    returncode, output, restored = run_in_pty(cli_argv(root, launch_args(bars)), root, env)

    assert returncode == 0, output
    assert PANEL_TITLE in output, output
    assert worker_row(output, 0) and worker_row(output, 1), output
    assert "100.0%" in output, output
    assert "DETECTION COMPLETE" in output, output
    assert final_file(root).is_file()
    assert restored, "the terminal's settings were not restored after the launch"


def test_launch_no_dashboard_in_a_pseudo_terminal_prints_progress_lines_only(
    tmp_path: Path, bars: Path
) -> None:
    root = tmp_path / "root"
    config(root)
    env = child_env(**{PAUSE_ENV: "before_detection:0.2"})
    argv = cli_argv(root, launch_args(bars, "--no-dashboard"))
    returncode, output, restored = run_in_pty(argv, root, env)

    assert returncode == 0, output
    assert PANEL_TITLE not in output, output
    assert not re.search("[╭╮╰╯│]", output), f"a box was drawn\n{output}"
    assert re.search(r"^progress \d+/12 symbols .*\| w0 .*\| w1 ", output, re.MULTILINE), output
    assert "DETECTION COMPLETE" in output, output
    assert final_file(root).is_file()
    assert restored


# -- without a terminal -------------------------------------------------------------------
@pytest.fixture(scope="module")
def finished_root(tmp_path_factory: pytest.TempPathFactory, bars: Path) -> Path:
    """A root holding one finished two-symbol run (the launch has exited, workers too)."""
    root = tmp_path_factory.mktemp("finished")
    config(root)
    symbols = sorted(p.name.removeprefix("symbol=") for p in bars.glob("symbol=*"))[:2]
    args = launch_args(bars, "--symbols", " ".join(symbols), workers=1)
    done = run_piped(root, args, timeout=RUN_TIMEOUT_S)
    assert done.returncode == 0, done.stdout + done.stderr
    assert RunLayout(root, RUN_ID).pid_files() == []
    return root


def run_piped(
    root: Path, args: Sequence[str], timeout: float = 15.0
) -> subprocess.CompletedProcess[str]:
    """The command line with stdin from /dev/null and stdout, stderr to pipes."""
    root.mkdir(parents=True, exist_ok=True)
    return subprocess.run(
        cli_argv(root, args),
        cwd=root,
        env=child_env(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_dashboard_without_a_terminal_prints_one_frame_of_a_finished_run(
    finished_root: Path,
) -> None:
    for args in (["dashboard", "--once"], ["dashboard"]):  # no terminal: one frame either way
        done = run_piped(finished_root, args)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "\x1b" not in done.stdout, f"escape sequences in a pipe: {done.stdout!r}"
        assert f"{PANEL_TITLE} {RUN_ID}" in done.stdout, done.stdout
        assert "state completed" in done.stdout, done.stdout
        assert "100.0%" in done.stdout, done.stdout
        assert worker_row(done.stdout, 0, "completed"), done.stdout
        assert done.stdout.count(PANEL_TITLE) == 1, done.stdout


def test_dashboard_frame_to_a_pipe_ends_its_last_line(finished_root: Path) -> None:
    """Text written to a file or pipe ends with a newline, like any other command's."""
    done = run_piped(finished_root, ["dashboard", "--once"])
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.endswith("\n"), f"no newline at the end: {done.stdout[-80:]!r}"


def test_dashboard_frame_to_a_pipe_does_not_offer_keys_it_will_not_read(
    finished_root: Path,
) -> None:
    """Without a terminal ``dashboard`` draws one frame and exits: no "q quits" footer."""
    done = run_piped(finished_root, ["dashboard"])
    assert done.returncode == 0, done.stdout + done.stderr
    assert "quits the view" not in done.stdout, done.stdout


def test_dashboard_on_a_root_without_runs_exits_2_with_one_line(tmp_path: Path) -> None:
    done = run_piped(tmp_path / "empty", ["dashboard"])
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("Error: no run under"), done.stderr
