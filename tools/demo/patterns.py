"""Injected intraday patterns for the demo bar generator.

Each pattern is a short template of minute bars that *overrides* the random walk
for its minutes: log return, volume (as a multiple of the symbol-day's mean RTH
minute volume), wick size and a small noise term. The templates are sized so that,
with the default thresholds of docs/EVENTS.md §3-4, each one makes its detector
fire on the bar it is built for (see the comments on each template).

A day's plan is drawn with the day's own ``random.Random``, so a symbol-day's
patterns depend only on (seed, symbol, date).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from functools import cache
from typing import Literal

import polars as pl

# Minutes are counted from 04:00 ET: 0..959 covers [04:00, 20:00).
MINUTES_PER_DAY = 960
RTH_START = 330  # 09:30 ET
RTH_END = 720  # 16:00 ET

# Patterns after the open go into disjoint slots so they never overlap; the first
# slot starts at 10:30 so every pattern has a full day's worth of prior RTH bars.
_SLOT_FIRST = 390
_SLOT_LEN = 55
_SLOTS = (RTH_END - _SLOT_FIRST) // _SLOT_LEN
# Extended-hours volume bursts: late enough in PM that earlier PM bars give a median.
_PM_BURST = (60, RTH_START - 10)
_AH_BURST = (RTH_END + 5, MINUTES_PER_DAY - 10)

Slot = Literal["open", "intraday"]


@dataclass(frozen=True)
class TemplateBar:
    """One minute of a template; percentages are of price, ``volx`` of the day's level."""

    ret_pct: float  # close-to-close log return, for the "up" orientation
    volx: float
    wick_pct: float
    noise_pct: float
    floor: bool = False  # raise volume to the absolute/dollar floors of volume_spike


@dataclass(frozen=True)
class PatternTemplate:
    kind: str
    bars: tuple[TemplateBar, ...]
    ret_scale: tuple[float, float]  # drawn per instance, multiplies ret_pct
    vol_scale: tuple[float, float]  # drawn per instance, multiplies volx
    signed: bool  # False: only the given orientation (flush is down only)


@dataclass(frozen=True)
class PatternInstance:
    kind: str
    start: int  # minute of the day (0 = 04:00 ET) of the template's first bar
    sign: int  # +1 as written, -1 mirrored
    ret_scale: float
    vol_scale: float


def _run(n: int, bar: TemplateBar) -> tuple[TemplateBar, ...]:
    return (bar,) * n


def _seq(*parts: TemplateBar | tuple[TemplateBar, ...]) -> tuple[TemplateBar, ...]:
    """Concatenates bars and runs of bars into one template."""
    return tuple(b for part in parts for b in (part if isinstance(part, tuple) else (part,)))


TEMPLATES: dict[str, PatternTemplate] = {
    # volume_spike: one bar with 10-30x volume and a ~3% range (needs >= 1.5%);
    # the floor keeps volume >= 15,000 shares and >= $75,000 (the PM/AH minimums).
    "burst": PatternTemplate(
        "burst", (TemplateBar(3.2, 18.0, 0.6, 0.3, floor=True),), (0.85, 1.3), (0.6, 1.6), True
    ),
    # price_momentum: 5 bars of 3.4-5.9% each on 3-5x volume break the prior 20-bar
    # high/low (3% up / 3.5% down over 5 bars needed), then a partial fade.
    "momentum": PatternTemplate(
        "momentum",
        _seq(_run(5, TemplateBar(4.5, 4.0, 0.4, 0.2)), _run(5, TemplateBar(-1.5, 2.0, 0.5, 0.3))),
        (0.8, 1.3),
        (0.75, 1.25),
        True,
    ),
    # consolidation_break: a 36-bar base within ~0.5% (far under half the 8-20% daily
    # ATR) on low volume, then a 1.7-2.8% breakout bar with ~6x vol_avg20.
    "base": PatternTemplate(
        "base",
        _seq(
            _run(36, TemplateBar(0.0, 0.5, 0.05, 0.04)),
            TemplateBar(2.0, 4.0, 0.3, 0.1),
            _run(5, TemplateBar(0.3, 2.0, 0.3, 0.2)),
        ),
        (0.85, 1.4),
        (0.8, 1.2),
        True,
    ),
    # flush: a ~12% run-up on 2x volume, a pause, then 4 red bars of ~-3.8% on
    # accelerating volume (3, 6, 12, 20x) so the 3rd and 4th reach drop >= 8% from
    # the day high with vol_mult >= 4; then a dead-cat bounce.
    "flush": PatternTemplate(
        "flush",
        _seq(
            _run(10, TemplateBar(1.2, 2.0, 0.3, 0.2)),
            _run(4, TemplateBar(0.0, 1.5, 0.3, 0.2)),
            tuple(TemplateBar(-3.8, v, 0.4, 0.2) for v in (3.0, 6.0, 12.0, 20.0)),
            _run(5, TemplateBar(1.0, 3.0, 0.5, 0.3)),
        ),
        (0.9, 1.2),
        (0.9, 1.2),
        False,
    ),
    # opening_range_break (starts 09:30): a tight 15-bar opening range, 5 bars still
    # inside it, then a 2.3-3.4% bar on 4x volume (needs 0.5% beyond the range, 1.8x).
    "orb": PatternTemplate(
        "orb",
        _seq(
            _run(15, TemplateBar(0.0, 1.5, 0.2, 0.1)),
            _run(5, TemplateBar(0.0, 1.0, 0.2, 0.1)),
            TemplateBar(2.6, 4.0, 0.4, 0.2),
            _run(5, TemplateBar(0.4, 2.0, 0.4, 0.3)),
        ),
        (0.9, 1.3),
        (0.9, 1.2),
        True,
    ),
    # vwap_break (starts 09:30, so the template alone sets the RTH VWAP): 25 bars
    # drifting 2.5% the other way leave the close ~1.25% beyond VWAP, then a 3.2-4.7%
    # bar on 4.5x volume crosses it by ~2% (needs 0.6%/0.8% and 2x/2.5x volume).
    "vwap": PatternTemplate(
        "vwap",
        _seq(
            _run(25, TemplateBar(-0.1, 1.2, 0.15, 0.05)),
            TemplateBar(3.6, 4.5, 0.4, 0.2),
            _run(5, TemplateBar(0.3, 2.0, 0.4, 0.3)),
        ),
        (0.9, 1.3),
        (0.9, 1.2),
        True,
    ),
}

