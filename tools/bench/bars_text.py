"""``intraday-events bench --bars DIR``: the report of :mod:`tools.bench.bars_run`, as text
(:func:`format_bars_text`) and as one JSON object (:func:`bars_json`), both from one
:class:`BarsReport`.

``--json`` prints one object with these keys (ms per symbol-100-days; ``null`` where a
value cannot be had, or is infinite):

- ``schema``: 3; ``mode``: ``"bars"``
- ``spec``: ``bars`` (DIR as given), ``repeat``, ``symbols`` (the ``--symbols`` limit, or
  ``null``: all)
- ``data``: ``dir`` (resolved), ``layout`` (the whole directory's: ``daily``, ``symbol``
  or ``both``), ``symbols_found`` (in DIR), ``symbols`` (measured: the first
  ``--symbols`` by name), ``naive_timezone`` (what naive timestamps were read as),
  ``day_window_et`` (``[start, end)``: the bars detect_symbol keeps), ``symbol_days``,
  ``bars``, ``rows_kept`` (all groups)
- ``layouts``: per group of symbols (the layout of each symbol's own files: ``daily``,
  ``symbol`` or ``both``) the keys of the demo bench's ``layouts`` rows
  (:mod:`tools.bench.text`: ``files``, ``read_ms_per_100d`` ..., ``spread``) plus
  ``symbols``, ``symbol_days`` (distinct ET trading days with clean bars, summed over
  the symbols: what ms per symbol-100-days divides by), ``bars`` (rows in the files),
  ``rows_kept`` (after cleaning)
- ``machine``: as the demo bench's
- ``targets``: one per group, detect / read judged on the median of the passes' ratios
  (daily and both <= 2.0 x, one file per symbol <= 3.0 x), keys as the demo bench's
- ``wall_s``: the whole benchmark
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

from detector.config import AppConfig
from tools.bench.bars_run import BarsBenchSpec, BarsGroup, BarsResult, Note, run_bars_bench
from tools.bench.figures import LayoutRow, Target, layout_row_days, ratio_target
from tools.bench.text import (
    READ_NOTE,
    SPREAD,
    clean,
    layout_lines,
    machine_line,
    step1_title,
    target_lines,
)

BARS_TARGETS_TITLE = (
    "targets (detect / read: daily <= 2.0 x, one file per symbol <= 3.0 x, both layouts as daily)"
)
LAYOUT_WORDS = {
    "daily": "daily files (symbol=SYM/date=*.parquet)",
    "symbol": "one file per symbol (SYM.parquet)",
    "both": "both layouts",
}


@dataclass(frozen=True)
class BarsReport:
    result: BarsResult
    layouts: dict[str, LayoutRow]
    targets: tuple[Target, ...]


def build_bars_report(result: BarsResult) -> BarsReport:
    layouts = {g.layout: layout_row_days(g.timing, g.symbol_days) for g in result.groups}
    targets = tuple(ratio_target(name, row) for name, row in layouts.items())
    return BarsReport(result, layouts, targets)


def _group_json(row: LayoutRow, group: BarsGroup) -> dict[str, Any]:
    return asdict(row) | {
        "symbols": len(group.symbols),
        "symbol_days": group.symbol_days,
        "bars": group.bars,
        "rows_kept": group.rows_kept,
    }


def bars_json(report: BarsReport) -> dict[str, Any]:
    r = report.result
    groups = {g.layout: g for g in r.groups}
    return clean(
        {
            "schema": 3,
            "mode": "bars",
            "spec": {"bars": str(r.spec.bars), "repeat": r.spec.repeat, "symbols": r.spec.symbols},
            "data": {
                "dir": str(r.directory),
                "layout": r.layout,
                "symbols_found": r.symbols_found,
                "symbols": sum(len(g.symbols) for g in r.groups),
                "naive_timezone": r.naive_timezone,
                "day_window_et": list(r.day_window),
                "symbol_days": sum(g.symbol_days for g in r.groups),
                "bars": sum(g.bars for g in r.groups),
                "rows_kept": sum(g.rows_kept for g in r.groups),
            },
            "layouts": {
                name: _group_json(row, groups[name]) for name, row in report.layouts.items()
            },
            "machine": asdict(r.machine),
            "targets": [asdict(t) for t in report.targets],
            "wall_s": r.wall_s,
        }
    )


def _group_line(group: BarsGroup) -> str:
    return (
        f"   {group.layout:<8} {len(group.symbols):,} symbols, {group.symbol_days:,} "
        f"symbol-days, {group.bars:,} bars in the files, {group.rows_kept:,} kept by cleaning"
    )


def format_bars_text(report: BarsReport) -> str:
    r = report.result
    measured = sum(len(g.symbols) for g in r.groups)
    which = (
        f"the first {measured} by name of {r.symbols_found}"
        if measured < r.symbols_found
        else f"all {r.symbols_found}"
    )
    start, end = r.day_window
    lines = [
        f"intraday-events bench --bars {r.directory}: {measured} symbols ({which}); "
        f"{LAYOUT_WORDS.get(r.layout, r.layout)}; naive timestamps read as {r.naive_timezone} "
        "(bars.naive_timezone); only step 1: nothing launched, nothing written",
        f"every figure: {SPREAD} over the {r.spec.repeat} passes; targets judged on the median",
        "",
        step1_title(r.spec.repeat),
        *layout_lines(report.layouts),
        READ_NOTE,
        "   symbol-days: per symbol the distinct ET trading days it has bars on once cleaned "
        f"as detect_symbol cleans them ({start}-{end} ET), summed; per layout of the "
        "symbols' own files:",
        *(_group_line(g) for g in r.groups),
        "",
        machine_line(r.machine),
        "",
        *target_lines(report.targets, BARS_TARGETS_TITLE),
        "",
        f"bench wall time {r.wall_s:.1f} s",
    ]
    return "\n".join(lines)


def bars_output(spec: BarsBenchSpec, config: AppConfig, as_json: bool, note: Note) -> str:
    """``bench --bars``: measure, then the text or the JSON to print."""
    report = build_bars_report(run_bars_bench(spec, config, note))
    return json.dumps(bars_json(report), indent=2) if as_json else format_bars_text(report)
