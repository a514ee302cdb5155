"""``seed-checkpoint``: mark in one run (DST) every symbol another run (SRC) completed.

What SRC covered is read from everything it may have left under the root:

- our committed shards of SRC: the symbols in their footers, zero-event ones too;
- old shards: the legacy system's files under ``processed/events/shards/`` and
  ``shards/worker_*/`` whose name holds the run id (``{SRC}_shardNNNN.parquet`` and
  similar), without our footer; their column ``symbol``;
- SRC's checkpoint ``logs/checkpoints/{SRC}_completed.json``, ours or the legacy
  ``{"run_id", "completed_symbols", ...}``;
- SRC's final file ``processed/events/{SRC}.parquet``, column ``symbol``.

They are merged into DST's checkpoint under DST's run lock (:meth:`RunStore.seed`):
a union, never a replacement, so seeding twice changes nothing and several sources
accumulate in ``seeded_from``. Nothing of SRC is ever changed.

By default only symbols are marked: DST's workers skip them, and their events stay
in SRC's files, so DST's final file holds DST's own detections only. Such
*seeded-only* symbols are completed without a shard of DST; the checkpoint lists
them in ``seeded``. If DST's checkpoint is lost or corrupt it is rebuilt from
DST's shards, which do not know them: they count as not done again and would be
detected again. Seeding again (idempotent) restores them.

``--import-events`` also brings SRC's events in, as one committed shard of DST,
for every SRC symbol no shard of DST covers yet (symbols an earlier seeding only
marked included): the final merge then holds them exactly once, and the rebuild
from shards knows them. Each symbol's rows come from one place, the first of our
shards, old shards, the final file that has the symbol (the final file repeats the
shards). Rows that are exact duplicates are dropped and counted (the old system's
restarts wrote symbols twice); rows that share an event key but differ are refused.
Symbols that only SRC's checkpoint lists (SRC's own seeded ones, a legacy
checkpoint whose shards are elsewhere) are marked, not imported: only a shard
footer of ours can say that a symbol had no events.
Imported events keep SRC's config hash and are refused when DST records another;
the legacy system recorded none, so its events are taken as DST's config (or the
current one for a new DST).

DST defaults to today's new run id (``events_intraday_YYYYMMDD``): the run a later
``detect`` or ``launch`` starts, and continues, without ``--run-id``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq

from detector.config import DetectorConfig
from detector.errors import ExitCode, IntradayEventsError
from detector.schema import EVENT_KEY, EVENT_SCHEMA, NY, empty_events
from orchestrator.run import checkpoint as ck
from orchestrator.run.layout import RunLayout, is_valid_run_id, new_run_id, shard_number
from orchestrator.run.merge import latest_owners
from orchestrator.run.select import InvalidRunIdError
from orchestrator.run.shards import ShardMetadataError, read_shard_info
from orchestrator.run.store import RunStore, SeedResult
from tools.seed.columns import derive, missing_columns

OURS = "shards (ours)"
OLD = "old shards"
CHECKPOINT = "checkpoint"
FINAL = "final file"


# -- errors -------------------------------------------------------------------------
class SeedUsageError(IntradayEventsError):
    """The runs given cannot be seeded one from the other (SRC is DST)."""

    exit_code = ExitCode.USAGE


class SourceRunNotFoundError(IntradayEventsError):
    """No file of SRC exists under the root: nothing to seed from.

    Missing input data, like ``NoBarsError``: exit status 3.
    """

    exit_code = ExitCode.DATA

    def __init__(self, run_id: str, root: Path) -> None:
        self.run_id = run_id
        self.root = root
        super().__init__(
            f"run {run_id} not found under {root}: no checkpoint "
            f"logs/checkpoints/{run_id}_completed.json, no shard under processed/events/shards "
            f"and no final file processed/events/{run_id}.parquet"
        )


class SourceDataError(IntradayEventsError):
    """A file of SRC exists but cannot be used; nothing was seeded."""

    exit_code = ExitCode.DATA

    def __init__(self, path: Path, problem: str) -> None:
        self.path = path
        self.problem = problem
        super().__init__(f"{path}: {problem}; nothing was seeded")


class ConflictingEventsError(IntradayEventsError):
    """SRC holds two different rows under one event key: which is right is unknown."""

    exit_code = ExitCode.DATA

    def __init__(self, run_id: str, clashing: int, example: str) -> None:
        self.run_id = run_id
        self.clashing = clashing
        self.example = example
        super().__init__(
            f"{clashing} events of run {run_id} share an event key with different values "
            f"(e.g. {example}): cannot tell which is right; seed without --import-events; "
            "nothing was seeded"
        )


# -- what SRC covered ---------------------------------------------------------------
@dataclass(frozen=True)
class SourcePart:
    """One kind of source: the files found and the symbols they cover."""

    kind: str
    files: tuple[Path, ...] = ()
    symbols: frozenset[str] = frozenset()


@dataclass(frozen=True)
class SourceRun:
    run_id: str
    ours: SourcePart
    old: SourcePart
    checkpoint: SourcePart
    final: SourcePart
    checkpoint_format: str | None  # "ours", "legacy" or None without a checkpoint
    config_hash: str | None  # SRC's detector config, when it is one of our runs
    no_events_here: frozenset[str]  # completed in SRC, but none of its event files has them

    @property
    def parts(self) -> tuple[SourcePart, ...]:
        return (self.ours, self.old, self.checkpoint, self.final)

    @property
    def symbols(self) -> frozenset[str]:
        return frozenset().union(*(p.symbols for p in self.parts))

    @property
    def importable(self) -> frozenset[str]:
        """Symbols whose events SRC's files hold (none, for a zero-event symbol of ours)."""
        return self.symbols - self.no_events_here


