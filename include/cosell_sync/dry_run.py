"""What a dry run shows: each planned write as old and new value, per field, in the ``plan`` task log.

A dry run is how an operator checks a change before it happens (a first sync, a new mapping, a ``since``
backfill), so names alone are not enough: they need to see ``stage: 'Prospect' -> 'Qualified'``. Values
of fields whose audit value policy is not ``keep`` (``audit.value_policy`` in the sync config: the
fields that hold personal data) are never logged, only their names, the same rule as the audit trail.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from cosell_sync.common import clean

if TYPE_CHECKING:
    import pandas as pd

    from cosell_sync.plan import Plan

log = logging.getLogger(__name__)

#: A value longer than this is cut in the log (the plan in S3 keeps it whole).
MAX_SHOWN = 200


def show(value: Any) -> str:
    """A value as the log shows it: quoted, ``empty`` for no value, long ones cut with their length."""
    value = clean(value)
    if value is None or value == "":
        return "empty"
    text = str(value)
    if len(text) > MAX_SHOWN:
        return repr(text[:MAX_SHOWN]) + f"... ({len(text)} characters)"
    return repr(text)


def _current(frame: pd.DataFrame | None, oid: str, name: str) -> Any:
    if frame is None or name not in frame.columns or oid not in frame.index:
        return None
    return frame.at[oid, name]


def change_lines(
    side: str,
    oid: str,
    changes: Mapping[str, Any],
    current: pd.DataFrame | None,
    policy_for: Callable[[str], str],
    expected: Mapping[str, Any] | None = None,
) -> list[str]:
    """One line per field of one record's planned write: ``field: old -> new``, or the name only.

    Args:
        side: what is written, as the log names it ("HubSpot deal of O1", "opportunity O1").
        oid: the opportunity id (the frames' index).
        changes: field -> the value the plan writes.
        current: the written side's snapshot (canonical field columns), for the old value.
        policy_for: the audit value policy of a field (``keep`` shows values).
        expected: field -> the old value the plan recorded (Partner Central updates), preferred to the
            snapshot's.

    Returns:
        The lines, fields sorted.
    """
    lines = []
    for name in sorted(changes):
        if policy_for(name) != "keep":
            lines.append(f"DRY RUN - {side}, {name}: would change (value not shown: audit value policy)")
            continue
        old = expected[name] if expected and name in expected else _current(current, oid, name)
        lines.append(f"DRY RUN - {side}, {name}: {show(old)} -> {show(changes[name])}")
    return lines


def log_values(
    plan: Plan,
    pc: pd.DataFrame | None,
    hs: pd.DataFrame | None,
    policy_for: Callable[[str], str],
) -> int:
    """Log every planned update as old and new value per field, and every create's values.

    Args:
        plan: the run's plan.
        pc: the Partner Central snapshot the plan was made from.
        hs: the HubSpot snapshot.
        policy_for: the audit value policy of a field.

    Returns:
        The number of lines logged.
    """
    lines: list[str] = []
    for oid, changes in plan.hubspot_updates.items():
        lines += change_lines(f"HubSpot deal of {oid}", oid, changes, hs, policy_for)
    for oid, changes in plan.partner_central_updates.items():
        lines += change_lines(
            f"opportunity {oid}", oid, changes, pc, policy_for, expected=plan.expected.get(oid)
        )
    for item in plan.create_opportunities:
        values = {k: v for k, v in (item.get("values") or {}).items() if clean(v) is not None}
        lines += change_lines(f"new opportunity for deal {item['deal_id']}", "", values, None, policy_for)
    for line in lines:
        log.info("%s", line)
    return len(lines)
