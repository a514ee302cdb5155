"""Options shared by several commands."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any

import click


def _date(_: click.Context, __: click.Parameter, value: str | None) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date YYYY-MM-DD") from None


def date_option(name: str, help_text: str) -> Callable[[Any], Any]:
    """A ``YYYY-MM-DD`` option parsed into a :class:`datetime.date`."""
    return click.option(name, callback=_date, metavar="YYYY-MM-DD", help=help_text)
