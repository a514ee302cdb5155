"""Ticker validation: nothing else may reach a filesystem path."""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from detector.errors import ExitCode, IntradayEventsError, InvalidSymbolError

_TICKER = re.compile(r"^[A-Z0-9._-]{1,16}$")


def is_valid_symbol(symbol: str) -> bool:
    """A plain ticker: 1-16 of ``A-Z 0-9 . - _`` and not a path component like ``..``."""
    return bool(_TICKER.match(symbol)) and symbol.strip(".") != ""


def validate_symbol(symbol: str) -> str:
    if not is_valid_symbol(symbol):
        raise InvalidSymbolError([symbol])
    return symbol


def validate_symbols(symbols: Iterable[str]) -> list[str]:
    """Return the symbols in first-seen order without repeats; all invalid ones in one error."""
    seen: dict[str, None] = {}
    bad: list[str] = []
    for raw in symbols:
        symbol = raw.strip()
        if not symbol:
            continue
        if not is_valid_symbol(symbol):
            bad.append(symbol)
        else:
            seen.setdefault(symbol, None)
    if bad:
        raise InvalidSymbolError(bad)
    return list(seen)


def read_symbol_file(path: Path) -> list[str]:
    """Symbols from ``.parquet`` (unique values of column ``symbol``) or ``.txt``/``.csv``
    (one per line). Blanks and repeats are ignored; invalid tickers raise one error."""
    if path.suffix.lower() == ".parquet":
        import polars as pl

        try:
            column = pl.read_parquet(path, columns=["symbol"])["symbol"]
        except Exception as exc:
            raise SymbolFileError(path, f"cannot read column 'symbol': {exc}") from exc
        return validate_symbols(str(s) for s in column.drop_nulls().to_list())
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise SymbolFileError(path, exc.strerror or str(exc)) from exc
    # A .csv may carry a header named "symbol" and further columns.
    cells = [line.split(",")[0].strip() for line in lines]
    if cells and cells[0].lower() == "symbol":
        cells = cells[1:]
    return validate_symbols(cells)


class SymbolFileError(IntradayEventsError):
    exit_code = ExitCode.USAGE

    def __init__(self, path: Path, problem: str) -> None:
        self.path = path
        self.problem = problem
        super().__init__(f"{path}: {problem}")
