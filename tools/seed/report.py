"""``seed-checkpoint``'s report: per source, the files and symbols found, then what
was newly marked and imported into DST."""

from __future__ import annotations

from tools.seed.core import SeedReport


def format_report(report: SeedReport) -> str:
    source, result = report.source, report.result
    how = " (default: today's run id)" if report.dst_defaulted else ""
    lines = [f"seed-checkpoint {source.run_id} -> {report.dst}{how}"]
    width = max(len(p.kind) for p in source.parts) + len(" (legacy)")
    lines.append(f"  {'source':<{width}} {'files':>6} {'symbols':>8}")
    for part in source.parts:
        kind = part.kind
        if part is source.checkpoint and source.checkpoint_format:
            kind = f"{kind} ({source.checkpoint_format})"
        lines.append(f"  {kind:<{width}} {len(part.files):>6} {len(part.symbols):>8,}")
    lines.append(f"  {'all sources':<{width}} {'':>6} {len(source.symbols):>8,}")
    cp = result.checkpoint
    lines.append(f"newly marked completed: {len(result.newly_completed):,}")
    if report.import_events and result.shard is not None:
        lines.append(
            f"imported: {len(result.imported):,} symbols, {result.events:,} events as "
            f"{result.shard.name} (config {cp.config_hash}; "
            f"{report.duplicates_dropped:,} exact duplicate rows of {source.run_id} dropped)"
        )
        if report.derived:
            lines.append(f"derived (older files lacked them): {', '.join(report.derived)}")
    elif report.import_events:
        lines.append(
            f"imported: nothing new (shards of {report.dst} already hold every symbol "
            f"{source.run_id} has events for)"
        )
    if report.import_events and source.no_events_here:
        lines.append(
            f"marked without events: {len(source.no_events_here):,} symbols only "
            f"{source.run_id}'s checkpoint lists (no file of it holds their events)"
        )
    lines.append(f"total completed in {report.dst}: {len(cp.completed):,}")
    if cp.seeded:
        lines.append(
            f"seeded without events in {report.dst}: {len(cp.seeded):,} "
            f"(their events stay in {', '.join(cp.seeded_from)}; --import-events brings "
            "those that a shard or final file of the source holds; continue with `launch` "
            "or `detect --resume`)"
        )
    return "\n".join(lines)