def _names_run(name: str, run_id: str, longer: Iterable[str]) -> bool:
    """Whether a legacy file name holds ``run_id`` as a whole word.

    Run ids may contain ``_``, so ``r_1`` also appears in ``r_1_2_shard0001``:
    a name holding a longer run id known under the root belongs to that run.
    """
    stem = name.removesuffix(".parquet")
    if any(_holds(stem, other) for other in longer):
        return False
    return _holds(stem, run_id)


def _holds(text: str, run_id: str) -> bool:
    return re.search(rf"(?<![A-Za-z0-9]){re.escape(run_id)}(?![A-Za-z0-9])", text) is not None


def _symbol_column(path: Path) -> frozenset[str]:
    try:
        table = pq.read_table(path, columns=["symbol"])
    except Exception as exc:  # pyarrow raises its own types for missing columns, bad files
        raise SourceDataError(path, f"cannot read column 'symbol' ({exc})") from exc
    return frozenset(str(s) for s in table.column("symbol").to_pylist() if s is not None)


def find_source(root: Path, run_id: str) -> SourceRun:
    """Everything ``run_id`` left under ``root``. Raises SourceRunNotFoundError."""
    layout = RunLayout(root, run_id)
    longer = [r for r in RunLayout.run_ids(root) if r != run_id and run_id in r]
    ours: list[tuple[Path, tuple[str, ...], str | None]] = []
    old: list[tuple[Path, frozenset[str]]] = []
    for directory in layout.shard_dirs():
        for path in sorted(directory.glob("*.parquet")):
            if path.name.startswith(".") or not _names_run(path.name, run_id, longer):
                continue  # temporary files, and files of other runs
            try:
                info = read_shard_info(path)
            except ShardMetadataError:
                old.append((path, _symbol_column(path)))  # no footer of ours: a legacy shard
                continue
            if info.run_id == run_id:
                ours.append((path, info.symbols, info.config_hash))

    cp: ck.Checkpoint | None = None
    checkpoint_format = None
    if layout.checkpoint.is_file():
        try:
            text = layout.checkpoint.read_text(encoding="utf-8")
            cp = ck.from_json(text, run_id)
            checkpoint_format = "ours" if "format_version" in json.loads(text) else "legacy"
        except (OSError, ck.CheckpointFormatError) as exc:
            raise SourceDataError(layout.checkpoint, f"unreadable checkpoint ({exc})") from exc

    final = layout.final if layout.final.is_file() else None
    if cp is None and not ours and not old and final is None:
        raise SourceRunNotFoundError(run_id, root)

    final_symbols = _symbol_column(final) if final is not None else frozenset()
    # Only a footer of ours says "zero events"; a symbol only a checkpoint lists (one
    # SRC itself only seeded, one whose shard is gone, any of a legacy checkpoint whose
    # files are elsewhere) may have events SRC's files do not hold. Importing it as
    # "no events" would lose those for good, so it is only marked.
    event_symbols = {s for _, symbols, _ in ours for s in symbols}
    event_symbols |= {s for _, symbols in old for s in symbols}
    event_symbols |= final_symbols
    hashes = [h for _, _, h in ours if h]
    return SourceRun(
        run_id=run_id,
        ours=SourcePart(
            OURS, tuple(p for p, _, _ in ours), frozenset(s for _, ss, _ in ours for s in ss)
        ),
        old=SourcePart(OLD, tuple(p for p, _ in old), frozenset(s for _, ss in old for s in ss)),
        checkpoint=SourcePart(
            CHECKPOINT,
            (layout.checkpoint,) if cp is not None else (),
            cp.completed if cp is not None else frozenset(),
        ),
        final=SourcePart(FINAL, (final,) if final is not None else (), final_symbols),
        checkpoint_format=checkpoint_format,
        config_hash=(cp.config_hash if cp is not None else None) or (hashes[0] if hashes else None),
        no_events_here=(cp.completed if cp is not None else frozenset()) - event_symbols,
    )


