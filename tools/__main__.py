"""``python -m tools``: the command line, as launched workers run it."""

from __future__ import annotations

from tools.cli import main

main()
