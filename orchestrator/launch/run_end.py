"""What a launch writes at its end, beside the final file: ``summary.json`` and the
run's report. Neither ever fails the run: a refused write or a broken report is a
logged line, and ``intraday-events report`` rebuilds the report later."""

from __future__ import annotations

import contextlib
import importlib
import logging
import threading
from datetime import datetime, timedelta

from detector.config import AppConfig
from detector.errors import ExitCode
from orchestrator.observe.summary_json import summary_document, symbol_seconds, write_summary_json
from orchestrator.run.checkpoint import Checkpoint
from orchestrator.run.layout import RunLayout
from orchestrator.run.merge import MergeResult
from orchestrator.run.provenance import Provenance

log = logging.getLogger(__name__)

_REPORT_MODULE = "orchestrator.observe.report"


def write_launch_summary(
    layout: RunLayout,
    cp: Checkpoint,
    *,
    merged: MergeResult | None,
    provenance: Provenance | None,
    code: ExitCode,
    completed_now: int,
    wall_s: float,
    stopped: str | None,
    max_attempts: int,
) -> None:
    """summary.json of this launch; a refused write is logged, never fails the run."""
    finished = datetime.now()
    document = summary_document(
        run_id=layout.run_id,
        cp=cp,
        started_at=finished - timedelta(seconds=wall_s),
        finished_at=finished,
        exit_code=int(code),
        merged=merged,
        provenance=provenance,
        completed_now=completed_now,
        stopped=stopped,
        max_attempts=max_attempts,
        seconds=symbol_seconds(layout, cp),
    )
    try:
        write_summary_json(layout.summary_json, document)
    except OSError as exc:
        log.warning("cannot write %s: %s", layout.summary_json, exc)


def preload_report() -> threading.Thread:
    """Import the report's modules (plotly: about 0.3 s) in a thread while the workers
    run, so that the report at the end does not wait for them: the launcher's own
    thread mostly sleeps meanwhile. A failed import shows again, and is reported, when
    the report is written. The caller joins the thread before it returns."""

    def load() -> None:
        with contextlib.suppress(Exception):
            importlib.import_module(_REPORT_MODULE)

    thread = threading.Thread(target=load, name="preload-report", daemon=True)
    thread.start()
    return thread


def write_report(layout: RunLayout, app: AppConfig, max_attempts: int) -> None:
    """The run's report.html; a problem with it is logged and never fails the run."""
    try:
        report = importlib.import_module(_REPORT_MODULE)  # plotly: preloaded, or now
        line = report.report_at_end(layout, app, max_attempts=max_attempts)
    except Exception as exc:  # an import that failed: the run's outcome stands
        line = (
            f"report not written ({type(exc).__name__}: {exc}); `intraday-events report` retries it"
        )
    (log.info if line.startswith("report ") else log.warning)("%s", line)
