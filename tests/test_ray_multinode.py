"""``launch --backend ray`` beyond one node: a worker node dies mid-run, nothing is lost.

The test starts a real two-node Ray cluster on this machine: a head, then a second
node joined to it, each started by ``ray start`` in its own session, with its own
short temp dir under /tmp (Ray's socket paths are limited), one CPU, and explicit
ports from a free block; token authentication off, fast node-death detection on the
head. It runs the command line's ``launch --backend ray`` against the cluster and
kills the second node like a crash (its raylet, the raylet's children and its log
monitor: all SIGSTOPped, then SIGKILLed) while one of its tasks is on a symbol. Ray
sends that task again, to the head; the launch must exit 0, the final file must
equal the local backend's over the same bars and config, and no symbol may be
charged a failed attempt at any moment of the run.

Node 2 gets a task and is killed on it: there are two lanes and one CPU per node,
and the head's tasks pause a second before each symbol (the pause fault, in the
head's environment only), so while the head is busy the other lane's task can only
be leased on node 2, whose worker has all the head's share of the run to start.
Node 2's tasks pause on their first symbol until the node dies; the test waits for
a heartbeat whose pid is on node 2 (every process of a node stays in the session of
its ``ray start``) and kills the node then.

Every wait is bounded. Teardown kills every process of the cluster by pid (never
``ray stop``, which stops everyone's Ray on the machine) and the test fails if any
survives; a session fixture sweeps what a killed pytest left behind. Skipped, with
the reason, when ray cannot be imported or its ``ray`` command is not next to the
python that runs the tests.
"""

from __future__ import annotations

import contextlib
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Collection, Iterator
from pathlib import Path
from typing import Any

import polars as pl
import psutil
import pytest
from test_launch import (
    RUN_ID,
    TIMEOUT_S,
    assert_final_equals,
    checkpoint,
    child_env,
    cli_argv,
    config,
    launch_args,
    run_cli,
    wait_for,
)
from test_ray_backend import WHY_NO_RAY, lane_beat

from orchestrator.run.faults import PAUSE_ENV
from orchestrator.run.layout import RunLayout
from tools.demo.data import DemoDataSpec, generate_demo_bars

RAY_CLI = Path(sys.executable).parent / "ray"
WHY_SKIP = WHY_NO_RAY or (None if RAY_CLI.is_file() else f"no ray command at {RAY_CLI}")
pytestmark = [
    pytest.mark.skipif(WHY_SKIP is not None, reason=WHY_SKIP or ""),
    pytest.mark.usefixtures("no_stray_processes"),
]

REPO = Path(__file__).resolve().parents[1]
TEMP_ROOT = Path("/tmp")  # not $TMPDIR nor pytest's tmp_path: Ray's socket paths are short
TEMP_PREFIX = "rmn-"  # TEMP_ROOT/rmn-{pytest pid}-{random}, one per cluster
MARK_ENV = "INTRADAY_EVENTS_RAY_CLUSTER_DIR"  # in the environment of every process of one
START_TIMEOUT_S = 60.0  # a `ray start` (a joining node retries the head for ever)
PORTS = 64  # the block: see Cluster.ports
HEAD_PAUSE_S = 1.0  # before each symbol on the head: node 2's time to take a task
FAST_DEATH = {  # in the head's environment: a dead node is noticed in ~1.5 s, not ~15 s
    "RAY_health_check_initial_delay_ms": "0",
    "RAY_health_check_period_ms": "500",
    "RAY_health_check_timeout_ms": "1000",
    "RAY_health_check_failure_threshold": "3",
}


# -- finding and ending our processes (never `ray stop`) --------------------------
def _session(pid: int) -> int | None:
    try:
        return os.getsid(pid)
    except OSError:
        return None


def _cmdline(process: psutil.Process) -> str:
    try:
        return " ".join(process.cmdline())
    except psutil.Error:
        return ""


