"""Workers run without transparent huge pages, so their peak RSS does not depend on
the kernel's setting (``always`` made a 750-day worker 295 MB instead of 250 here)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
STATUS = Path("/proc/self/status")

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux") or "THP_enabled" not in STATUS.read_text()
    if STATUS.exists()
    else True,
    reason="needs Linux 5.0+ (/proc/self/status says THP_enabled)",
)

CHILD = (
    "from orchestrator.backends.processes import no_huge_pages\n"
    "import subprocess, sys\n"
    "assert no_huge_pages()\n"
    # a grandchild, started after the call and through exec, inherits the flag
    "print(subprocess.run(['grep', 'THP_enabled', '/proc/self/status'],"
    " capture_output=True, text=True, timeout=10).stdout)\n"
)


def test_the_flag_is_set_and_inherited_by_what_the_process_starts() -> None:
    out = subprocess.run(
        [sys.executable, "-c", CHILD], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["THP_enabled:", "0"]
