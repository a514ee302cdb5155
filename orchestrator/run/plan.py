"""The launch plan: which worker gets which of the remaining symbols.

Remaining symbols are ordered by expected work (bar count, largest first, ties
by symbol) and split by stride, worker k getting ``remaining[k::N]``, so every
worker gets a similar mix of large and small symbols. Pure, apart from reading
and writing ``plan.json``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestrator.run.atomic_io import write_text_atomic


@dataclass(frozen=True)
class Plan:
    run_id: str
    total: int  # symbols of the run
    completed: int
    quarantined: tuple[str, ...]
    assignments: tuple[tuple[str, ...], ...]  # per worker, in processing order
    bars: Mapping[str, int] = field(default_factory=dict)  # expected bars per symbol
    created_at: str | None = None  # when the launch made it (local time, ISO)
    no_bars: tuple[str, ...] = ()  # no bar file (recorded, not detected)
    requested_workers: int | None = None  # --workers, when more than the remaining symbols
    # Completed symbols whose bars changed since their commit: recomputed in this launch
    # (--redo-changed), or only reported.
    redo: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()
    bars_root: str | None = None  # the bars folder the launch read (status looks there)

    @property
    def capped(self) -> bool:
        """Fewer workers than asked for: no more than one per remaining symbol."""
        return self.requested_workers is not None and self.requested_workers > len(self.assignments)

    @property
    def remaining(self) -> int:
        return sum(len(a) for a in self.assignments)

    def worker_bars(self, worker_id: int) -> int:
        return sum(self.bars.get(s, 0) for s in self.assignments[worker_id])

    @property
    def remaining_bars(self) -> int:
        return sum(self.worker_bars(k) for k in range(len(self.assignments)))


def make_plan(
    *,
    run_id: str,
    universe: frozenset[str],
    completed: frozenset[str],
    quarantined: frozenset[str],
    bars: Mapping[str, int],
    workers: int,
    no_bars: frozenset[str] = frozenset(),
    changed: frozenset[str] = frozenset(),
    redo: bool = False,
    bars_root: str | None = None,
) -> Plan:
    """``changed``: completed symbols whose bars changed since their commit; with ``redo``
    they are detected again (``--redo-changed``), else only reported."""
    if workers < 1:
        raise ValueError("workers must be at least 1")
    redone = (changed & universe & completed) if redo else frozenset()
    todo = (universe - completed - quarantined - no_bars) | redone
    remaining = sorted(todo, key=lambda s: (-bars.get(s, 0), s))
    # A worker with nothing to do is never started: at most one per remaining symbol
    # (and one line saying there is nothing to do when nothing remains).
    real = min(workers, max(1, len(remaining)))
    return Plan(
        run_id=run_id,
        total=len(universe),
        completed=len(universe & completed),
        quarantined=tuple(sorted(quarantined & universe)),
        assignments=tuple(tuple(remaining[k::real]) for k in range(real)),
        bars={s: bars.get(s, 0) for s in remaining},
        requested_workers=workers if workers > real else None,
        no_bars=tuple(sorted((no_bars & universe) - completed)),
        redo=tuple(sorted(redone)),
        changed=tuple(sorted((changed & universe) - redone)),
        bars_root=bars_root,
    )


def format_plan(plan: Plan) -> str:
    """The plan in the form the old launcher printed, with bars added."""
    lines = [
        f"Total symbols: {plan.total}",
        f"Completed symbols (checkpoint): {plan.completed}",
    ]
    if plan.quarantined:
        shown = " ".join(plan.quarantined[:10]) + (" ..." if len(plan.quarantined) > 10 else "")
        lines.append(f"Quarantined symbols (skipped): {len(plan.quarantined)} ({shown})")
    if plan.no_bars:
        shown = " ".join(plan.no_bars[:10]) + (" ..." if len(plan.no_bars) > 10 else "")
        lines.append(
            f"Symbols without bar files (no_bars, not detected): {len(plan.no_bars)} ({shown})"
        )
    if plan.redo:
        lines.append(
            f"Recomputed, their bars changed since their commit (--redo-changed): "
            f"{len(plan.redo)} ({_shown(plan.redo)})"
        )
    if plan.changed:
        lines.append(
            f"Completed, but their bars changed since their commit: {len(plan.changed)} "
            f"({_shown(plan.changed)}); `launch --redo-changed` recomputes them"
        )
    lines.append(f"Remaining symbols: {plan.remaining} ({_millions(plan.remaining_bars)} bars)")
    if plan.capped and plan.remaining:
        lines.append(
            f"Workers: {len(plan.assignments)} (capped from {plan.requested_workers}: "
            f"one per remaining symbol at most)"
        )
    for k, symbols in enumerate(plan.assignments):
        span = f"{symbols[0]} ... {symbols[-1]}" if symbols else "nothing to do"
        lines.append(
            f"Worker {k}: {len(symbols)} symbols ({span}), {_millions(plan.worker_bars(k))} bars"
        )
    return "\n".join(lines)


def _shown(symbols: tuple[str, ...], most: int = 10) -> str:
    return " ".join(symbols[:most]) + (" ..." if len(symbols) > most else "")


def format_invalid_folders(bars_root: Path, names: list[str], shown: int = 5) -> str:
    """The plan's line about bar folders left out because their names are not symbols."""
    listed = ", ".join(names[:shown]) + (", ..." if len(names) > shown else "")
    return (
        f"Folders left out, their names are not symbols: {len(names)} under {bars_root} "
        f"({listed}); a symbol is 1-16 characters of A-Z 0-9 . - _"
    )


