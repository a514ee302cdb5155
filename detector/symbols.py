"""Ticker validation: nothing else may reach a filesystem path."""

from __future__ import annotations

import re
from collections.abc import Iterable

from detector.errors import InvalidSymbolError

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
