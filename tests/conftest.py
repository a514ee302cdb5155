"""Fixtures shared by the tests that start real processes."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator

import psutil
import pytest

TAG_ENV = "INTRADAY_EVENTS_TEST_TAG"


def _tagged(tag: str) -> list[psutil.Process]:
    """Live processes whose environment carries ``tag`` (inherited from the test)."""
    found = []
    me = os.getpid()
    for process in psutil.process_iter():
        if process.pid == me:
            continue
        try:
            if process.environ().get(TAG_ENV) == tag and process.status() != psutil.STATUS_ZOMBIE:
                found.append(process)
        except psutil.Error:
            continue
    return found


def _describe(process: psutil.Process) -> str:
    try:
        return f"{process.pid} {' '.join(process.cmdline())[:200]}"
    except psutil.Error:
        return f"{process.pid} ?"


@pytest.fixture
def no_stray_processes(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Fail the test if any process it started, at any depth, outlives it.

    Every process the test starts inherits a unique tag in its environment, so that
    processes re-parented away from the test (workers of a killed launcher) are
    found too. Survivors are killed, then the test fails naming them.
    """
    tag = uuid.uuid4().hex
    monkeypatch.setenv(TAG_ENV, tag)
    yield tag
    stray = _tagged(tag)
    if stray:
        _, alive = psutil.wait_procs(stray, timeout=3)  # give exiting ones a moment
        stray = alive
    described = [_describe(p) for p in stray]
    for process in stray:
        with contextlib.suppress(psutil.Error):
            process.kill()
    psutil.wait_procs(stray, timeout=10)
    if stray:
        pytest.fail(f"processes still alive after the test (killed now): {described}")
