"""Read the reconcile schedule from the sync config without loading the full (validated) config.

DAG files run this at parse time, so it must stay cheap: one YAML read, no pydantic, no botocore.
The full config is validated at task run time by :func:`cosell_sync.config.load_config`.
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml

DEFAULT_CONFIG_PATH = Path(__file__).with_name("sync_config.yaml")
DEFAULT_SCHEDULE = "*/30 * * * *"


def config_path() -> Path:
    """The sync config file: ``COSELL_SYNC_CONFIG`` when set, else the packaged default."""
    return Path(os.environ.get("COSELL_SYNC_CONFIG", DEFAULT_CONFIG_PATH))


def reconcile_schedule(path: Path | None = None) -> str:
    """The cron expression for ``cosell_reconcile`` (``schedule`` key), defaulting to every 30 minutes."""
    try:
        with open(path or config_path(), encoding="utf-8") as fh:
            data = yaml.safe_load(fh) or {}
    except FileNotFoundError:
        return DEFAULT_SCHEDULE
    return str(data.get("schedule") or DEFAULT_SCHEDULE)
