"""Synthetic small-cap 1-minute bars in the users' on-disk layout (docs/EVENTS.md §1).

The data is a per-minute random walk over 04:00-20:00 ET with a U-shaped RTH
volatility and volume profile, the opening and closing auctions' volume surges on
the 09:30 and 16:00 bars (as real tape has), sparse pre-market/after-hours bars,
overnight gaps and injected patterns (:mod:`tools.demo.patterns`) that make each of the six
detectors fire with the default thresholds.

Randomness comes from ``random.Random`` seeded with ``(seed, symbol)`` for a
symbol's profile and ``(seed, symbol, date)`` for a day; a day's per-minute draws
are one ``randbytes`` call turned into columns, so nothing loops per bar and the
rows depend only on the seed, never on progress display or file layout.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import random
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import polars as pl
import pyarrow as pa
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from orchestrator.run.io_errors import writing
from tools.demo.patterns import (
    MINUTES_PER_DAY,
    RTH_END,
    RTH_START,
    PatternInstance,
    overlay_frame,
    plan_day,
)

# 60 weekdays from here cross the US DST change of 2026-03-08, so the data holds
# both UTC offsets (and winter ET evening bars that fall on the next UTC date).
DEFAULT_START = dt.date(2026, 2, 2)
ET = "America/New_York"
_RTH_MINUTES = RTH_END - RTH_START
# Per-minute uniform streams drawn for every day, in this order.
_STREAMS = ("u_norm1", "u_norm2", "u_present", "u_wick_up", "u_wick_dn", "u_trade")
_MEAN_REVERSION = 0.25  # per day, of the log distance to the base price: keeps prices sane
_VOL_SIGMA = 0.6  # lognormal volume noise: heavy right tail
_FLOOR_SHARES = 20_000.0  # volume_spike minimums are 15,000 shares / $75,000 in PM/AH
_FLOOR_DOLLARS = 100_000.0
# The opening and closing crosses: their bars trade tens to hundreds of ordinary
# minutes (real closes more than opens). Multiples of the day's level, low-high.
_OPEN_AUCTION_SURGE = (15.0, 60.0)
_CLOSE_AUCTION_SURGE = (40.0, 160.0)

BAR_SCHEMA: dict[str, pl.DataType] = {
    "timestamp": pl.Datetime("ms", "UTC"),
    "open": pl.Float32(),
    "high": pl.Float32(),
    "low": pl.Float32(),
    "close": pl.Float32(),
    "volume": pl.Int64(),
    "vwap": pl.Float32(),
    "transactions": pl.Int32(),
}


@dataclass(frozen=True)
class DemoDataSpec:
    """What to generate: ``symbols`` x ``days`` weekdays from ``start`` into ``out``."""

    out: Path
    symbols: int
    days: int
    seed: int = 0
    layout: Literal["daily", "symbol"] = "daily"
    start: dt.date = DEFAULT_START

    def __post_init__(self) -> None:
        if self.symbols < 1 or self.days < 1:
            raise ValueError(f"symbols and days must be >= 1 (got {self.symbols}, {self.days})")
        if self.layout not in ("daily", "symbol"):
            raise ValueError(f"layout must be 'daily' or 'symbol' (got {self.layout!r})")


@dataclass(frozen=True)
class DemoDataSummary:
    """What was written; ``files`` counts bar files (``symbols.parquet`` excluded)."""

    symbols: tuple[str, ...]
    symbol_days: int
    bars: int
    files: int


@dataclass(frozen=True)
class _Profile:
    """Per-symbol constants."""

    base_price: float
    dollar_level: float  # mean dollar volume of a mid-day RTH minute
    trade_size: float  # mean shares per transaction


@dataclass(frozen=True)
class _Day:
    """Per-day scalars; returns are log returns."""

    gap: float
    trend: float  # drift over the RTH session
    sigma: float  # per-minute volatility in mid-day RTH
    activity: float  # volume multiplier for the day


def demo_symbols(n: int) -> list[str]:
    """``n`` plain tickers "DAAA", "DAAB", ...; the first ``n`` never depend on ``n``."""
    symbols: list[str] = []
    width, first = 3, 0
    for i in range(n):
        while i - first >= 26**width:  # widen once a width is exhausted: names stay unique
            first += 26**width
            width += 1
        k = i - first
        letters = [chr(ord("A") + (k // 26**p) % 26) for p in reversed(range(width))]
        symbols.append("D" + "".join(letters))
    return symbols


def trading_days(start: dt.date, count: int) -> list[dt.date]:
    """``count`` weekdays from ``start`` (inclusive); no holiday calendar."""
    days: list[dt.date] = []
    day = start
    while len(days) < count:
        if day.weekday() < 5:
            days.append(day)
        day += dt.timedelta(days=1)
    return days


def _profile(rng: random.Random) -> _Profile:
    # Mostly $1.5-$30 (log-uniform) so the min_price=1.0 filter leaves events; a few
    # sub-$1.5 names exercise it.
    low, high = (0.5, 1.5) if rng.random() < 0.1 else (1.5, 30.0)
    price = math.exp(rng.uniform(math.log(low), math.log(high)))
    # Median ~$15k per RTH minute (~$6M a day); a few thin names fall below the
    # $500k daily dollar-volume filter.
    dollars = min(max(15_000.0 * math.exp(rng.gauss(0.0, 1.0)), 1_200.0), 200_000.0)
    return _Profile(price, dollars, rng.uniform(80.0, 250.0))


def _day(rng: random.Random) -> _Day:
    # Small-cap gaps: usually a few %, sometimes 8-25%.
    gap = rng.gauss(0.0, 0.025)
    if rng.random() < 0.04:
        gap = rng.choice((1, -1)) * rng.uniform(0.08, 0.25)
    # A drift plus ~0.15-0.3%/min noise gives the wide (8-20%) daily ranges small caps
    # have, which consolidation_break's ATR test relies on.
    return _Day(gap, rng.gauss(0.0, 0.04), rng.uniform(0.0015, 0.003), math.exp(rng.gauss(0, 0.4)))


def _uniforms(chunks: list[bytes]) -> pl.Series:
    """Random bytes as Float64 uniforms in (0, 1), never exactly 0 or 1."""
    data = b"".join(chunks)
    raw = pa.Array.from_buffers(pa.uint32(), len(data) // 4, [None, pa.py_buffer(data)])
    return (pl.Series(raw).cast(pl.Float64) + 0.5) / 2.0**32


def _draw_days(seed: int, symbol: str, dates: list[dt.date]) -> tuple[list[_Day], pl.DataFrame]:
    """Day scalars, and one row per (day, minute) with its uniform draws and pattern."""
    days: list[_Day] = []
    plans: list[list[PatternInstance]] = []
    streams: list[list[bytes]] = [[] for _ in _STREAMS]
    block = 4 * MINUTES_PER_DAY
    for date in dates:
        rng = random.Random(f"{seed}/{symbol}/{date.isoformat()}")
        days.append(_day(rng))
        plans.append(plan_day(rng))
        blob = rng.randbytes(block * len(_STREAMS))
        for k, chunks in enumerate(streams):
            chunks.append(blob[k * block : (k + 1) * block])
    n = len(dates) * MINUTES_PER_DAY
    index = pl.int_range(n, dtype=pl.Int32, eager=True)
    minutes = pl.DataFrame(
        {"day": index // MINUTES_PER_DAY, "minute": index % MINUTES_PER_DAY}
        | {name: _uniforms(chunks) for name, chunks in zip(_STREAMS, streams, strict=True)}
    )
    overlay = overlay_frame(plans)
    return days, minutes.join(overlay, on=["day", "minute"], how="left", maintain_order="left")


# The minute of the day and where it sits against the regular session (RTH), read by
# the profiles below; built once.
_MINUTE = pl.col("minute")
_RTH = (_MINUTE >= RTH_START) & (_MINUTE < RTH_END)
_SINCE_OPEN = (_MINUTE - RTH_START).cast(pl.Float64)
_TO_CLOSE = (RTH_END - 1 - _MINUTE).cast(pl.Float64)
# Distance in minutes to the regular session, for the extended-hours profiles.
_TO_SESSION = (
    pl.when(_MINUTE < RTH_START).then(RTH_START - _MINUTE).otherwise(_MINUTE - RTH_END + 1)
).cast(pl.Float64)
# The auction bars always exist (EVENTS.md §1).
_AUCTION = (_MINUTE == RTH_START) | (_MINUTE == RTH_END)


def _returns(minutes: pl.DataFrame, days: list[_Day]) -> pl.DataFrame:
    """Per minute: log return ``ret``, wicks, ``present``, and ``volx`` (x the day's level)."""
    day_table = pl.DataFrame(
        {
            "day": pl.int_range(len(days), dtype=pl.Int32, eager=True),
            "trend": [d.trend for d in days],
            "sigma": [d.sigma for d in days],
        }
    )
    sigma = _minute_sigma()
    z_ret, z_vol = _normal_pair()
    drift = pl.when(_RTH).then(pl.col("trend") / _RTH_MINUTES).otherwise(0.0)
    patterned = pl.col("ov_ret").is_not_null()
    # Mean-one volume noise, larger on bigger moves (volume follows volatility).
    noise = (_VOL_SIGMA * z_vol - _VOL_SIGMA**2 / 2).exp() * (0.6 + 0.5 * z_ret.abs())
    return minutes.join(day_table, on="day", maintain_order="left").select(
        "day",
        "minute",
        "u_trade",
        "ov_floor",
        pl.when(patterned)
        .then(pl.col("ov_ret") + pl.col("ov_noise") * z_ret)
        .otherwise(drift + sigma * z_ret)
        .alias("ret"),
        _wick("u_wick_up", sigma, patterned).alias("wick_up"),
        _wick("u_wick_dn", sigma, patterned).alias("wick_dn"),
        (patterned | _AUCTION | (pl.col("u_present") < _presence_probability())).alias("present"),
        pl.when(_AUCTION)
        .then(_auction_surge() * (0.15 * z_vol).exp())
        .when(patterned)
        .then(pl.col("ov_volx") * (0.15 * z_vol).exp())
        .otherwise(_volume_shape() * noise)
        .alias("volx"),
    )


def _minute_sigma() -> pl.Expr:
    """The day's ``sigma`` at each minute: U-shaped over RTH, quieter in PM/AH."""
    vol_shape = 1 + 1.2 * (-_SINCE_OPEN / 25).exp() + 0.4 * (-_TO_CLOSE / 25).exp()
    return pl.col("sigma") * pl.when(_RTH).then(vol_shape).otherwise(0.35)


def _volume_shape() -> pl.Expr:
    """Volume over the day, as a multiple of the day's level: U-shaped over RTH, thin
    in PM/AH and thinner away from the session."""
    return (
        pl.when(_RTH)
        .then(1 + 2.0 * (-_SINCE_OPEN / 20).exp() + 0.5 * (-_TO_CLOSE / 15).exp())
        .otherwise(0.08 + 0.2 * (-_TO_SESSION / 45).exp())
    )


def _presence_probability() -> pl.Expr:
    # PM/AH bars exist in 5-30% of minutes, densest next to the session; RTH ~all.
    return pl.when(_RTH).then(0.985).otherwise(0.05 + 0.25 * (-_TO_SESSION / 45).exp())


def _auction_surge() -> pl.Expr:
    """The auction bar's volume multiple. Drawn from the presence draw, unused on the
    auction bars (they are always present), so every other minute keeps its values."""

    def surge(low_high: tuple[float, float]) -> pl.Expr:
        low, high = low_high
        return low + (high - low) * pl.col("u_present")

    return (
        pl.when(_MINUTE == RTH_START)
        .then(surge(_OPEN_AUCTION_SURGE))
        .otherwise(surge(_CLOSE_AUCTION_SURGE))
    )


def _normal_pair() -> tuple[pl.Expr, pl.Expr]:
    """Two independent standard normals per minute (Box-Muller on two uniform draws):
    the return's and the volume's."""
    radius = (-2 * pl.col("u_norm1").log()).sqrt()
    z_ret = radius * (2 * math.pi * pl.col("u_norm2")).cos()
    z_vol = radius * (2 * math.pi * pl.col("u_norm2")).sin()
    return z_ret, z_vol


def _wick(u: str, sigma: pl.Expr, patterned: pl.Expr) -> pl.Expr:
    """A wick from the uniform column ``u``: the pattern's scaled, else exponential."""
    uniform = pl.col(u)
    baseline = sigma * 0.5 * -uniform.log()  # exponential wicks
    return pl.when(patterned).then(pl.col("ov_wick") * (0.5 + uniform)).otherwise(baseline)


def _day_opens(totals: list[float], days: list[_Day], base_price: float) -> list[float]:
    """Log price at 04:00 of each day: yesterday's close, a gap, and mean reversion."""
    log_base = math.log(base_price)
    opens: list[float] = []
    close = log_base
    for total, day in zip(totals, days, strict=True):
        start = close + day.gap - _MEAN_REVERSION * (close - log_base)
        opens.append(start)
        close = start + total
    return opens


def _price(expr: pl.Expr) -> pl.Expr:
    # Trade prices: cents from $1 up, 4 decimals below (as the exchanges quote them).
    return pl.when(expr >= 1.0).then(expr.round(2)).otherwise(expr.round(4)).clip(lower_bound=1e-4)


def _bars(
    frame: pl.DataFrame, days: list[_Day], dates: list[dt.date], profile: _Profile
) -> pl.DataFrame:
    """Turns minute returns into the bar file's columns, keeping only present minutes."""
    totals = frame.group_by("day", maintain_order=True).agg(pl.col("ret").sum())["ret"].to_list()
    day_table = pl.DataFrame(
        {
            "day": pl.int_range(len(days), dtype=pl.Int32, eager=True),
            "date": pl.Series(dates, dtype=pl.Date),
            "day_open": _day_opens(totals, days, profile.base_price),
            "activity": [d.activity for d in days],
        }
    )
    log_close = pl.col("day_open") + pl.col("ret").cum_sum().over("day")
    close = log_close.exp()
    opened = (log_close - pl.col("ret")).exp()
    shares = profile.dollar_level * pl.col("activity") * pl.col("volx") / close
    floored = pl.max_horizontal(shares, pl.lit(_FLOOR_SHARES), _FLOOR_DOLLARS / close)
    et_clock = pl.col("date").cast(pl.Datetime("ms")) + pl.duration(minutes=240 + pl.col("minute"))
    raw = (
        frame.join(day_table, on="day", maintain_order="left")
        .filter("present")
        .select(
            et_clock.dt.replace_time_zone(ET).dt.convert_time_zone("UTC").alias("timestamp"),
            _price(opened).alias("open"),
            _price(pl.max_horizontal(opened, close) * pl.col("wick_up").exp()).alias("high"),
            _price(pl.min_horizontal(opened, close) * (-pl.col("wick_dn")).exp()).alias("low"),
            _price(close).alias("close"),
            pl.when(pl.col("ov_floor")).then(floored).otherwise(shares).alias("volume"),
            "u_trade",
        )
        .with_columns(pl.col("open", "high", "low", "close").cast(pl.Float32))
    )
    # Re-establish low <= open, close <= high after rounding, in the stored Float32.
    high = pl.max_horizontal("open", "high", "low", "close")
    low = pl.min_horizontal("open", "high", "low", "close")
    volume = pl.col("volume").round().clip(lower_bound=1).cast(pl.Int64)
    trade = profile.trade_size * (0.6 + 0.8 * pl.col("u_trade"))
    return (
        raw.with_columns(high.alias("high"), low.alias("low"), volume.alias("volume"))
        .with_columns(
            ((pl.col("high") + pl.col("low") + pl.col("close")) / 3)
            .clip(pl.col("low"), pl.col("high"))
            .alias("vwap"),
            (pl.col("volume") / trade)
            .round()
            .clip(lower_bound=1)
            .cast(pl.Int32)
            .alias("transactions"),
        )
        .select(BAR_SCHEMA.keys())
        .cast(pl.Schema(BAR_SCHEMA))
    )


def demo_symbol_bars(seed: int, symbol: str, dates: list[dt.date]) -> pl.DataFrame:
    """All bars of one symbol over ``dates``, sorted by time, in the bar file schema."""
    profile = _profile(random.Random(f"{seed}/{symbol}"))
    days, minutes = _draw_days(seed, symbol, dates)
    return _bars(_returns(minutes, days), days, dates, profile)


def _write_parquet(frame: pl.DataFrame, path: Path) -> None:
    # Atomic: a reader never sees a half-written file, a crash leaves only a .tmp.
    tmp = path.with_name(path.name + ".tmp")
    try:
        with writing(path):  # a refused write: one line naming the file, exit 5
            frame.write_parquet(tmp, compression="zstd")
            os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _write_symbol(bars: pl.DataFrame, symbol: str, spec: DemoDataSpec) -> int:
    """Writes one symbol's bars in the spec's layout; returns the number of files."""
    if spec.layout == "symbol":
        _write_parquet(bars, spec.out / f"{symbol}.parquet")
        return 1
    folder = spec.out / f"symbol={symbol}"
    folder.mkdir(parents=True, exist_ok=True)
    # The users' partitions are UTC dates: winter ET evening bars land on the next one.
    keyed = bars.with_columns(pl.col("timestamp").dt.date().alias("_utc_date"))
    parts = keyed.partition_by("_utc_date", maintain_order=True, include_key=False, as_dict=True)
    for (utc_date,), part in parts.items():
        _write_parquet(part, folder / f"date={utc_date.isoformat()}.parquet")
    return len(parts)


@contextmanager
def _progress(enabled: bool, total: int) -> Iterator[Callable[[str], None]]:
    """Yields ``advance(symbol)``; a rich bar on stderr when enabled, else a no-op."""
    if not enabled:
        yield lambda _symbol: None
        return
    columns = (
        TextColumn("demo bars {task.fields[symbol]:<8}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("symbols", total=total, symbol="")

        def advance(symbol: str) -> None:
            bar.update(task, advance=1, symbol=symbol)

        yield advance


def generate_demo_bars(spec: DemoDataSpec, *, progress: bool = False) -> DemoDataSummary:
    """Writes the demo bars and ``symbols.parquet`` under ``spec.out``.

    Files of the same name are replaced; other files under ``spec.out`` are left alone
    (so generate into an empty folder: a leftover day would join the symbol's history).
    """
    symbols = demo_symbols(spec.symbols)
    dates = trading_days(spec.start, spec.days)
    spec.out.mkdir(parents=True, exist_ok=True)
    bars = files = 0
    with _progress(progress, len(symbols)) as advance:
        for symbol in symbols:
            frame = demo_symbol_bars(spec.seed, symbol, dates)
            files += _write_symbol(frame, symbol, spec)
            bars += frame.height
            advance(symbol)
    listing = pl.DataFrame({"symbol": symbols}, schema={"symbol": pl.String})
    _write_parquet(listing, spec.out / "symbols.parquet")
    return DemoDataSummary(tuple(symbols), len(symbols) * len(dates), bars, files)
