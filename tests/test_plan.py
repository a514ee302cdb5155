"""The launch plan: stride split over work-ordered symbols, legacy printout, plan.json."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from orchestrator.run.plan import (
    Plan,
    PlanFileError,
    format_plan,
    make_plan,
    plan_to_json,
    read_plan,
    write_plan,
)

BARS = {
    "AAPL": 900,
    "MSFT": 800,
    "TSLA": 800,  # ties with MSFT: by symbol
    "NVDA": 700,
    "AMD": 500,
    "IBM": 400,
    "F": 300,
    "GE": 200,
    "T": 100,
}


def plan_of(
    symbols: list[str] | dict[str, int],
    *,
    workers: int,
    completed: tuple[str, ...] = (),
    quarantined: tuple[str, ...] = (),
    bars: dict[str, int] | None = None,
    run_id: str = "run-1",
) -> Plan:
    return make_plan(
        run_id=run_id,
        universe=frozenset(symbols),
        completed=frozenset(completed),
        quarantined=frozenset(quarantined),
        bars=BARS if bars is None else bars,
        workers=workers,
    )


# -- make_plan ---------------------------------------------------------------------------


def test_stride_split_over_symbols_ordered_by_bars_descending_then_symbol() -> None:
    plan = plan_of(list(BARS), workers=3)

    ordered = ["AAPL", "MSFT", "TSLA", "NVDA", "AMD", "IBM", "F", "GE", "T"]
    assert plan.assignments == (
        ("AAPL", "NVDA", "F"),
        ("MSFT", "AMD", "GE"),
        ("TSLA", "IBM", "T"),
    )
    for k in range(3):
        assert plan.assignments[k] == tuple(ordered[k::3])
    assert plan.total == 9
    assert plan.completed == 0
    assert plan.quarantined == ()
    assert plan.remaining == 9


def test_symbols_without_a_bar_count_come_last_by_symbol() -> None:
    plan = plan_of(["ZZZ", "AAA", "MID", "BIG"], workers=1, bars={"BIG": 10, "MID": 5})

    assert plan.assignments == (("BIG", "MID", "AAA", "ZZZ"),)
    assert plan.bars == {"BIG": 10, "MID": 5, "AAA": 0, "ZZZ": 0}


def test_ties_are_broken_by_symbol_whatever_the_input_order() -> None:
    bars = {s: 1 for s in "EDCBA"}
    plan = plan_of(list("EDCBA"), workers=2, bars=bars)

    assert plan.assignments == (("A", "C", "E"), ("B", "D"))


def test_completed_and_quarantined_symbols_are_not_assigned() -> None:
    plan = plan_of(list(BARS), workers=2, completed=("AAPL", "AMD"), quarantined=("TSLA",))

    assigned = [s for a in plan.assignments for s in a]
    assert sorted(assigned) == sorted(set(BARS) - {"AAPL", "AMD", "TSLA"})
    assert plan.assignments == (("MSFT", "IBM", "GE"), ("NVDA", "F", "T"))
    assert plan.total == 9
    assert plan.completed == 2
    assert plan.quarantined == ("TSLA",)
    assert plan.remaining == 6
    assert set(plan.bars) == set(assigned)


def test_completed_and_quarantined_outside_the_universe_are_not_counted() -> None:
    plan = plan_of(["A", "B", "C"], workers=1, completed=("A", "X"), quarantined=("Y", "B"))

    assert plan.completed == 1
    assert plan.quarantined == ("B",)
    assert plan.assignments == (("C",),)


def test_quarantined_symbols_are_sorted() -> None:
    plan = plan_of(list(BARS), workers=1, quarantined=("T", "AMD", "GE"))
    assert plan.quarantined == ("AMD", "GE", "T")


def test_more_workers_than_symbols_are_capped_at_one_per_symbol() -> None:
    plan = plan_of(["AAPL", "MSFT"], workers=5)

    assert plan.assignments == (("AAPL",), ("MSFT",))
    assert plan.capped and plan.requested_workers == 5
    assert plan.remaining == 2
    assert not plan_of(["AAPL", "MSFT"], workers=2).capped


def test_everything_done_gives_one_worker_with_nothing_to_do() -> None:
    plan = plan_of(["A", "B"], workers=3, completed=("A",), quarantined=("B",))

    assert plan.assignments == ((),)
    assert plan.remaining == 0
    assert plan.remaining_bars == 0


def test_bars_per_worker_and_in_total() -> None:
    plan = plan_of(list(BARS), workers=3)

    assert plan.worker_bars(0) == 900 + 700 + 300
    assert plan.worker_bars(1) == 800 + 500 + 200
    assert plan.worker_bars(2) == 800 + 400 + 100
    assert plan.remaining_bars == sum(BARS.values())


@pytest.mark.parametrize("workers", [0, -1])
def test_fewer_than_one_worker_is_an_error(workers: int) -> None:
    with pytest.raises(ValueError, match="workers"):
        plan_of(list(BARS), workers=workers)


# -- format_plan -------------------------------------------------------------------------


def test_format_plan_has_the_legacy_lines() -> None:
    plan = plan_of(list(BARS), workers=2, completed=("AAPL",))

    text = format_plan(plan)
    lines = text.splitlines()

    assert "Total symbols: 9" in lines
    assert "Completed symbols (checkpoint): 1" in lines
    assert any(line.startswith("Remaining symbols: 8") for line in lines)
    assert not any(line.startswith("Quarantined") for line in lines)
    workers = [line for line in lines if line.startswith("Worker ")]
    assert len(workers) == 2
    # MSFT TSLA NVDA AMD IBM F GE T
    assert workers[0].startswith("Worker 0: 4 symbols (MSFT ... GE)")
    assert workers[1].startswith("Worker 1: 4 symbols (TSLA ... T)")


def test_format_plan_shows_bars_in_millions() -> None:
    bars = {"A": 3_000_000, "B": 1_500_000, "C": 250_000}
    plan = plan_of(list(bars), workers=2, bars=bars)

    lines = format_plan(plan).splitlines()

    assert "Remaining symbols: 3 (4.75 M bars)" in lines
    assert "Worker 0: 2 symbols (A ... C), 3.25 M bars" in lines
    assert "Worker 1: 1 symbols (B ... B), 1.50 M bars" in lines


def test_format_plan_has_one_line_per_real_worker_and_says_it_capped() -> None:
    plan = plan_of(["AAPL", "MSFT"], workers=100_000)

    lines = format_plan(plan).splitlines()

    workers = [line for line in lines if re.match(r"Worker \d+: ", line)]
    assert [w.split(":")[0] for w in workers] == ["Worker 0", "Worker 1"]
    assert workers[0].startswith("Worker 0: 1 symbols (AAPL ... AAPL)")
    assert "Workers: 2 (capped from 100000: one per remaining symbol at most)" in lines
    assert not any("capped" in line for line in format_plan(plan_of(["A"], workers=1)).splitlines())


def test_format_plan_lists_quarantined_symbols() -> None:
    plan = plan_of(list(BARS), workers=1, quarantined=("IBM", "F"))

    lines = format_plan(plan).splitlines()

    assert "Quarantined symbols (skipped): 2 (F IBM)" in lines
    assert any(line.startswith("Remaining symbols: 7") for line in lines)


def test_format_plan_shows_at_most_ten_quarantined_symbols() -> None:
    universe = [f"S{n:02d}" for n in range(15)]
    plan = plan_of(universe, workers=1, quarantined=tuple(universe[:12]), bars={})

    [line] = [x for x in format_plan(plan).splitlines() if x.startswith("Quarantined")]

    assert line == "Quarantined symbols (skipped): 12 (" + " ".join(universe[:10]) + " ...)"


def test_format_plan_line_order() -> None:
    plan = plan_of(list(BARS), workers=2, completed=("T",), quarantined=("F",))

    heads = [line.split(":")[0] for line in format_plan(plan).splitlines()]

    assert heads == [
        "Total symbols",
        "Completed symbols (checkpoint)",
        "Quarantined symbols (skipped)",
        "Remaining symbols",
        "Worker 0",
        "Worker 1",
    ]


# -- plan.json ---------------------------------------------------------------------------


def test_plan_json_round_trip(tmp_path: Path) -> None:
    plan = plan_of(list(BARS), workers=4, completed=("AAPL",), quarantined=("GE", "F"))
    path = tmp_path / "run" / "plan.json"

    write_plan(path, plan, created_at="2024-05-01T12:00:00", batch_size=25)

    assert read_plan(path) == replace(plan, created_at="2024-05-01T12:00:00")
    assert not [p for p in path.parent.iterdir() if p.name != "plan.json"]  # no temp file left


def test_plan_json_round_trip_with_empty_assignments(tmp_path: Path) -> None:
    plan = plan_of(["AAPL"], workers=3, completed=("AAPL",))
    path = tmp_path / "plan.json"

    write_plan(path, plan, created_at="2024-05-01T12:00:00", batch_size=1)

    back = read_plan(path)
    assert back == replace(plan, created_at="2024-05-01T12:00:00")
    assert back.assignments == ((),)


def test_plan_json_round_trip_of_a_capped_plan(tmp_path: Path) -> None:
    plan = plan_of(["AAPL"], workers=3)
    path = tmp_path / "plan.json"

    write_plan(path, plan, created_at="2024-05-01T12:00:00", batch_size=1)

    back = read_plan(path)
    assert back == replace(plan, created_at="2024-05-01T12:00:00")
    assert back.assignments == (("AAPL",),) and back.requested_workers == 3


def test_plan_json_content() -> None:
    plan = plan_of(["AAPL", "MSFT", "T"], workers=2, quarantined=("T",))

    data = json.loads(plan_to_json(plan, created_at="2024-05-01T12:00:00", batch_size=25))

    assert data == {
        "run_id": "run-1",
        "created_at": "2024-05-01T12:00:00",
        "batch_size": 25,
        "total": 3,
        "completed": 0,
        "quarantined": ["T"],
        "workers": [["AAPL"], ["MSFT"]],
        "bars": {"AAPL": 900, "MSFT": 800},
    }


def test_plan_json_is_stable_text() -> None:
    plan = plan_of(list(BARS), workers=3)
    a = plan_to_json(plan, created_at="x", batch_size=1)
    b = plan_to_json(plan_of(list(reversed(BARS)), workers=3), created_at="x", batch_size=1)
    assert a == b
    assert a.endswith("\n")


def test_read_plan_of_a_missing_file_raises_plan_file_error(tmp_path: Path) -> None:
    with pytest.raises(PlanFileError, match=r"plan\.json"):
        read_plan(tmp_path / "plan.json")


def test_read_plan_of_a_directory_raises_plan_file_error(tmp_path: Path) -> None:
    with pytest.raises(PlanFileError):
        read_plan(tmp_path)


def _valid() -> dict[str, Any]:
    return json.loads(
        plan_to_json(plan_of(["AAPL", "MSFT"], workers=2), created_at="x", batch_size=1)
    )


def _without(key: str) -> dict[str, Any]:
    data = _valid()
    del data[key]
    return data


def _with(**changes: Any) -> dict[str, Any]:
    return {**_valid(), **changes}


GARBAGE: list[tuple[str, bytes]] = [
    ("empty", b""),
    ("not json", b"this is not json"),
    ("truncated", b'{"run_id": "r", "total": 3'),
    ("not utf-8", b'{"run_id": "\xff\xfe"}'),
    ("json null", b"null"),
    ("json list", b"[1, 2, 3]"),
    ("json string", b'"plan"'),
    ("json number", b"42"),
    ("empty object", b"{}"),
    ("no run_id", json.dumps(_without("run_id")).encode()),
    ("no total", json.dumps(_without("total")).encode()),
    ("no completed", json.dumps(_without("completed")).encode()),
    ("no workers", json.dumps(_without("workers")).encode()),
    ("total not a number", json.dumps(_with(total="many")).encode()),
    ("completed null", json.dumps(_with(completed=None)).encode()),
    ("workers a number", json.dumps(_with(workers=2)).encode()),
    ("workers null", json.dumps(_with(workers=None)).encode()),
    ("a worker a number", json.dumps(_with(workers=[["AAPL"], 7])).encode()),
    ("bars a list", json.dumps(_with(bars=[["AAPL", 1]])).encode()),
    ("bars not numbers", json.dumps(_with(bars={"AAPL": "lots"})).encode()),
    ("quarantined a number", json.dumps(_with(quarantined=5)).encode()),
]


@pytest.mark.parametrize("content", [c for _, c in GARBAGE], ids=[name for name, _ in GARBAGE])
def test_read_plan_of_garbage_raises_plan_file_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "plan.json"
    path.write_bytes(content)

    with pytest.raises(PlanFileError, match=r"plan\.json"):
        read_plan(path)


def test_plan_file_error_is_a_value_error() -> None:
    assert issubclass(PlanFileError, ValueError)


# Type-confused documents: a string where a list of symbols belongs must not be split
# into one-letter symbols, nor a null run_id become the run "None".
CONFUSED: list[tuple[str, dict[str, Any]]] = [
    ("a worker a string", _with(workers=["AAPL", ["MSFT"]])),
    ("quarantined a string", _with(quarantined="TSLA")),
    ("run_id null", _with(run_id=None)),
]


@pytest.mark.parametrize("data", [d for _, d in CONFUSED], ids=[name for name, _ in CONFUSED])
def test_read_plan_rejects_type_confused_documents(tmp_path: Path, data: dict[str, Any]) -> None:
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(data), encoding="utf-8")

    with pytest.raises(PlanFileError):
        read_plan(path)


# -- expected bars: exact footers for small universes, estimated from sizes beyond ---
def test_expected_bars_are_exact_up_to_the_threshold_and_close_beyond(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from detector.bars import count_bars
    from orchestrator.launch import work_estimate
    from tools.demo.data import DemoDataSpec, generate_demo_bars

    daily, single = tmp_path / "daily", tmp_path / "symbol"
    generate_demo_bars(DemoDataSpec(out=daily, symbols=6, days=20, seed=1))
    generate_demo_bars(DemoDataSpec(out=single, symbols=6, days=20, seed=1, layout="symbol"))
    for root in (daily, single):
        symbols = sorted(p.name.split("=")[-1].removesuffix(".parquet") for p in root.iterdir()
                         if p.name.startswith("symbol=") or p.name.startswith("D"))  # fmt: skip
        exact = {s: count_bars(s, root) for s in symbols}
        found = work_estimate.expected_bars(symbols, root)
        assert found.exact and found.bars == exact
        monkeypatch.setattr(work_estimate, "EXACT_UP_TO", 0)
        monkeypatch.setattr(work_estimate, "SAMPLE_FILES", 7)  # a sample, not every file
        estimated = work_estimate.expected_bars(symbols, root)
        assert not estimated.exact
        for symbol in symbols:
            assert abs(estimated.bars[symbol] - exact[symbol]) <= 0.15 * exact[symbol], symbol
        monkeypatch.undo()
