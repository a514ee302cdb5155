"""The configuration reference documents every key of the config dataclasses."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from detector.config import BarsConfig, DetectorConfig, SupervisionConfig
from detector.detectors import EVENT_TYPES

DOCS = Path(__file__).resolve().parents[1] / "docs"


def _paths(cls: type, prefix: str = "") -> list[str]:
    out = []
    for f in dataclasses.fields(cls):
        path = f"{prefix}{f.name}"
        out.append(path)
        if isinstance(f.default_factory, type) and dataclasses.is_dataclass(f.default_factory):
            out += _paths(f.default_factory, f"{path}.")
    return out


def test_configuration_reference_names_every_key() -> None:
    text = (DOCS / "configuration.md").read_text()
    keys = _paths(DetectorConfig) + [f"bars.{k}" for k in _paths(BarsConfig)]
    keys += [f"supervision.{k}" for k in _paths(SupervisionConfig)]
    assert len(keys) > 90
    assert [k for k in keys if f"`{k}`" not in text] == []


def test_detectors_doc_covers_each_event_type() -> None:
    headings = {
        line.lstrip("#").strip()
        for line in (DOCS / "detectors.md").read_text().splitlines()
        if line.startswith("#")
    }
    assert set(EVENT_TYPES) <= headings
    assert "What differs from the old script" in headings
