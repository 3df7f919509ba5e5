"""Read the reconcile schedule from the sync config without loading the full (validated) config.

DAG files run this at parse time, so it must stay cheap: one YAML read, no pydantic, no botocore.
The full config is validated at task run time by :func:`cosell_sync.config.load_config`.
"""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

import yaml

DEFAULT_CONFIG_PATH = Path(__file__).with_name("sync_config.yaml")
DEFAULT_SCHEDULE = "*/30 * * * *"


def config_path() -> Path:
    """The sync config file: ``COSELL_SYNC_CONFIG`` when set, else the packaged default."""
    return Path(os.environ.get("COSELL_SYNC_CONFIG", DEFAULT_CONFIG_PATH))


#: Airflow's cron presets (``airflow.utils.dates.cron_presets``), spelled out to keep this module free of
#: Airflow imports. croniter also knows ``@midnight`` and ``@annually``; the DAG's cron timetable takes those.
CRON_PRESETS = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@quarterly": "0 0 1 */3 *",
    "@yearly": "0 0 1 1 *",
}
# A fixed start for the "does it ever fire" check, so the answer never depends on today's date.
_PROBE_START = datetime(2026, 1, 1)


def check_schedule(value: object) -> str:
    """Validate a ``cosell_reconcile`` schedule: what the DAG's cron timetable can run.

    Accepted: a five-field cron expression (minute hour day-of-month month day-of-week) that fires at
    least once, or a cron preset (``@hourly``, ``@daily``, ``@weekly``, ``@monthly``, ``@quarterly``,
    ``@yearly``, ``@midnight``, ``@annually``). Not accepted: ``@once`` or ``@continuous`` (the DAG always
    runs on a cron timetable; pause it to stop it), and six- or seven-field expressions (seconds, years),
    which Airflow does not describe or evaluate consistently. Callers treat an absent or null schedule
    as :data:`DEFAULT_SCHEDULE` before calling this.

    Args:
        value: the configured schedule.

    Returns:
        The schedule, stripped.

    Raises:
        ValueError: the schedule cannot drive the DAG; the message says why.
    """
    from croniter import CroniterBadDateError, CroniterError, croniter

    if not isinstance(value, str) or not value.strip():
        raise ValueError(
            f"must be a cron expression or a preset such as @hourly, not {value!r}: cosell_reconcile always "
            "runs on a schedule (pause the DAG to stop it)"
        )
    text = value.strip()
    expression = CRON_PRESETS.get(text, text)
    if expression.startswith("@"):
        if not croniter.is_valid(expression):
            raise ValueError(
                f"{text!r} is not a cron preset; use one of {', '.join(CRON_PRESETS)}, @midnight, @annually "
                "or a five-field cron expression"
            )
    elif len(expression.split()) != 5:
        raise ValueError(
            f"{text!r} has {len(expression.split())} fields; a cron expression has five: "
            "minute hour day-of-month month day-of-week"
        )
    try:
        croniter(expression, _PROBE_START).get_next(datetime)
    except CroniterBadDateError as err:
        raise ValueError(f"{text!r} never fires (no such date)") from err
    except (CroniterError, ValueError, KeyError) as err:
        raise ValueError(f"{text!r} is not a valid cron expression: {err}") from err
    return text


def reconcile_schedule(path: Path | None = None) -> str:
    """The cron expression for ``cosell_reconcile`` (``schedule`` key); absent or null: every 30 minutes.

    A set schedule is checked like ``load_config`` checks it, so a bad one fails the DAG's import with
    the key, the file and the reason rather than Airflow's bare ``AirflowTimetableInvalid``.

    Raises:
        ValueError: the configured schedule is not one the DAG can run (see :func:`check_schedule`).
    """
    file = path or config_path()
    try:
        with open(file, encoding="utf-8") as fh:
            data = yaml.safe_load(fh) or {}
    except FileNotFoundError:
        return DEFAULT_SCHEDULE
    schedule = data.get("schedule")
    if schedule is None or schedule == "":
        return DEFAULT_SCHEDULE
    try:
        return check_schedule(schedule)
    except ValueError as err:
        raise ValueError(f"{file}: schedule: {err}") from err


def catalog_schedule(path: Path | None = None) -> str:
    """The schedule of ``cosell_catalog`` (``products.schedule``); absent or null: ``@daily``.

    Raises:
        ValueError: the configured schedule is not one the DAG can run (see :func:`check_schedule`).
    """
    file = path or config_path()
    try:
        with open(file, encoding="utf-8") as fh:
            data = yaml.safe_load(fh) or {}
    except FileNotFoundError:
        return "@daily"
    schedule = (data.get("products") or {}).get("schedule")
    if schedule is None or schedule == "":
        return "@daily"
    try:
        return check_schedule(schedule)
    except ValueError as err:
        raise ValueError(f"{file}: products.schedule: {err}") from err
