"""Polars expressions built once per config object.

Building a symbol's expressions in Python (several hundred nodes: the detectors'
rules, screens, windows, output columns) costs about a millisecond per symbol,
as much as evaluating them on a few days of bars. A run uses one config object
throughout, so they are kept per config object: keyed by identity (configs hold
dicts, so are not hashable), with a weak reference telling a reused id from the
same object. Expressions are immutable, so sharing them is safe.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

_MAX_ENTRIES = 64
_built: dict[tuple[int, str], tuple[weakref.ref[Any], Any]] = {}


def per_config(config: object, name: str, build: Callable[[], T]) -> T:
    """``build()`` for ``config``, built on the first call for this config object."""
    key = (id(config), name)
    found = _built.get(key)
    if found is not None and found[0]() is config:
        return found[1]
    value = build()
    if len(_built) >= _MAX_ENTRIES:
        _built.clear()
    _built[key] = (weakref.ref(config), value)
    return value
