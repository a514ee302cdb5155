"""A command's process imports that command's code only: a launch starts one
``detect`` per worker, and each would otherwise import the report's plotly, the
benchmark and dedupe for nothing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

PROBE = (
    "import sys\n"
    "from tools.cli.app import cli\n"
    "try:\n"
    "    cli(['detect', '--help'], prog_name='intraday-events')\n"
    "except SystemExit:\n"
    "    pass\n"
    "print(' '.join(sorted(m for m in sys.modules if m.split('.')[0] in\n"
    "    ('plotly', 'tools', 'orchestrator'))))\n"
)


def test_detect_imports_neither_the_report_nor_other_commands() -> None:
    out = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    loaded = set(out.stdout.split()[-1000:])
    assert "tools.cli.detect_cmd" in loaded
    assert not {m for m in loaded if m.startswith("plotly")}
    unwanted = {"tools.cli.launch_cmd", "tools.cli.bench_cmd", "tools.cli.dedupe_cmd",
                "tools.cli.report_cmd", "tools.cli.show_cmd", "orchestrator.observe.report"}  # fmt: skip
    assert loaded & unwanted == set()


def test_help_still_lists_every_command() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "tools", "--help"], cwd=REPO, capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    for name in ("detect", "launch", "status", "report", "show", "bench", "seed-checkpoint"):
        assert f"  {name} " in out.stdout, name
