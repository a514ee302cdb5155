"""The click group, its global options and the error boundary."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from detector.errors import ExitCode, IntradayEventsError, RootNotFoundError
from tools.cli.context import CliContext

ROOT_ENV = "INTRADAY_EVENTS_ROOT"
INTERRUPTED_LINE = (
    "interrupted: stopped at once; everything committed is kept (run it again to continue)"
)


class _Group(click.Group):
    """Turns project errors into one line and their exit status."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except IntradayEventsError as exc:
            error = click.ClickException(str(exc))
            error.exit_code = int(exc.exit_code)
            raise error from exc
        except KeyboardInterrupt:
            # A second Ctrl-C (the first asks for an orderly stop) or one before any
            # handler is installed: interrupted, exit 130 like the first, not click's
            # "Aborted!" and 1. Whatever was committed is kept.
            click.echo(INTERRUPTED_LINE, err=True)
            raise click.exceptions.Exit(int(ExitCode.INTERRUPTED)) from None


def _default_config(root: Path) -> Path | None:
    candidate = root / "config" / "config.yaml"
    return candidate if candidate.is_file() else None


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--root",
    type=click.Path(path_type=Path),  # checked in cli(): one line, not click's usage text
    envvar=ROOT_ENV,
    default=".",
    show_default=True,
    help=f"Workspace holding raw/, logs/ and processed/ (env {ROOT_ENV}).",
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="YAML config (ours or the legacy config.yaml). Default ROOT/config/config.yaml "
    "when it exists, else built-in defaults.",
)
@click.pass_context
def cli(ctx: click.Context, root: Path, config_path: Path | None) -> None:
    """Turn 1-minute bars into a clean table of intraday events."""
    root = root.resolve()
    if not root.is_dir():
        problem = "is not a directory" if root.exists() else "does not exist"
        raise RootNotFoundError(root, problem)
    ctx.obj = CliContext(root=root, config_path=config_path or _default_config(root))
    if config_path is not None and not config_path.is_file():
        raise click.BadParameter(f"{config_path} does not exist", param_hint="--config")


def main() -> None:
    cli(prog_name="intraday-events")


def _register_commands() -> None:
    # Command modules define commands only; they never import this module.
    from tools.cli import commands

    commands.register(cli)


_register_commands()
