"""``intraday-events demo``: generate bars, launch with the dashboard, show the outputs."""

from __future__ import annotations

import sys
import time
from datetime import datetime
from pathlib import Path

import click

from tools.cli.context import CliContext
from tools.cli.launch_cmd import LaunchOptions, run_launch
from tools.demo.run import DEFAULT_DIR, DemoSpec, describe_outputs, ensure_demo_bars, spec_summary


@click.command("demo")
@click.option("--workers", type=click.IntRange(min=1), default=2, show_default=True)
@click.option("--symbols", type=click.IntRange(min=1), default=40, show_default=True)
@click.option("--days", type=click.IntRange(min=1), default=60, show_default=True)
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=DEFAULT_DIR,
    show_default=True,
    help="Demo workspace (created; its bars are reused by later demos of the same size).",
)
@click.option("--no-dashboard", is_flag=True, help="Progress lines instead of the live view.")
@click.option(
    "--backend",
    type=click.Choice(["local", "ray"]),
    default="local",
    show_default=True,
    help="ray: run the detection as Ray tasks (needs the ray extra).",
)
@click.option("--ray-address", help="With --backend ray: as for launch (default: a local Ray).")
def demo(
    workers: int,
    symbols: int,
    days: int,
    directory: Path,
    no_dashboard: bool,
    backend: str,
    ray_address: str | None,
) -> None:
    """Run the whole product on generated bars: N workers, live view, final file."""
    started = time.perf_counter()
    spec = DemoSpec(directory=directory.resolve(), workers=workers, symbols=symbols, days=days)
    bars = ensure_demo_bars(spec)
    click.echo(spec_summary(spec, bars))
    run_id = spec.new_run_id(datetime.now())
    # The demo's own workspace and the built-in configuration, whatever --root says.
    context = CliContext(root=spec.directory, config_path=None)
    options = LaunchOptions(
        workers=workers,
        batch_size=spec.batch_size,
        run_id=run_id,
        yes=True,
        no_dashboard=no_dashboard,
        backend=backend,
        ray_address=ray_address if ray_address or backend != "ray" else "local",
    )
    code = run_launch(context, options)
    for line in describe_outputs(spec.directory, run_id):
        click.echo(line)
    click.echo(f"demo wall time {time.perf_counter() - started:.1f} s")
    sys.exit(code)
