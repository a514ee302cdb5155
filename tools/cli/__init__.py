"""The ``intraday-events`` command line: a thin shim over the library.

Each command parses its options, builds a frozen config, validates and calls one
function. Project errors become one line on stderr and a distinct exit status
(:class:`detector.errors.ExitCode`).
"""

from __future__ import annotations

from tools.cli.app import cli, main

__all__ = ["cli", "main"]
