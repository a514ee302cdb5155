"""The on-disk layout of a run: the one module that knows where a run's files live.

Paths follow the users' legacy layout (LEGACY.md) under the workspace root.
Everything else asks :class:`RunLayout` for paths.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

RUN_ID_PREFIX = "events_intraday_"
_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
_SHARD = re.compile(r"^(?P<run>.+)_shard(?P<num>\d{4,})\.parquet$")
TEMP_SUFFIX = ".tmp"


def is_valid_run_id(run_id: str) -> bool:
    return bool(_RUN_ID.match(run_id)) and ".." not in run_id


def new_run_id(today: datetime) -> str:
    return f"{RUN_ID_PREFIX}{today:%Y%m%d}"


def shard_number(path: Path, run_id: str) -> int | None:
    """The number of a committed shard file of ``run_id``, or None for any other file."""
    match = _SHARD.match(path.name)
    if match is None or match["run"] != run_id:
        return None
    return int(match["num"])


@dataclass(frozen=True)
class RunLayout:
    root: Path
    run_id: str

    # -- run state -------------------------------------------------------------
    @property
    def checkpoints_dir(self) -> Path:
        return self.root / "logs" / "checkpoints"

    @property
    def checkpoint(self) -> Path:
        return self.checkpoints_dir / f"{self.run_id}_completed.json"

    def temp_checkpoints(self) -> list[Path]:
        """Temporary checkpoint files left by a process killed while writing one."""
        return sorted(self.checkpoints_dir.glob(f".{self.checkpoint.name}.*.tmp"))

    @property
    def spec(self) -> Path:
        """The run's parameters, saved at its first launch (orchestrator.run.spec)."""
        return self.checkpoints_dir / f"{self.run_id}_spec.json"

    @property
    def lock(self) -> Path:
        """Kernel lock guarding the checkpoint and shard commits of the run."""
        return self.checkpoints_dir / f"{self.run_id}.lock"

    # -- heartbeats and logs ---------------------------------------------------
    @property
    def heartbeats_dir(self) -> Path:
        return self.root / "logs" / "heartbeats"

    @property
    def run_heartbeat(self) -> Path:
        return self.heartbeats_dir / f"{self.run_id}_heartbeat.json"

    def worker_heartbeat(self, worker_id: int) -> Path:
        return self.heartbeats_dir / f"{self.run_id}_worker_{worker_id}.json"

    @property
    def logs_dir(self) -> Path:
        return self.root / "logs" / "detect_events"

    def heartbeat_log(self, day: datetime) -> Path:
        return self.logs_dir / f"heartbeat_{day:%Y%m%d}.log"

    def batch_log(self, day: datetime) -> Path:
        return self.logs_dir / f"batches_{day:%Y%m%d}.log"

    def batch_logs(self) -> list[Path]:
        """Every daily batch log (shared by all runs of the root), oldest day first."""
        return sorted(self.logs_dir.glob("batches_*.log"))

    def main_log(self, started: datetime, worker_id: int | None, pid: int) -> Path:
        # One file per process (worker id and pid in the name) so that no two processes
        # ever share, and rotate, the same file.
        who = "" if worker_id is None else f"_worker_{worker_id}"
        return self.logs_dir / f"detect_events_intraday_{started:%Y%m%d_%H%M%S}{who}_pid{pid}.log"

    # -- launch state (written by the orchestrator) -----------------------------
    @property
    def launch_dir(self) -> Path:
        """Plan, PID files, worker symbol lists and worker console output of a launch."""
        return self.root / "logs" / "launch" / self.run_id

    @property
    def launch_lock(self) -> Path:
        """Kernel lock held by the one orchestrator of the run for its whole life."""
        return self.launch_dir / "launch.lock"

    @property
    def orchestrator_pid_file(self) -> Path:
        return self.launch_dir / "orchestrator.pid"

    def worker_pid_file(self, worker_id: int) -> Path:
        return self.launch_dir / f"worker_{worker_id}.pid"

    def pid_files(self) -> list[Path]:
        return sorted(self.launch_dir.glob("*.pid"))

    def worker_symbols_file(self, worker_id: int) -> Path:
        return self.launch_dir / f"worker_{worker_id}_symbols.txt"

    def worker_console_log(self, worker_id: int) -> Path:
        """What a launched worker prints (appended): its console log and any crash output."""
        return self.launch_dir / f"worker_{worker_id}_console.log"

    @property
    def stop_file(self) -> Path:
        """Written by a Ray driver asked to stop: its tasks stop between symbols."""
        return self.launch_dir / "stop"

    @property
    def summary_json(self) -> Path:
        """The end of the latest launch, as data (orchestrator.observe.summary_json)."""
        return self.launch_dir / "summary.json"

    @property
    def plan(self) -> Path:
        """The latest launch plan: workers, their symbols and every symbol's bar count."""
        return self.launch_dir / "plan.json"

    # -- events ----------------------------------------------------------------
    @property
    def events_dir(self) -> Path:
        return self.root / "processed" / "events"

    @property
    def shards_root(self) -> Path:
        return self.events_dir / "shards"

    def shard_dir(self, worker_id: int | None) -> Path:
        """``shards/`` for a lone worker, ``shards/worker_K/`` for worker K of a launch."""
        return self.shards_root if worker_id is None else self.shards_root / f"worker_{worker_id}"

    def shard_path(self, shard_dir: Path, number: int) -> Path:
        return shard_dir / f"{self.run_id}_shard{number:04d}.parquet"

    def shard_dirs(self) -> list[Path]:
        """Every directory that may hold shards of any worker of this run."""
        if not self.shards_root.is_dir():
            return []
        return [self.shards_root, *sorted(self.shards_root.glob("worker_*"))]

    def committed_shards(self) -> dict[int, Path]:
        """Committed shard files of this run by number (a number is never reused)."""
        found: dict[int, Path] = {}
        for directory in self.shard_dirs():
            for path in directory.glob(f"{self.run_id}_shard*.parquet"):
                number = shard_number(path, self.run_id)
                if number is not None:
                    found[number] = path
        return dict(sorted(found.items()))

    def temp_shards(self) -> list[Path]:
        """Uncommitted temporary shard files of this run (left by a crash)."""
        return [
            path
            for directory in self.shard_dirs()
            for path in directory.glob(f".{self.run_id}_*{TEMP_SUFFIX}")
        ]

    def temp_shard(self, shard_dir: Path, worker_id: int | None, pid: int, token: str) -> Path:
        who = "solo" if worker_id is None else f"w{worker_id}"
        return shard_dir / f".{self.run_id}_{who}_{pid}_{token}{TEMP_SUFFIX}"

    @property
    def final(self) -> Path:
        return self.events_dir / f"{self.run_id}.parquet"

    # -- discovery -------------------------------------------------------------
    def exists(self) -> bool:
        """Whether anything of this run is on disk (checkpoint, launch files, shards, final)."""
        return (
            self.checkpoint.exists()
            or self.launch_dir.exists()
            or self.final.exists()
            or self.run_heartbeat.exists()
            or bool(self.committed_shards())
        )

    @staticmethod
    def run_ids(root: Path) -> list[str]:
        """Runs that have a checkpoint under ``root``, oldest first by modification time."""
        directory = root / "logs" / "checkpoints"
        files = sorted(directory.glob("*_completed.json"), key=lambda p: p.stat().st_mtime)
        return [p.name.removesuffix("_completed.json") for p in files]