def _millions(bars: int) -> str:
    return f"{bars / 1e6:.2f} M"


# -- plan.json ---------------------------------------------------------------------
def plan_to_json(plan: Plan, *, created_at: str, batch_size: int) -> str:
    data: dict[str, Any] = {
        "run_id": plan.run_id,
        "created_at": created_at,
        "batch_size": batch_size,
        "total": plan.total,
        "completed": plan.completed,
        "quarantined": list(plan.quarantined),
        "workers": [list(a) for a in plan.assignments],
        "bars": dict(sorted(plan.bars.items())),
    }
    if plan.requested_workers is not None:
        data["requested_workers"] = plan.requested_workers
    if plan.no_bars:  # only then, so that other plans read as before
        data["no_bars"] = list(plan.no_bars)
    if plan.redo:
        data["redo"] = list(plan.redo)
    if plan.changed:
        data["changed"] = list(plan.changed)
    if plan.bars_root is not None:
        data["bars_root"] = plan.bars_root
    return json.dumps(data, indent=1) + "\n"


def write_plan(path: Path, plan: Plan, *, created_at: str, batch_size: int) -> None:
    write_text_atomic(path, plan_to_json(plan, created_at=created_at, batch_size=batch_size))


class PlanFileError(ValueError):
    """plan.json is missing, unreadable or not a plan."""


def read_plan(path: Path) -> Plan:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise TypeError("not a JSON object")
        return Plan(
            run_id=_typed(data["run_id"], str),
            total=int(data["total"]),
            completed=int(data["completed"]),
            quarantined=_symbols(data.get("quarantined") or []),
            assignments=tuple(_symbols(a) for a in _typed(data["workers"], list)),
            bars={str(s): int(n) for s, n in _typed(data.get("bars") or {}, dict).items()},
            created_at=_typed(data["created_at"], str) if data.get("created_at") else None,
            requested_workers=(
                int(data["requested_workers"]) if data.get("requested_workers") else None
            ),
            no_bars=_symbols(data.get("no_bars") or []),
            redo=_symbols(data.get("redo") or []),
            changed=_symbols(data.get("changed") or []),
            bars_root=_typed(data["bars_root"], str) if data.get("bars_root") else None,
        )
    except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
        raise PlanFileError(f"{path}: {exc}") from exc


def _typed(value: Any, kind: type) -> Any:
    if not isinstance(value, kind):
        raise TypeError(f"expected {kind.__name__}, got {type(value).__name__}")
    return value


def _symbols(value: Any) -> tuple[str, ...]:
    # A string is iterable too: without this check "AAPL" would read as four symbols.
    return tuple(_typed(s, str) for s in _typed(value, list))