def _live(processes: list[psutil.Process]) -> list[psutil.Process]:
    out = []
    for p in processes:
        with contextlib.suppress(psutil.Error):
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                out.append(p)
    return out


def _names(process: psutil.Process, directory: Path) -> bool:
    """Whether ``directory`` (not a longer name) is on the command line of ``process``."""
    return re.search(re.escape(str(directory)) + r"(?![\w.-])", _cmdline(process)) is not None


def _carries(process: psutil.Process, directory: str) -> bool:
    try:
        return process.environ().get(MARK_ENV) == directory
    except psutil.Error:
        return False


def processes_of(directory: Path, sessions: Collection[int] = ()) -> list[psutil.Process]:
    """Live processes of the cluster in ``directory`` (or of its node in a subdirectory).

    Those naming it on their command line, carrying it in ``MARK_ENV`` (every process
    of the cluster and its driver inherit it), or in one of ``sessions``: Ray's task
    workers and agents rename themselves (``ray::IDLE``), which overwrites their
    command line and, for agents, their environment, but they keep the session of
    the ``ray start`` that started their node.
    """
    me = os.getpid()
    found = [
        p
        for p in psutil.process_iter()
        if p.pid != me
        and (_session(p.pid) in sessions or _names(p, directory) or _carries(p, str(directory)))
    ]
    return _live(found)


def kill_all(processes: list[psutil.Process], *, stop_first: bool = False) -> None:
    """SIGKILL ``processes`` (SIGSTOP all of them first, in order, if asked); reap."""
    for sig in (signal.SIGSTOP, signal.SIGKILL) if stop_first else (signal.SIGKILL,):
        for p in processes:
            with contextlib.suppress(psutil.Error):
                p.send_signal(sig)
    deadline = time.monotonic() + 10  # zombies count as gone: not ours to reap
    while _live(processes) and time.monotonic() < deadline:
        time.sleep(0.05)


def _describe(process: psutil.Process) -> str:
    return f"{process.pid} {_cmdline(process)[:160] or '?'}"


@pytest.fixture(scope="session")
def leftovers_swept() -> None:
    """Kill the clusters of earlier pytest runs that were killed before their teardown."""
    for directory in TEMP_ROOT.glob(f"{TEMP_PREFIX}*"):
        match = re.fullmatch(rf"{TEMP_PREFIX}(\d+)-[0-9a-f]+", directory.name)
        if match is None or psutil.pid_exists(int(match.group(1))):
            continue  # not ours, or its pytest still runs
        # Agents and workers lose their environment to their new title, not their
        # session: that of a `ray start` (long gone: never a live leader's, nor ours).
        named = [p for p in psutil.process_iter() if _names(p, directory)]
        sessions = {s for p in named if (s := _session(p.pid)) is not None}
        sessions -= {0, 1, os.getsid(0)}
        kill_all(processes_of(directory, {s for s in sessions if not psutil.pid_exists(s)}))
        shutil.rmtree(directory, ignore_errors=True)


# -- a two-node cluster -----------------------------------------------------------
def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("", port))
        except OSError:
            return False
    return True


def free_port_block() -> int:
    """The first port of ``PORTS`` free ones, below the ephemeral range (32768)."""
    for _ in range(100):
        base = random.randrange(20000, 32000, PORTS)
        if all(_free(p) for p in range(base, base + PORTS)):
            return base
    raise AssertionError(f"no block of {PORTS} free ports in 20000-32000")