# -- SRC's events -------------------------------------------------------------------
@dataclass(frozen=True)
class SourceEvents:
    events: pl.DataFrame  # EVENT_SCHEMA, unique keys, sorted
    duplicates_dropped: int  # exact duplicate rows of the source left out
    derived: tuple[str, ...] = ()  # columns some source file lacked, derived


def _event_frame(
    path: Path, symbols: frozenset[str], detector: Callable[[], DetectorConfig]
) -> tuple[pl.DataFrame, list[str]]:
    """The rows of ``symbols`` in ``path``, in our schema (legacy files converted, the
    columns an older file lacks derived), and the columns that were derived."""
    try:
        frame = pl.read_parquet(path).filter(pl.col("symbol").is_in(list(symbols)))
    except Exception as exc:  # polars raises several types for unreadable files
        raise SourceDataError(path, f"unreadable ({exc})") from exc
    derivable, absent = missing_columns(frame.columns)
    if absent:
        raise SourceDataError(
            path, f"no column {', '.join(absent)} to import events from (not derivable)"
        )
    timestamp = pl.col("timestamp")
    dtype = frame.schema["timestamp"]
    if isinstance(dtype, pl.Datetime) and dtype.time_zone is None:
        timestamp = timestamp.dt.replace_time_zone("UTC")  # the legacy files hold UTC
    utc = timestamp.dt.convert_time_zone("UTC").cast(EVENT_SCHEMA["timestamp"])
    derived = [c for c in derivable if c != "timestamp_et"]  # timestamp_et: always derived
    frame = derive(frame, derived, utc, detector)
    columns = []
    for name, target in EVENT_SCHEMA.items():
        if name == "timestamp":
            columns.append(utc.alias(name))
        elif name == "timestamp_et":
            # The same instant by definition (EVENTS.md §6): derived, never trusted.
            columns.append(utc.dt.convert_time_zone(NY).cast(target).alias(name))
        else:
            columns.append(pl.col(name).cast(target, strict=True))
    try:
        return frame.select(columns), derived
    except pl.exceptions.PolarsError as exc:
        raise SourceDataError(path, f"events not in the output schema ({exc})") from exc


