"""The object every command receives: workspace root and lazily loaded config."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from detector.config import AppConfig
from detector.config_load import load_config


@dataclass
class CliContext:
    """What every command gets: the workspace root and the (lazily loaded) config."""

    root: Path
    config_path: Path | None
    _config: AppConfig | None = field(default=None, repr=False)

    def config(self) -> AppConfig:
        if self._config is None:
            self._config = load_config(self.config_path)
        return self._config

    def bars_root(self, override: Path | None = None) -> Path:
        """The bars directory: ``--bars`` if given, else ``bars.root`` under the root."""
        if override is not None:
            return override
        return self.root / self.config().bars.root
