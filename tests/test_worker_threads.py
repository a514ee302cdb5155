"""Each local worker's polars pool gets its share of the CPUs (backends.processes)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from orchestrator.backends.processes import THREADS_VARIABLE, worker_environment


def test_workers_share_the_cpus_at_least_one_thread_each() -> None:
    assert worker_environment({}, workers=2, cpus=2)[THREADS_VARIABLE] == "1"
    assert worker_environment({}, workers=1, cpus=2)[THREADS_VARIABLE] == "2"
    assert worker_environment({}, workers=4, cpus=16)[THREADS_VARIABLE] == "4"
    assert worker_environment({}, workers=3, cpus=2)[THREADS_VARIABLE] == "1"


def test_a_thread_count_the_operator_set_is_kept_and_the_rest_is_inherited() -> None:
    env = worker_environment({THREADS_VARIABLE: "7", "HOME": "/h"}, workers=2, cpus=2)
    assert env == {THREADS_VARIABLE: "7", "HOME": "/h"}
    assert worker_environment({"HOME": "/h"}, workers=2, cpus=2)["HOME"] == "/h"


def test_a_process_started_with_that_environment_has_that_many_polars_threads() -> None:
    env = worker_environment({"PATH": "/usr/bin:/bin"}, workers=2, cpus=2)
    out = subprocess.run(
        [sys.executable, "-c", "import polars; print(polars.thread_pool_size())"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert out.stdout.strip() == "1"


def test_a_container_cpu_quota_caps_the_cpus_shared(tmp_path: Path) -> None:
    from orchestrator.backends.processes import available_cpus, cgroup_cpu_quota

    assert cgroup_cpu_quota(tmp_path) is None  # no cgroup files: no quota
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert cgroup_cpu_quota(tmp_path) is None
    (tmp_path / "cpu.max").write_text("150000 100000\n")
    assert cgroup_cpu_quota(tmp_path) == 2  # 1.5 CPUs: two threads' worth, rounded up
    assert available_cpus(tmp_path) <= 2
    v1 = tmp_path / "v1"
    (v1 / "cpu").mkdir(parents=True)
    (v1 / "cpu" / "cpu.cfs_quota_us").write_text("-1\n")
    (v1 / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    assert cgroup_cpu_quota(v1) is None
    (v1 / "cpu" / "cpu.cfs_quota_us").write_text("100000\n")
    assert cgroup_cpu_quota(v1) == 1 and available_cpus(v1) == 1