def read_events(
    source: SourceRun,
    symbols: frozenset[str],
    detector: Callable[[], DetectorConfig] = DetectorConfig,
) -> SourceEvents:
    """Every event of ``symbols`` in SRC, each symbol's rows from one place only.

    Our shards cover each symbol once and exactly; old shards come next; the final
    file last (it repeats the shards when they are there).
    """
    frames: list[pl.DataFrame] = []
    derived: set[str] = set()
    left = set(symbols)
    latest = _latest_commits(source)
    for part in (source.ours, source.old, source.final):
        taken = left & part.symbols
        if not taken:
            continue
        for path in part.files:
            # Our shards: each symbol's rows from its latest commit (a symbol recomputed
            # from changed bars has an earlier, superseded one).
            wanted = taken & latest[path] if part is source.ours else taken
            if not wanted:
                continue
            frame, columns = _event_frame(path, frozenset(wanted), detector)
            frames.append(frame)
            derived.update(columns)
        left -= taken
    events = pl.concat(frames) if frames else empty_events()
    unique = events.unique(maintain_order=True)
    clashing = int(unique.select(EVENT_KEY).is_duplicated().sum())
    if clashing:
        first = unique.filter(unique.select(EVENT_KEY).is_duplicated()).row(0, named=True)
        example = " ".join(str(first[c]) for c in EVENT_KEY)
        raise ConflictingEventsError(source.run_id, clashing, example)
    kept = tuple(c for c in EVENT_SCHEMA if c in derived)
    return SourceEvents(unique.sort(EVENT_KEY), events.height - unique.height, kept)


def _latest_commits(source: SourceRun) -> dict[Path, frozenset[str]]:
    """Per shard of ours, the symbols it holds the latest commit of."""
    numbers = {p: shard_number(p, source.run_id) or 0 for p in source.ours.files}
    covered = {p.name: read_shard_info(p).symbols for p in source.ours.files}
    owners = latest_owners(covered, {p.name: n for p, n in numbers.items()})
    return {p: frozenset(s for s, name in owners.items() if name == p.name) for p in numbers}


# -- the seeding --------------------------------------------------------------------
@dataclass(frozen=True)
class SeedReport:
    source: SourceRun
    dst: str
    dst_defaulted: bool
    result: SeedResult
    import_events: bool
    duplicates_dropped: int
    derived: tuple[str, ...] = ()  # columns derived because SRC's files lacked them


def resolve_runs(src: str, dst: str | None, now: datetime) -> tuple[str, str, bool]:
    """SRC, DST and whether DST was defaulted (to today's new run id)."""
    for run_id in (src, dst):
        if run_id is not None and not is_valid_run_id(run_id):
            raise InvalidRunIdError(run_id)
    if dst is None:
        if new_run_id(now) == src:
            raise SeedUsageError(
                f"{src} is today's run id, the default DST: name the run to seed into"
            )
        return src, new_run_id(now), True
    if dst == src:
        raise SeedUsageError(f"SRC and DST are the same run {src}: nothing to seed")
    return src, dst, False


def seed_checkpoint(
    root: Path,
    src: str,
    dst: str | None = None,
    *,
    import_events: bool = False,
    current_hash: Callable[[], str],
    now: datetime | None = None,
    detector: Callable[[], DetectorConfig] = DetectorConfig,
) -> SeedReport:
    """Seed DST from SRC (see the module docstring). ``current_hash`` gives the hash
    of the current detector config, used for imported events whose config neither
    SRC nor DST records (a legacy SRC into a new DST)."""
    now = now or datetime.now()
    src, dst, defaulted = resolve_runs(src, dst, now)
    source = find_source(root, src)
    store = RunStore(RunLayout(root, dst))
    if not import_events:
        result = store.seed(source=src, symbols=source.symbols)
        return SeedReport(source, dst, defaulted, result, False, 0)
    try:
        existing = store.read()
    except ck.CheckpointFormatError:
        existing = None  # RunStore.seed rebuilds it from DST's shards under the lock
    # Read only the events DST still lacks; RunStore.seed decides again under the lock.
    have = ck.shard_covered(existing) if existing else frozenset()
    events = read_events(source, source.importable - have, detector)
    config_hash = (
        source.config_hash or (existing.config_hash if existing else None) or current_hash()
    )
    result = store.seed(
        source=src,
        symbols=source.symbols,
        events=events.events,
        event_symbols=source.importable,
        config_hash=config_hash,
    )
    return SeedReport(
        source, dst, defaulted, result, True, events.duplicates_dropped, events.derived
    )
