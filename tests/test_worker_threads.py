"""Each local worker's polars pool gets its share of the CPUs (backends.processes)."""

from __future__ import annotations

import subprocess
import sys

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
