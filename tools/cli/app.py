"""The click group, its global options and the error boundary."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import click

from detector.errors import ExitCode, IntradayEventsError, RootNotFoundError
from orchestrator.run.errors import environment_error
from tools.cli.commands import COMMANDS, load
from tools.cli.context import CliContext

ROOT_ENV = "INTRADAY_EVENTS_ROOT"
INTERRUPTED_LINE = (
    "interrupted: stopped at once; everything committed is kept (run it again to continue)"
)


class _OneLine(click.ClickException):
    def show(self, file: Any = None) -> None:
        # On a full disk the line itself may not be writable (a worker's stderr is its
        # console log): the exit status must still say what happened.
        with contextlib.suppress(OSError):
            super().show(file)


def _one_line(exc: IntradayEventsError) -> click.ClickException:
    # click declares exit_code a class variable (newer versions say so to type checkers):
    # a subclass per error sets it where click reads it.
    class _Failure(_OneLine):
        exit_code = int(exc.exit_code)

    return _Failure(str(exc))


def _then(command: str | None) -> str:
    """What to run once the write can succeed: the same command, which continues."""
    if command == "detect":
        return "run it again (`intraday-events launch` or `detect --resume` continues the run)"
    if command in ("launch", "restart"):
        return "run the same `intraday-events launch` again (it continues the run)"
    return f"run the same `intraday-events {command}` again" if command else "run it again"


class _Group(click.Group):
    """Turns project errors into one line and their exit status; loads each command's
    module only when the command is asked for (:mod:`tools.cli.commands`)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*COMMANDS, *super().list_commands(ctx)})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is None:
            command = load(cmd_name)
            if command is not None:
                self.add_command(command, cmd_name)
        return command

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except IntradayEventsError as exc:
            raise _one_line(exc) from exc
        except OSError as exc:
            # A write the system refused (read-only, full disk, file size limit): one
            # line naming the file and what to do, exit 5; never a traceback.
            obj = ctx.obj if isinstance(ctx.obj, CliContext) else None
            failure = environment_error(
                exc,
                root=obj.root if obj is not None else None,
                then=_then(ctx.invoked_subcommand),
            )
            if failure is None:
                raise
            raise _one_line(failure) from exc
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
@click.version_option(
    package_name="intraday-events", prog_name="intraday-events", message="%(prog)s %(version)s"
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


def all_commands() -> dict[str, click.Command]:
    """Every command by name, their modules imported (for documentation checks)."""
    found: dict[str, click.Command] = {}
    for name in COMMANDS:
        command = load(name)
        if command is not None:
            found[name] = command
    return found


def main() -> None:
    cli(prog_name="intraday-events")