class Cluster:
    """A head and a second node (``n2``) on this machine, one CPU each."""

    def __init__(self, temp: Path) -> None:
        self.temp = temp
        self.base = free_port_block()
        self.address = f"127.0.0.1:{self.base}"
        self.sessions: dict[str, int] = {}  # node -> the session of its `ray start`
        self.env = child_env(
            **{MARK_ENV: str(temp)},
            RAY_AUTH_MODE="disabled",  # else a token file left by any ray.init() decides
            RAY_USAGE_STATS_ENABLED="0",
            POLARS_MAX_THREADS="1",
            # Tasks import the code under test, not an installed copy.
            PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
        )

    def ports(self, node: str) -> list[str]:
        """Every port of ``node`` explicit, from the block: the head 0-7, n2 10-15."""
        first = self.base + (0 if node == "head" else 10)
        workers = self.base + (20 if node == "head" else 40)
        names = ["node-manager", "object-manager", "dashboard-agent-listen",
                 "dashboard-agent-grpc", "runtime-env-agent", "metrics-export"]  # fmt: skip
        args = [a for i, name in enumerate(names, 1) for a in (f"--{name}-port", str(first + i))]
        if node == "head":
            args += ["--port", str(self.base), "--dashboard-port", str(self.base + 7)]
        return [*args, "--min-worker-port", str(workers), "--max-worker-port", str(workers + 19)]

    def start(self, node: str, **env: str) -> None:
        directory = self.temp / node
        directory.mkdir()
        where = ["--head", "--include-dashboard", "false"] if node == "head" else [
            "--address", self.address]  # fmt: skip
        argv = [str(RAY_CLI), "start", *where, *self.ports(node), "--num-cpus", "1",
                "--object-store-memory", str(80 * 2**20), "--temp-dir", str(directory),
                "--disable-usage-stats"]  # fmt: skip
        with (self.temp / f"{node}.out").open("w") as out:
            process = subprocess.Popen(
                argv, cwd=self.temp, env={**self.env, **env}, stdin=subprocess.DEVNULL,
                stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        self.sessions[node] = process.pid  # before waiting: teardown finds a half start
        try:
            code = process.wait(timeout=START_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            code = None
        said = (self.temp / f"{node}.out").read_text(errors="replace")[-3000:]
        assert code == 0, f"ray start of {node} ended with {code}:\n{said}"

    def processes(self, node: str) -> list[psutil.Process]:
        return processes_of(self.temp / node, {self.sessions[node]})

    def runs_on(self, pid: int, node: str) -> bool:
        return _session(pid) == self.sessions[node]

    def crash(self, node: str) -> None:
        """Kill ``node`` as a crash would: its raylet, its children, its log monitor.

        All are stopped before any is killed: a helper killed first would make the
        raylet shut down gracefully, and a raylet killed alone may let its task finish.
        """
        everything = self.processes(node)
        raylet = [p for p in everything if "--node_id=" in _cmdline(p)]
        assert len(raylet) == 1, [_describe(p) for p in everything]
        children = _live(raylet[0].children(recursive=True))
        rest = [p for p in everything if p not in raylet and p not in children]
        ordered = [*raylet, *children, *rest]
        kill_all(ordered, stop_first=True)
        alive = _live(ordered)
        assert not alive, f"{node} survived SIGKILL: {[_describe(p) for p in alive]}"

    def stop(self) -> list[str]:
        """Kill every process of the cluster; those that survive, described."""
        kill_all(processes_of(self.temp, self.sessions.values()))
        left = processes_of(self.temp, self.sessions.values())
        described = [_describe(p) for p in left]
        kill_all(left)
        return described


@pytest.fixture
def cluster(leftovers_swept: None) -> Iterator[Cluster]:
    temp = Path(TEMP_ROOT, f"{TEMP_PREFIX}{os.getpid()}-{os.urandom(4).hex()}")
    temp.mkdir()
    ray = Cluster(temp)
    try:
        ray.start("head", **FAST_DEATH, **{PAUSE_ENV: f"before_detection:{HEAD_PAUSE_S:g}"})
        ray.start("n2", **{PAUSE_ENV: f"before_detection:{TIMEOUT_S:g}"})  # until killed
        yield ray
    finally:
        survivors = ray.stop()
        shutil.rmtree(temp, ignore_errors=True)
        if survivors:
            pytest.fail(f"Ray processes still alive after the test (killed now): {survivors}")


# -- the run ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def bars(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("multinode_bars")
    generate_demo_bars(DemoDataSpec(out=out, symbols=8, days=10, seed=11))
    return out


def args(bars: Path, *backend: str) -> list[str]:
    return launch_args(bars, workers=2, batch_size=2, extra=("--no-dashboard", *backend))


@pytest.fixture(scope="module")
def local_final(tmp_path_factory: pytest.TempPathFactory, bars: Path) -> pl.DataFrame:
    """The final file of the local backend over the same bars and config."""
    root = tmp_path_factory.mktemp("multinode_local")
    config(root)
    done = run_cli(root, args(bars, "--backend", "local"))
    assert done.returncode == 0, done.stdout + done.stderr
    return pl.read_parquet(RunLayout(root, RUN_ID).final)


def checkpoint_now(root: Path) -> dict[str, Any]:
    """The run's checkpoint as it is now; empty before its first writing."""
    try:
        return checkpoint(root)
    except (OSError, ValueError):
        return {}


def test_a_worker_node_dying_mid_run_costs_no_symbol_an_attempt(
    tmp_path: Path, bars: Path, local_final: pl.DataFrame, cluster: Cluster
) -> None:
    config(tmp_path)
    argv = cli_argv(tmp_path, args(bars, "--backend", "ray", "--ray-address", cluster.address,
                                   "--ray-task-retries", "3"))  # fmt: skip
    output = tmp_path / "launch.out"
    with output.open("w") as out:
        launch = subprocess.Popen(argv, cwd=tmp_path, env=cluster.env, stdin=subprocess.DEVNULL,
                                  stdout=out, stderr=subprocess.STDOUT)  # fmt: skip
    failed: dict[str, object] = {}
    try:
        on_n2: list[tuple[int, str]] = []  # (lane, symbol) of the task paused on node 2

        def task_on_n2() -> bool:
            assert launch.poll() is None, output.read_text()
            for lane in (0, 1):
                beat = lane_beat(tmp_path, lane)
                if (beat is not None and beat.status == "running" and beat.current_symbol
                        and cluster.runs_on(beat.pid, "n2")):  # fmt: skip
                    on_n2.append((lane, beat.current_symbol))
                    return True
            return False

        wait_for(task_on_n2, "a task on node 2", timeout=TIMEOUT_S)
        lane, victim = on_n2[0]
        assert victim not in checkpoint_now(tmp_path).get("completed_symbols", ())
        cluster.crash("n2")
        assert launch.poll() is None, "the kill must land mid-run"

        def finished() -> bool:
            # A later commit of a symbol clears its failed attempts: look all along.
            failed.update(checkpoint_now(tmp_path).get("failed") or {})
            return launch.poll() is not None

        wait_for(finished, "the launch to finish", timeout=TIMEOUT_S)
    finally:
        if launch.poll() is None:
            launch.kill()
        launch.wait(timeout=TIMEOUT_S)
    said = output.read_text()
    assert launch.returncode == 0, said

    # (a) the same final file as the local backend, each symbol committed once
    assert_final_equals(tmp_path, local_final)
    # (b) Ray's retry did the work: no symbol was charged, at any moment of the run
    cp = checkpoint(tmp_path)
    assert victim in cp["completed_symbols"]
    assert len(cp["completed_symbols"]) == 8
    assert not failed, f"failed attempts recorded during the run: {failed}"
    assert not cp.get("failed") and not cp.get("quarantine_retries"), cp
    main_log = "".join(
        p.read_text() for p in (tmp_path / "logs" / "detect_events").glob("*pid*.log")
    )
    assert not re.search(r"batch \d+ lost", main_log), main_log  # no task lost for the driver
    beat = lane_beat(tmp_path, lane)
    assert beat is not None and beat.status == "completed", beat