_OPEN_KINDS = ("orb", "vwap")
_INTRADAY_KINDS = ("burst", "momentum", "base", "flush")


def _instance(rng: random.Random, kind: str, start: int) -> PatternInstance:
    template = TEMPLATES[kind]
    sign = rng.choice((1, -1)) if template.signed else 1
    return PatternInstance(
        kind=kind,
        start=start,
        sign=sign,
        ret_scale=rng.uniform(*template.ret_scale),
        vol_scale=rng.uniform(*template.vol_scale),
    )


def plan_day(rng: random.Random) -> list[PatternInstance]:
    """The patterns of one symbol-day: most days have none, a few have two or three."""
    plan: list[PatternInstance] = []
    if rng.random() < 0.25:
        plan.append(_instance(rng, rng.choice(_OPEN_KINDS), RTH_START))
    count = rng.choices((0, 1, 2), weights=(0.5, 0.33, 0.17))[0]
    for slot in sorted(rng.sample(range(_SLOTS), count)):
        kind = rng.choice(_INTRADAY_KINDS)
        room = _SLOT_LEN - len(TEMPLATES[kind].bars)
        plan.append(_instance(rng, kind, _SLOT_FIRST + slot * _SLOT_LEN + rng.randrange(room + 1)))
    if rng.random() < 0.15:
        low, high = _PM_BURST if rng.random() < 0.5 else _AH_BURST
        plan.append(_instance(rng, "burst", rng.randrange(low, high)))
    return plan


@cache
def _template_table() -> pl.DataFrame:
    rows = [
        (kind, offset, bar.ret_pct, bar.volx, bar.wick_pct, bar.noise_pct, bar.floor)
        for kind, template in TEMPLATES.items()
        for offset, bar in enumerate(template.bars)
    ]
    return pl.DataFrame(
        rows,
        schema={
            "kind": pl.String,
            "offset": pl.Int32,
            "ret_pct": pl.Float64,
            "volx": pl.Float64,
            "wick_pct": pl.Float64,
            "noise_pct": pl.Float64,
            "floor": pl.Boolean,
        },
        orient="row",
    )


def overlay_frame(plans: list[list[PatternInstance]]) -> pl.DataFrame:
    """One row per overridden minute: ``day``, ``minute`` and the bar's parameters.

    ``plans[d]`` is day ``d``'s plan. Returned returns/wicks/noise are fractions.
    """
    instances = pl.DataFrame(
        [
            (day, p.kind, p.start, p.sign, p.ret_scale, p.vol_scale)
            for day, plan in enumerate(plans)
            for p in plan
        ],
        schema={
            "day": pl.Int32,
            "kind": pl.String,
            "start": pl.Int32,
            "sign": pl.Int32,
            "ret_scale": pl.Float64,
            "vol_scale": pl.Float64,
        },
        orient="row",
    )
    return instances.join(_template_table(), on="kind").select(
        "day",
        (pl.col("start") + pl.col("offset")).alias("minute"),
        (pl.col("sign") * pl.col("ret_pct") * pl.col("ret_scale") / 100).alias("ov_ret"),
        (pl.col("volx") * pl.col("vol_scale")).alias("ov_volx"),
        (pl.col("wick_pct") / 100).alias("ov_wick"),
        (pl.col("noise_pct") / 100).alias("ov_noise"),
        pl.col("floor").alias("ov_floor"),
    )
