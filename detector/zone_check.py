"""Does the configured time zone fit the bars? Judged from where their volume peaks.

Measured on real tape (shared docs, TIMEZONE-GUARD.md): read in the right zone, the
opening and closing crosses put a symbol's heaviest minutes at 09:30 and 16:00 New
York time (09:31 and 15:59 on some feeds); read in a wrong zone, never. So the
volume-by-minute profile of several days is shifted by every whole half-hour, and
the shift that puts the most volume into the auction windows [09:25, 09:35] ∪
[15:55, 16:05] is the offset the bars need: 0 when the reading is right; +4 h in
summer and +5 h in winter for New York wall-clock times read as UTC.

Each day weighs the same (its volume is taken as shares of the day's total), so one
day of news cannot outvote the rest, and the two daylight-saving periods of New
York are judged apart: a fixed UTC-5 reading is right in winter and an hour off in
summer. A period is judged from :data:`MIN_DAYS` days (symbol-days when pooled) on,
and contradicts the reading only when the best shift holds at least
:data:`MIN_SHARE` of the volume and :data:`MIN_RATIO` times what the reading puts
there: bars without auction surges (flat synthetic volume, bursts at random
minutes) never reach that, whatever their zone.

Pure: frames in, frozen verdicts out. ``detector.cleaning`` computes the profile of
every symbol before the [04:00, 20:00) cut (which would throw away the evidence of
a shifted session); ``detector.zone_sample`` reads a few symbols before a run.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal
from zoneinfo import ZoneInfo

import polars as pl

MINUTES_PER_DAY = 24 * 60
HALF_HOUR = 30
SHIFTS = MINUTES_PER_DAY // HALF_HOUR  # 48 shifts, from -23 to +24 half-hours
# The auction windows in New York minutes after midnight: [09:25, 09:35], [15:55, 16:05].
WINDOW_STARTS = (9 * 60 + 25, 15 * 60 + 55)
WINDOW_WIDTH = 11  # minutes, both ends included
MIN_DAYS = 10.0  # days (symbol-days when pooled) of a period before it is judged
MIN_SHARE = 0.10  # of the volume in the windows at the best shift
MIN_RATIO = 3.0  # best shift over the configured reading
# New York's UTC offset (minutes) in each period, and a day inside each.
Period = Literal["summer", "winter"]
PERIOD_OFFSETS: dict[Period, int] = {"summer": -240, "winter": -300}
_PERIOD_DAYS: dict[Period, datetime] = {
    "summer": datetime(2024, 7, 1, 12, tzinfo=UTC),
    "winter": datetime(2024, 1, 15, 12, tzinfo=UTC),
}
# Zones suggested when their offsets fit what the bars need, most likely first.
CANDIDATE_ZONES = (
    "America/New_York",
    "UTC",
    "America/Chicago",
    "America/Denver",
    "America/Los_Angeles",
    "Europe/London",
    "Europe/Berlin",
    "Asia/Tokyo",
)


@dataclass(frozen=True)
class PeriodVerdict:
    """One daylight-saving period of New York (by the bars' instants as read)."""

    period: Period
    # Days as read (symbol-days when pooled); a trading day that a wrong reading splits
    # at New York midnight counts once per part, each part weighing as a whole day.
    days: float
    best_offset: int  # half-hours to add to the instants as read
    share_at_zero: float  # mean daily share of volume in the windows, as read
    share_at_best: float  # ... once shifted by best_offset

    @property
    def judged(self) -> bool:
        return self.days >= MIN_DAYS

    @property
    def contradicts(self) -> bool:
        return (
            self.judged
            and self.best_offset != 0
            and self.share_at_best >= MIN_SHARE
            and self.share_at_best >= MIN_RATIO * self.share_at_zero
        )

    def describe(self) -> str:
        at_best = format_offset(self.best_offset)
        return (
            f"{self.period}: {self.days:.0f} days, {self.share_at_zero:.1%} of volume in the "
            f"auction windows as read, {self.share_at_best:.1%} at {at_best}"
        )


@dataclass(frozen=True)
class ZoneVerdict:
    """Whether the instants as read put the volume peaks on the auctions."""

    periods: tuple[PeriodVerdict, ...] = ()

    @property
    def judged(self) -> bool:
        """Some period had enough days to be judged."""
        return any(p.judged for p in self.periods)

    @property
    def fits(self) -> bool:
        """No judged period contradicts the reading (too little data fits)."""
        return not any(p.contradicts for p in self.periods)

    @property
    def offset_half_hours(self) -> int:
        """The shift the bars need: that of the contradicting period with the most days,
        else 0."""
        wrong = sorted((p for p in self.periods if p.contradicts), key=lambda p: -p.days)
        return wrong[0].best_offset if wrong else 0

    def offsets_text(self) -> str:
        """The contradicting periods' distances from the auctions: ``4-5 h``, ``30 min``."""
        hours = sorted({abs(p.best_offset) for p in self.periods if p.contradicts})
        if not hours:
            return "0 h"
        texts = [format_offset(h).lstrip("+") for h in hours]
        if len(texts) == 2 and all(t.endswith(" h") for t in texts):
            return f"{texts[0][:-2]}-{texts[1]}"
        return " or ".join(texts)

    def describe(self) -> str:
        return "; ".join(p.describe() for p in self.periods) or "no bars"

    def note(self) -> str:
        """A short note for a suspect symbol: the shift per contradicting period."""
        return ", ".join(
            f"{p.period} {format_offset(p.best_offset)}" for p in self.periods if p.contradicts
        )


def format_offset(half_hours: int) -> str:
    """``+4 h``, ``-5 h``, ``+30 min``, ``-2.5 h``."""
    sign = "+" if half_hours >= 0 else "-"
    n = abs(half_hours)
    if n == 1:
        return f"{sign}30 min"
    return f"{sign}{n // 2} h" if n % 2 == 0 else f"{sign}{n / 2:.1f} h"


def auction_profile(clocked: pl.DataFrame) -> pl.DataFrame:
    """Each day's volume shares per shift, summed per period: all :func:`zone_verdict` needs.

    ``clocked`` has ``timestamp`` (UTC), ``date`` and ``minute`` (New York day and minute
    after midnight, from :func:`detector.et_clock.with_et_clock`) and ``volume``. Returns
    ``period`` (New York's UTC offset in minutes that day), ``k`` (the shift in
    half-hours that moves the minute into the opening window; null for minutes no whole
    half-hour shift moves into a window) and ``weight``; a period's weights add up to its
    number of days. Profiles of several symbols pool by concatenation.

    The two windows are 390 minutes (13 half-hours) apart, so a minute that some shift
    moves into the opening window is moved into the closing one by that shift plus 13:
    one key per bar (day and shift, as one integer). In bars sorted by time a key's bars
    are runs of adjacent rows, so a run's volume is the difference of the running volume
    at its last row and at the previous run's: a few element-wise passes over the bars
    leave a few dozen rows per day, and everything else works on those. (Grouping the
    bars by key, by hash or by run, cost two to three times as much: tens of thousands
    of groups.) It runs for every symbol a run detects: about 5 ms at 750 days.
    """
    frame = clocked.select("timestamp", "date", "minute", "volume").drop_nulls("timestamp")
    if not frame.get_column("timestamp").is_sorted():
        frame = frame.sort("timestamp", maintain_order=True)
    day = pl.col("date").cast(pl.Int64)
    key = pl.col("key")
    last_of_run = (key != key.shift(-1)).fill_null(True)
    first_of_run = (key != key.shift(1)).fill_null(True)
    keyed = frame.select(
        (day * _CODES + pl.lit(_SHIFT_CODES).gather(pl.col("minute"))).alias("key"),
        pl.col("volume").fill_null(0).clip(lower_bound=0).cum_sum().alias("cum"),
        "date",
        "minute",
        "timestamp",
    )
    # New York's offset as each bar's clock reads it (local minus UTC minutes). It
    # changes at most once a day, so a run's lowest is at its first or last row.
    offset = day * MINUTES_PER_DAY + pl.col("minute") - pl.col("timestamp").dt.epoch("ms") // 60_000
    at_first = pl.when(first_of_run).then(pl.col("offset")).otherwise(pl.col("offset").shift(1))
    cum = pl.col("cum")
    runs = (
        keyed.filter(last_of_run | first_of_run)
        .with_columns(offset.cast(pl.Int32).alias("offset"))
        .with_columns(at_first.alias("at_first"), last_of_run.alias("last"))
        .filter("last")
        .select(
            (key // _CODES).set_sorted().alias("day"),
            (key % _CODES).cast(pl.Int32).alias("code"),
            (cum - cum.shift(1).fill_null(0)).cast(pl.Float64).alias("volume"),
            pl.min_horizontal("offset", "at_first").alias("period"),
        )
    )
    # One period per day (a daylight-saving change falls on a Sunday night).
    days = runs.group_by("day", maintain_order=True).agg(
        pl.col("volume").sum().alias("total"), pl.col("period").min()
    )
    day_no = pl.col("day").rle_id()
    total = pl.lit(days.get_column("total")).gather(day_no)
    code = pl.col("code")
    return (
        runs.select(
            pl.lit(days.get_column("period")).gather(day_no).alias("period"),
            pl.when(code < SHIFTS).then(code - SHIFTS // 2 + 1).alias("k"),
            pl.when(total > 0).then(pl.col("volume") / total).otherwise(0.0).alias("weight"),
        )
        .group_by("period", "k")
        .agg(pl.col("weight").sum())
    )


def zone_verdict(profiles: pl.DataFrame | Iterable[pl.DataFrame]) -> ZoneVerdict:
    """The verdict from one profile of :func:`auction_profile`, or several pooled.

    A profile has a few dozen rows: its sums are plain Python (a polars call costs more
    than all of them, and this runs once per symbol).
    """
    profile = profiles if isinstance(profiles, pl.DataFrame) else pl.concat(list(profiles))
    days: dict[int, float] = defaultdict(float)
    scores: dict[tuple[int, int], float] = defaultdict(float)
    apart = (WINDOW_STARTS[1] - WINDOW_STARTS[0]) // HALF_HOUR
    for period, k, weight in profile.select("period", "k", "weight").iter_rows():
        days[period] += weight
        if k is not None:
            scores[(period, k)] += weight  # into the opening window
            closing = (k + apart + SHIFTS // 2 - 1) % SHIFTS - SHIFTS // 2 + 1
            scores[(period, closing)] += weight  # into the closing one
    periods = []
    for name, offset in PERIOD_OFFSETS.items():
        # Each day's weights add up to one (or zero): the sum is a count of days, and
        # rounding it keeps a period of exactly MIN_DAYS days judged whatever the order
        # of the additions.
        total = float(round(days.get(offset, 0.0)))
        if not total:
            continue
        mine = {k: score for (period, k), score in scores.items() if period == offset}
        at_zero = mine.get(0, 0.0)
        # Highest score; among equals the reading as it is, then the smallest shift.
        best_k = min(mine, key=lambda k: (-mine[k], k != 0, abs(k)), default=0)
        periods.append(
            PeriodVerdict(
                period=name,
                days=total,
                best_offset=best_k,
                share_at_zero=at_zero / total,
                share_at_best=mine.get(best_k, at_zero) / total,
            )
        )
    return ZoneVerdict(tuple(periods))


def _shift_into(minute: pl.Expr, start: int) -> pl.Expr:
    """The shift k (half-hours, -23..24) that moves ``minute`` into the window from
    ``start``, or null: each minute falls into a window at one shift at most."""
    to_start = (start - minute) % MINUTES_PER_DAY  # minutes that move it onto the start
    extra = (-to_start) % HALF_HOUR  # then on to the next whole half-hour shift
    k = ((to_start + extra) // HALF_HOUR) % SHIFTS
    signed = pl.when(k > SHIFTS // 2).then(k - SHIFTS).otherwise(k)
    return pl.when(extra < WINDOW_WIDTH).then(signed).cast(pl.Int32)


# Per minute of the day: the shift code 0..47 (shift + 23) that moves it into the opening
# window, 48 when none does. Gathered per bar: cheaper than the arithmetic on every row.
_CODES = SHIFTS + 1
_SHIFT_CODES = (
    pl.select(_shift_into(pl.int_range(MINUTES_PER_DAY), WINDOW_STARTS[0]) + (SHIFTS // 2 - 1))
    .to_series()
    .fill_null(SHIFTS)
    .cast(pl.Int64)
)


def fitting_zone(configured: str, verdict: ZoneVerdict) -> str | None:
    """A zone whose wall clock the bars' timestamps look like, when they were read in
    ``configured``; None when no candidate fits every judged period."""
    judged = [p for p in verdict.periods if p.judged]
    if not judged or verdict.fits:
        return None
    zone = ZoneInfo(configured)
    needed = {
        p.period: _utc_offset(zone, p.period) - p.best_offset * HALF_HOUR
        for p in judged
        if p.contradicts or p.best_offset == 0
    }
    for candidate in CANDIDATE_ZONES:
        if candidate == configured:
            continue
        other = ZoneInfo(candidate)
        if all(_utc_offset(other, period) == need for period, need in needed.items()):
            return candidate
    return None


def _utc_offset(zone: ZoneInfo, period: Period) -> int:
    offset = _PERIOD_DAYS[period].astimezone(zone).utcoffset()
    assert offset is not None
    return int(offset.total_seconds() // 60)
